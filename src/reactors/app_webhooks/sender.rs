//! Delivers the queued messages (spec §13): claimed with a lease like the
//! email sender's (several workers share the work; a crash loses nothing —
//! a message is marked sent only after the application's 2xx, so a crash
//! in between sends it again under the same id), in order per customer per
//! endpoint, signed with every secret that is valid now, retried on the
//! Standard Webhooks schedule; a 410 or five days of failures disable the
//! endpoint.

use super::{endpoints, queue, signing};
use crate::store::{ExpectedVersion, StreamAppend};
use crate::store::{PgEventStore, StoreError};
use chrono::{DateTime, Duration, Utc};
use payledger_events::{
    Actor, AppWebhookMessageFailed, DomainEvent, EventData, Metadata, StreamId,
};
use payledger_projections::states::AppWebhookStatus as Status;
use std::time::Instant;
use tokio::sync::watch;
use tokio_postgres::Row;

/// After the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const RETRY_AFTER_SECONDS: &[i64] = &[5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
/// An endpoint failing this long is disabled.
pub const DISABLE_AFTER_DAYS: i64 = 5;

#[derive(Clone)]
pub struct AppWebhookConfig {
    pub worker_id: String,
    pub batch: i64,
    pub lease: Duration,
    pub timeout: std::time::Duration,
    pub poll: std::time::Duration,
}

