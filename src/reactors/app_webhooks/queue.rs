//! Queues a message per change of access per endpoint, from the
//! subscriptions read model's changes (spec §13). The body is fixed here:
//! every retry and replay sends the same bytes.

use super::signing::message_id;
use crate::store::StoreError;
use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::GenericClient;
use payledger_projections::read::subscription_changes::{self, ChangeRow};
use payledger_projections::states::AppWebhookStatus;

/// Changes read per statement.
const CHUNK: i64 = 1_000;

/// The message of one change, as the application receives it.
pub fn body(change: &ChangeRow) -> String {
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    serde_json::json!({
        "type": change.message_type,
        "timestamp": at(change.changed_at),
        "data": {
            "email": change.email,
            "active": change.active,
            "plan": change.plan,
            "status": change.status.as_str(),
            "period_end": at(change.period_end),
            "activation": change.activation,
            "renews_at": change.renews_at.map(at),
            "cancel_at_period_end": change.cancel_at_period_end,
            "reference": change.reference,
            "version": change.version,
        }
    })
    .to_string()
}

/// Queues the endpoint's messages: the changes past its cursor (moving
/// it), or with `since` every change recorded since then (a replay; the
/// cursor stays). Returns how many were queued anew.
pub async fn queue_changes<C: GenericClient>(
    client: &C,
    endpoint_id: &str,
    since: Option<DateTime<Utc>>,
) -> Result<u64, StoreError> {
    let Some(endpoint) = client
        .query_opt(
            "SELECT types, synced_position FROM app_webhook_endpoints WHERE endpoint_id = $1 AND enabled",
            &[&endpoint_id],
        )
        .await?
    else {
        return Ok(0);
    };
    let types: Vec<String> = endpoint.get(0);
    let replaying = since.is_some();
    let mut after: i64 = if replaying { -1 } else { endpoint.get(1) };
    let since = since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let mut queued = 0;
    loop {
        let changes = subscription_changes::after(client, after, since, &types, CHUNK).await?;
        let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
            break;
        };
        let (first_position, last_position) = (first.position, last.position);
        for change in &changes {
            queued += client
                .execute(
                    "INSERT INTO app_webhook_deliveries
                       (endpoint_id, email, version, message_id, message_type, body, changed_at, status)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT DO NOTHING",
                    &[
                        &endpoint_id,
                        &change.email,
                        &change.version,
                        &message_id(endpoint_id, &change.email, change.version),
                        &change.message_type,
                        &body(change),
                        &change.changed_at,
                        &AppWebhookStatus::Pending.as_str(),
                    ],
                )
                .await?;
        }
        if changes.len() < CHUNK as usize {
            after = last_position;
            break;
        }
        // A full chunk may end inside a position (one event changed several
        // customers): the next one reads that position again, and what was
        // queued already is left as it is.
        after = if first_position == last_position {
            last_position
        } else {
            last_position - 1
        };
    }
    if !replaying && after > 0 {
        client
            .execute(
                "UPDATE app_webhook_endpoints SET synced_position = GREATEST(synced_position, $2)
                 WHERE endpoint_id = $1",
                &[&endpoint_id, &after],
            )
            .await?;
    }
    Ok(queued)
}
