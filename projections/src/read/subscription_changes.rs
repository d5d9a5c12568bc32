//! `subscription_changes`: every change of a customer's access, in the
//! order the log made them, as the product's application is told of them
//! (spec §13). Read inside the caller's transaction (queueing messages and
//! moving a cursor are one step).

use crate::states::SubscriptionStatus;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use payledger_store::StoreError;

#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub email: String,
    pub version: i64,
    pub message_type: String,
    pub active: bool,
    pub plan: String,
    pub status: SubscriptionStatus,
    pub period_end: DateTime<Utc>,
    pub activation: String,
    pub renews_at: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub reference: Option<String>,
    pub changed_at: DateTime<Utc>,
    pub position: i64,
}

/// Up to `limit` changes past `after` (a position), recorded at or after
/// `since`, of the given message types (all when empty), in log order.
pub async fn after<C: GenericClient>(
    client: &C,
    after: i64,
    since: DateTime<Utc>,
    types: &[String],
    limit: i64,
) -> Result<Vec<ChangeRow>, StoreError> {
    let rows = client
        .query(
            "SELECT email, version, message_type, active, plan, status, period_end, activation,
                    renews_at, cancel_at_period_end, reference, changed_at, position
             FROM subscription_changes
             WHERE position > $1 AND changed_at >= $2
               AND (cardinality($3::text[]) = 0 OR message_type = ANY($3))
             ORDER BY position, email, version LIMIT $4",
            &[&after, &since, &types, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ChangeRow {
                email: r.get(0),
                version: r.get(1),
                message_type: r.get(2),
                active: r.get(3),
                plan: r.get(4),
                status: super::state("subscription_changes", r.get(5))?,
                period_end: r.get(6),
                activation: r.get(7),
                renews_at: r.get(8),
                cancel_at_period_end: r.get(9),
                reference: r.get(10),
                changed_at: r.get(11),
                position: r.get(12),
            })
        })
        .collect()
}

/// The latest change's position (0: none, or the read model not installed
/// yet).
pub async fn latest_position<C: GenericClient>(client: &C) -> Result<i64, StoreError> {
    let installed: bool = client
        .query_one(
            "SELECT to_regclass('subscription_changes') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !installed {
        return Ok(0);
    }
    Ok(client
        .query_one(
            "SELECT COALESCE(max(position), 0) FROM subscription_changes",
            &[],
        )
        .await?
        .get(0))
}
