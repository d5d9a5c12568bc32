//! The application's endpoints (spec §13): each change is an event, and the
//! sender's working state (URL, secrets, queue cursor) is written in the
//! same transaction, so the log and the state never disagree.

use super::signing;
use crate::store::{ExpectedVersion, PgEventStore, StoreError, StreamAppend};
use chrono::{DateTime, Duration, Utc};
use payledger_events::{
    Actor, AppWebhookEndpointAdded, AppWebhookEndpointDisabled, AppWebhookReplayRequested,
    AppWebhookSecretRotated, DomainEvent, EventData, Metadata, StreamId,
};
use payledger_projections::states::AppWebhookStatus as Status;
use serde::Serialize;

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

/// The message types an endpoint can ask for.
pub const MESSAGE_TYPES: &[&str] = &[
    "subscription.activated",
    "subscription.renewed",
    "subscription.past_due",
    "subscription.canceled",
    "subscription.ended",
    "subscription.refunded",
    "subscription.disputed",
    "subscription.reactivated",
    "subscription.updated",
];

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("the event cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{0:?} is not an http(s) URL: {1}")]
    BadUrl(String, String),
    #[error("{0:?} is not a message type; the types are {types}", types = MESSAGE_TYPES.join(", "))]
    UnknownType(String),
    #[error("no endpoint {0:?} (app-webhooks list shows them)")]
    NoSuchEndpoint(String),
    #[error("endpoint {0} is disabled")]
    Disabled(String),
    #[error("PAYLEDGER_APP_WEBHOOK_SECRET: {0}")]
    BadSecret(String),
}

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub endpoint_id: String,
    pub url: String,
    pub types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
}

/// A new endpoint and its secret.
#[derive(Debug, Serialize)]
pub struct Added {
    pub endpoint_id: String,
    pub secret: String,
}

fn metadata(actor: &Actor, source: &str) -> Metadata {
    Metadata::new(uuid::Uuid::new_v4(), actor.clone(), source)
}

/// Appends one event to the endpoint's stream inside `tx`, beside the
/// state the same transaction writes.
async fn append_in(
    store: &PgEventStore,
    tx: &deadpool_postgres::Transaction<'_>,
    endpoint_id: &str,
    expected: ExpectedVersion,
    data: EventData,
) -> Result<(), EndpointError> {
    store
        .append_in(
            tx,
            &[StreamAppend::new(
                StreamId::app_webhook_endpoint(endpoint_id),
                expected,
                vec![data],
            )],
        )
        .await?;
    Ok(())
}