impl Default for AppWebhookConfig {
    fn default() -> Self {
        AppWebhookConfig {
            worker_id: format!("app-webhooks-{}", uuid::Uuid::new_v4().simple()),
            batch: 32,
            lease: Duration::seconds(60),
            timeout: std::time::Duration::from_secs(15),
            poll: std::time::Duration::from_millis(250),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u32,
    pub retrying: u32,
    pub failed: u32,
}

/// The earliest message of each customer that is owed to an enabled
/// endpoint and due; later ones wait until it is sent or failed.
const CLAIM: &str = "
UPDATE app_webhook_deliveries d
SET claimed_by = $1, lease_until = $2
FROM (
    SELECT d2.endpoint_id, d2.email, d2.version
    FROM app_webhook_deliveries d2
    JOIN app_webhook_endpoints e ON e.endpoint_id = d2.endpoint_id AND e.enabled
    WHERE d2.status = $5
      AND d2.next_attempt_at <= $3
      AND d2.lease_until <= $3
      AND NOT EXISTS (
          SELECT 1 FROM app_webhook_deliveries earlier
          WHERE earlier.endpoint_id = d2.endpoint_id AND earlier.email = d2.email
            AND earlier.version < d2.version AND earlier.status = $5)
    ORDER BY d2.next_attempt_at, d2.changed_at
    LIMIT $4
    FOR UPDATE OF d2 SKIP LOCKED
) due
WHERE d.endpoint_id = due.endpoint_id AND d.email = due.email AND d.version = due.version
RETURNING d.endpoint_id, d.email, d.version, d.message_id, d.message_type, d.body, d.attempts,
          (SELECT url FROM app_webhook_endpoints e WHERE e.endpoint_id = d.endpoint_id) AS url";

/// Records an attempt ($1 endpoint, $2 message, $3 attempt, $4 when, $5
/// status code, $6 latency, $7 error, $8 answer), moves the message ($9
/// email, $10 version) to $11 due at $12, and keeps the endpoint's
/// `failing_since` ($13: the attempt succeeded); returns that.
const SETTLE: &str = "
WITH attempt AS (
    INSERT INTO app_webhook_attempts
      (endpoint_id, message_id, attempt, attempted_at, status_code, latency_ms, error, response)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
), message AS (
    UPDATE app_webhook_deliveries
    SET status = $11, attempts = $3, next_attempt_at = $12, claimed_by = NULL, lease_until = '-infinity'
    WHERE endpoint_id = $1 AND email = $9 AND version = $10
)
UPDATE app_webhook_endpoints
SET failing_since = CASE WHEN $13 THEN NULL ELSE COALESCE(failing_since, $4) END
WHERE endpoint_id = $1 RETURNING failing_since";

/// One pass: queue what changed, send what is due.
pub async fn deliver_due(
    store: &PgEventStore,
    http: &reqwest::Client,
    config: &AppWebhookConfig,
) -> Result<DeliveryReport, StoreError> {
    let now = store.clock().now();
    let client = store.connection_for_own_tables().await?;
    let endpoints: Vec<String> = client
        .query(
            "SELECT endpoint_id FROM app_webhook_endpoints WHERE enabled",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for endpoint in &endpoints {
        queue::queue_changes(&client, endpoint, None).await?;
    }
    let claimed = client
        .query(
            CLAIM,
            &[
                &config.worker_id,
                &(now + config.lease),
                &now,
                &config.batch,
                &Status::Pending.as_str(),
            ],
        )
        .await?;
    drop(client);
    let mut report = DeliveryReport::default();
    // One at a time: a crash between the application's 2xx and the record
    // of it re-sends at most the one message in flight, so duplicates never
    // outnumber crashes (spec §13).
    // The signing secrets, read once per endpoint per pass.
    let mut signing_secrets = std::collections::HashMap::new();
    for row in &claimed {
        let endpoint: String = row.get("endpoint_id");
        if let std::collections::hash_map::Entry::Vacant(slot) = signing_secrets.entry(endpoint) {
            let found = secrets(store, slot.key(), now).await?;
            slot.insert(found);
        }
    }
    for row in &claimed {
        let endpoint: String = row.get("endpoint_id");
        let keys = signing_secrets
            .get(&endpoint)
            .map_or(&[][..], Vec::as_slice);
        match deliver_one(store, http, config, row, keys).await? {
            Settled::Sent => report.sent += 1,
            Settled::Retry => report.retrying += 1,
            Settled::Failed => report.failed += 1,
        }
    }
    Ok(report)
}

enum Settled {
    Sent,
    Retry,
    Failed,
}

async fn secrets(
    store: &PgEventStore,
    endpoint: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let client = store.connection_for_own_tables().await?;
    Ok(client
        .query(
            "SELECT secret FROM app_webhook_secrets
             WHERE endpoint_id = $1 AND (valid_until IS NULL OR valid_until > $2)
             ORDER BY created_at DESC",
            &[&endpoint, &now],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

async fn deliver_one(
    store: &PgEventStore,
    http: &reqwest::Client,
    config: &AppWebhookConfig,
    row: &Row,
    keys: &[String],
) -> Result<Settled, StoreError> {
    let endpoint: String = row.get("endpoint_id");
    let email: String = row.get("email");
    let version: i64 = row.get("version");
    let id: String = row.get("message_id");
    let body: String = row.get("body");
    let url: String = row.get("url");
    let attempt = row.get::<_, i32>("attempts") + 1;
    let now = store.clock().now();
    let timestamp = now.timestamp();
    let signature = signing::signature_header(keys, &id, timestamp, &body);
    crate::failpoint::hit("app_webhooks.before_send");
    let started = Instant::now();
    let answer = http
        .post(&url)
        .timeout(config.timeout)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (status, error, response) = match answer {
        Ok(r) => {
            let status = i32::from(r.status().as_u16());
            let text = r.text().await.unwrap_or_default();
            (
                Some(status),
                None,
                Some(text.chars().take(200).collect::<String>()),
            )
        }
        Err(e) => (None, Some(e.to_string()), None),
    };
    crate::failpoint::hit("app_webhooks.after_send");
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    let settled = if ok {
        Settled::Sent
    } else {
        match RETRY_AFTER_SECONDS.get(usize::try_from(attempt - 1).unwrap_or(usize::MAX)) {
            Some(_) => Settled::Retry,
            None => Settled::Failed,
        }
    };
    let (new_status, next) = match settled {
        Settled::Sent => (Status::Sent, now),
        Settled::Failed => (Status::Failed, now),
        Settled::Retry => {
            let wait = RETRY_AFTER_SECONDS[usize::try_from(attempt - 1).unwrap_or(0)];
            (Status::Pending, now + Duration::seconds(wait))
        }
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 13] = [
        &endpoint,
        &id,
        &attempt,
        &now,
        &status,
        &latency_ms,
        &error,
        &response,
        &email,
        &version,
        &new_status.as_str(),
        &next,
        &ok,
    ];
    let mut client = store.connection_for_own_tables().await?;
    // One statement settles the attempt, the message and the endpoint's
    // health, in autocommit: the sender is sequential, so its round trips
    // are its pace.
    let failing_since: Option<DateTime<Utc>> = match settled {
        Settled::Sent | Settled::Retry => client.query_one(SETTLE, &params).await?.get(0),
        // In the transaction that settles it: a failed message always has
        // its discrepancy.
        Settled::Failed => {
            let tx = client.transaction().await?;
            let failing_since = tx.query_one(SETTLE, &params).await?.get(0);
            record_failure(store, &tx, row, attempt, status, error.as_deref()).await?;
            tx.commit().await?;
            store.appended();
            failing_since
        }
    };
    let gone = status == Some(410);
    let failing_too_long =
        failing_since.is_some_and(|f| now - f >= Duration::days(DISABLE_AFTER_DAYS));
    if gone || failing_too_long {
        let reason = if gone {
            "the endpoint answered 410 Gone".to_string()
        } else {
            format!("every attempt failed for {DISABLE_AFTER_DAYS} days")
        };
        tracing::warn!(endpoint = %endpoint, %reason, "disabling an application webhook endpoint");
        endpoints::disable(
            store,
            &endpoint,
            &reason,
            &Actor::System("app-webhooks".into()),
        )
        .await
        .map_err(|e| match e {
            endpoints::EndpointError::Store(s) => s,
            other => StoreError::Unavailable(other.to_string()),
        })?;
    }
    Ok(settled)
}

/// The message failed for good: `AppWebhookMessageFailed`, which opens
/// `app_webhook_undeliverable` and alerts.
async fn record_failure(
    store: &PgEventStore,
    tx: &deadpool_postgres::Transaction<'_>,
    row: &Row,
    attempt: i32,
    status: Option<i32>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let endpoint: String = row.get("endpoint_id");
    let id: String = row.get("message_id");
    tracing::warn!(endpoint = %endpoint, message = %id, "an application webhook is undeliverable after every retry");
    let failed: DomainEvent = AppWebhookMessageFailed {
        endpoint_id: endpoint.clone(),
        message_id: id.clone(),
        email: row.get("email"),
        message_type: row.get("message_type"),
        attempts: u32::try_from(attempt).unwrap_or(0),
        last_error: status.map_or_else(
            || error.unwrap_or_default().to_string(),
            |s| format!("HTTP {s}"),
        ),
    }
    .into();
    let metadata = Metadata::new(
        uuid::Uuid::new_v4(),
        Actor::System("app-webhooks".into()),
        "app-webhooks",
    );
    store
        .append_in(
            tx,
            &[StreamAppend::new(
                StreamId::app_webhook_endpoint(&endpoint),
                ExpectedVersion::Any,
                vec![EventData::for_processor_fact(
                    &failed,
                    &format!("{id}:{attempt}"),
                    metadata,
                )?],
            )],
        )
        .await?;
    Ok(())
}

/// Delivers until `stop`; a database hiccup is logged and retried.
pub async fn run(store: PgEventStore, config: AppWebhookConfig, mut stop: watch::Receiver<bool>) {
    let http = reqwest::Client::new();
    loop {
        let busy = match deliver_due(&store, &http, &config).await {
            Ok(r) => r.sent + r.retrying + r.failed > 0,
            Err(e) => {
                tracing::warn!(error = %e, "application webhook pass failed; will retry");
                false
            }
        };
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(config.poll) => {}
                _ = stop.changed() => return,
            }
        } else if *stop.borrow() {
            return;
        }
    }
}