fn check_url(url: &str) -> Result<(), EndpointError> {
    let parsed =
        url::Url::parse(url).map_err(|e| EndpointError::BadUrl(url.into(), e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(EndpointError::BadUrl(
            url.into(),
            "it needs http:// or https:// and a host".into(),
        ));
    }
    Ok(())
}

fn check_types(types: &[String]) -> Result<(), EndpointError> {
    match types.iter().find(|t| !MESSAGE_TYPES.contains(&t.as_str())) {
        Some(t) => Err(EndpointError::UnknownType(t.clone())),
        None => Ok(()),
    }
}

/// Adds an endpoint that is told of changes from now on (older ones:
/// `replay`).
pub async fn add(
    store: &PgEventStore,
    url: &str,
    types: Vec<String>,
    actor: &Actor,
) -> Result<Added, EndpointError> {
    let endpoint_id = format!("ep_{}", uuid::Uuid::new_v4().simple());
    let secret = signing::new_secret();
    add_with(store, &endpoint_id, url, types, &secret, actor).await?;
    Ok(Added {
        endpoint_id,
        secret,
    })
}

async fn add_with(
    store: &PgEventStore,
    endpoint_id: &str,
    url: &str,
    types: Vec<String>,
    secret: &str,
    actor: &Actor,
) -> Result<(), EndpointError> {
    check_url(url)?;
    check_types(&types)?;
    let now = store.clock().now();
    let event: DomainEvent = AppWebhookEndpointAdded {
        endpoint_id: endpoint_id.into(),
        url: url.into(),
        types: types.clone(),
        secret_fingerprint: signing::fingerprint(secret),
    }
    .into();
    let mut client = store.connection_for_own_tables().await?;
    let tx = client.transaction().await?;
    append_in(
        store,
        &tx,
        endpoint_id,
        ExpectedVersion::NoStream,
        EventData::for_processor_fact(&event, endpoint_id, metadata(actor, "app-webhooks"))?,
    )
    .await?;
    // Told of changes from now on: the cursor starts at the latest change
    // (none yet when the read models were never installed).
    let latest = payledger_projections::read::subscription_changes::latest_position(&tx).await?;
    tx.execute(
        "INSERT INTO app_webhook_endpoints (endpoint_id, url, types, enabled, created_at, synced_position)
         VALUES ($1, $2, $3, true, $4, $5)",
        &[&endpoint_id, &url, &types, &now, &latest],
    )
    .await?;
    tx.execute(
        "INSERT INTO app_webhook_secrets (endpoint_id, secret, created_at) VALUES ($1, $2, $3)",
        &[&endpoint_id, &secret, &now],
    )
    .await?;
    tx.commit().await?;
    store.appended();
    Ok(())
}

/// `PAYLEDGER_APP_WEBHOOK_URL` + `_SECRET`: one endpoint without the CLI,
/// `ep_env`, added on first start; a changed URL or secret is a new
/// endpoint (the old one disabled), so the log says what was configured.
pub async fn ensure_configured(
    store: &PgEventStore,
    url: &str,
    secret: &str,
) -> Result<String, EndpointError> {
    signing::valid_secret(secret).map_err(EndpointError::BadSecret)?;
    let endpoint_id = format!(
        "ep_env_{}",
        &signing::fingerprint(&format!("{url}|{secret}"))[..12]
    );
    let client = store.connection_for_own_tables().await?;
    let others: Vec<String> = client
        .query(
            "SELECT endpoint_id FROM app_webhook_endpoints
             WHERE endpoint_id LIKE 'ep_env_%' AND endpoint_id <> $1 AND enabled",
            &[&endpoint_id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let exists = client
        .query_opt(
            "SELECT 1 FROM app_webhook_endpoints WHERE endpoint_id = $1",
            &[&endpoint_id],
        )
        .await?
        .is_some();
    drop(client);
    let actor = Actor::System("configuration".into());
    for old in others {
        disable(
            store,
            &old,
            "PAYLEDGER_APP_WEBHOOK_URL or _SECRET changed",
            &actor,
        )
        .await?;
    }
    if !exists {
        add_with(store, &endpoint_id, url, vec![], secret, &actor).await?;
    }
    Ok(endpoint_id)
}

pub async fn list(store: &PgEventStore) -> Result<Vec<Endpoint>, EndpointError> {
    let client = store.connection_for_own_tables().await?;
    let rows = client
        .query(
            "SELECT e.endpoint_id, e.url, e.types, e.enabled, e.disabled_reason, e.created_at,
                    count(d.*) FILTER (WHERE d.status = $1),
                    count(d.*) FILTER (WHERE d.status = $2),
                    count(d.*) FILTER (WHERE d.status = $3)
             FROM app_webhook_endpoints e
             LEFT JOIN app_webhook_deliveries d ON d.endpoint_id = e.endpoint_id
             GROUP BY e.endpoint_id ORDER BY e.created_at",
            &[
                &Status::Pending.as_str(),
                &Status::Sent.as_str(),
                &Status::Failed.as_str(),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Endpoint {
            endpoint_id: r.get(0),
            url: r.get(1),
            types: r.get(2),
            enabled: r.get(3),
            disabled_reason: r.get(4),
            created_at: r.get(5),
            pending: r.get(6),
            sent: r.get(7),
            failed: r.get(8),
        })
        .collect())
}

async fn require(store: &PgEventStore, endpoint_id: &str) -> Result<bool, EndpointError> {
    let client = store.connection_for_own_tables().await?;
    client
        .query_opt(
            "SELECT enabled FROM app_webhook_endpoints WHERE endpoint_id = $1",
            &[&endpoint_id],
        )
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| EndpointError::NoSuchEndpoint(endpoint_id.into()))
}

/// Stops delivery to the endpoint. Returns false when it already was.
pub async fn disable(
    store: &PgEventStore,
    endpoint_id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<bool, EndpointError> {
    if !require(store, endpoint_id).await? {
        return Ok(false);
    }
    let event: DomainEvent = AppWebhookEndpointDisabled {
        endpoint_id: endpoint_id.into(),
        reason: reason.into(),
    }
    .into();
    let mut client = store.connection_for_own_tables().await?;
    let tx = client.transaction().await?;
    append_in(
        store,
        &tx,
        endpoint_id,
        ExpectedVersion::Any,
        EventData::for_processor_fact(&event, endpoint_id, metadata(actor, "app-webhooks"))?,
    )
    .await?;
    tx.execute(
        "UPDATE app_webhook_endpoints SET enabled = false, disabled_reason = $2 WHERE endpoint_id = $1",
        &[&endpoint_id, &reason],
    )
    .await?;
    tx.commit().await?;
    store.appended();
    Ok(true)
}

/// A new secret; the previous ones sign beside it for 24 hours.
pub async fn rotate_secret(
    store: &PgEventStore,
    endpoint_id: &str,
    actor: &Actor,
) -> Result<String, EndpointError> {
    if !require(store, endpoint_id).await? {
        return Err(EndpointError::Disabled(endpoint_id.into()));
    }
    let secret = signing::new_secret();
    let fingerprint = signing::fingerprint(&secret);
    let now = store.clock().now();
    let until = now + Duration::hours(ROTATION_OVERLAP_HOURS);
    let event: DomainEvent = AppWebhookSecretRotated {
        endpoint_id: endpoint_id.into(),
        secret_fingerprint: fingerprint.clone(),
        previous_valid_until: until,
    }
    .into();
    let mut client = store.connection_for_own_tables().await?;
    let tx = client.transaction().await?;
    append_in(
        store,
        &tx,
        endpoint_id,
        ExpectedVersion::Any,
        EventData::for_processor_fact(
            &event,
            &format!("{endpoint_id}:{fingerprint}"),
            metadata(actor, "app-webhooks"),
        )?,
    )
    .await?;
    tx.execute(
        "UPDATE app_webhook_secrets SET valid_until = $2
         WHERE endpoint_id = $1 AND (valid_until IS NULL OR valid_until > $2)",
        &[&endpoint_id, &until],
    )
    .await?;
    tx.execute(
        "INSERT INTO app_webhook_secrets (endpoint_id, secret, created_at) VALUES ($1, $2, $3)",
        &[&endpoint_id, &secret, &now],
    )
    .await?;
    tx.commit().await?;
    store.appended();
    Ok(secret)
}

/// Sends the messages of changes since `since` again, with their original
/// ids (each queued again, or queued now if it never was). Returns how
/// many.
pub async fn replay(
    store: &PgEventStore,
    endpoint_id: &str,
    since: DateTime<Utc>,
    actor: &Actor,
) -> Result<u64, EndpointError> {
    if !require(store, endpoint_id).await? {
        return Err(EndpointError::Disabled(endpoint_id.into()));
    }
    let event: DomainEvent = AppWebhookReplayRequested {
        endpoint_id: endpoint_id.into(),
        since,
    }
    .into();
    let mut client = store.connection_for_own_tables().await?;
    let tx = client.transaction().await?;
    append_in(
        store,
        &tx,
        endpoint_id,
        ExpectedVersion::Any,
        EventData::new(
            &event,
            uuid::Uuid::new_v4(),
            metadata(actor, "app-webhooks"),
        )?,
    )
    .await?;
    let queued = super::queue::queue_changes(&tx, endpoint_id, Some(since)).await?;
    let again = tx
        .execute(
            "UPDATE app_webhook_deliveries SET status = $3, attempts = 0,
                    next_attempt_at = '-infinity', lease_until = '-infinity'
             WHERE endpoint_id = $1 AND changed_at >= $2",
            &[&endpoint_id, &since, &Status::Pending.as_str()],
        )
        .await?;
    tx.commit().await?;
    store.appended();
    Ok(again.max(queued))
}

#[derive(Debug, Serialize)]
pub struct Attempt {
    pub message_id: String,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response: Option<String>,
    /// Where the message stands now: pending, sent or failed.
    pub message_status: String,
}

pub async fn deliveries(
    store: &PgEventStore,
    endpoint_id: &str,
    failed_only: bool,
) -> Result<Vec<Attempt>, EndpointError> {
    require(store, endpoint_id).await?;
    let client = store.connection_for_own_tables().await?;
    let rows = client
        .query(
            "SELECT a.message_id, a.attempt, a.attempted_at, a.status_code, a.latency_ms, a.error,
                    a.response, COALESCE(d.status, $3)
             FROM app_webhook_attempts a
             LEFT JOIN app_webhook_deliveries d
               ON d.endpoint_id = a.endpoint_id AND d.message_id = a.message_id
             WHERE a.endpoint_id = $1
               AND (NOT $2 OR a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)
             ORDER BY a.id",
            &[&endpoint_id, &failed_only, &Status::Pending.as_str()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Attempt {
            message_id: r.get(0),
            attempt: r.get(1),
            attempted_at: r.get(2),
            status_code: r.get(3),
            latency_ms: r.get(4),
            error: r.get(5),
            response: r.get(6),
            message_status: r.get(7),
        })
        .collect())
}
