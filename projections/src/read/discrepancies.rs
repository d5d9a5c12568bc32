//! `discrepancies`: what a person must look at, by id.

use super::ReadModels;
use crate::states::{DiscrepancyKind, DiscrepancyStatus};
use deadpool_postgres::{Client, GenericClient};
use payledger_store::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub struct DiscrepancyRow {
    pub id: String,
    pub kind: DiscrepancyKind,
    pub subject: String,
    pub status: DiscrepancyStatus,
    pub suggested_action: String,
}

fn from_row(r: &tokio_postgres::Row) -> Result<DiscrepancyRow, StoreError> {
    Ok(DiscrepancyRow {
        id: r.try_get("id")?,
        kind: super::state("discrepancies", r.try_get("kind")?)?,
        subject: r.try_get("subject")?,
        status: super::state("discrepancies", r.try_get("status")?)?,
        suggested_action: r.try_get("suggested_action")?,
    })
}

pub async fn by_id(read: &ReadModels, id: &str) -> Result<Option<DiscrepancyRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    client
        .query_opt(
            "SELECT id, kind, subject, status, suggested_action FROM discrepancies WHERE id = $1",
            &[&id],
        )
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// What is not resolved yet about one address or the given payments
/// (a subject is `<payment id>` or `<payment id>:<detail>`), oldest first.
pub async fn unresolved_of_customer(
    read: &ReadModels,
    email: Option<&str>,
    payment_ids: &[String],
) -> Result<Vec<DiscrepancyRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    client
        .query(
            "SELECT id, kind, subject, status, suggested_action FROM discrepancies
             WHERE status <> $3 AND (customer_email = $1 OR split_part(subject, ':', 1) = ANY($2))
             ORDER BY first_seen",
            &[&email, &payment_ids, &DiscrepancyStatus::Resolved.as_str()],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Open discrepancies of one kind first seen at or before `seen_by`, oldest
/// first (what waited long enough for a reactor to act).
pub async fn open_of_kind_since(
    read: &ReadModels,
    kind: DiscrepancyKind,
    seen_by: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<DiscrepancyRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    client
        .query(
            "SELECT id, kind, subject, status, suggested_action FROM discrepancies
             WHERE kind = $1 AND status = $2 AND first_seen <= $3 ORDER BY first_seen",
            &[&kind.as_str(), &DiscrepancyStatus::Open.as_str(), &seen_by],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// How many discrepancies of each kind are open (for the gauges).
pub async fn open_counts(read: &ReadModels) -> Result<Vec<(String, i64)>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    Ok(client
        .query(
            "SELECT kind, count(*) FROM discrepancies WHERE status = $1 GROUP BY kind ORDER BY kind",
            &[&DiscrepancyStatus::Open.as_str()],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// A discrepancy as the support queue shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub id: String,
    pub kind: DiscrepancyKind,
    pub subject: String,
    pub status: DiscrepancyStatus,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub customer_email: Option<String>,
    pub suggested_action: String,
}

/// What needs a person, oldest first; `all` adds the resolved ones.
pub async fn queue(read: &ReadModels, all: bool) -> Result<Vec<QueueRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    client
        .query(
            "SELECT id, kind, subject, status, first_seen, amount, currency, customer_email, suggested_action
             FROM discrepancies WHERE $1 OR status <> $2 ORDER BY first_seen, id",
            &[&all, &DiscrepancyStatus::Resolved.as_str()],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(QueueRow {
                id: r.try_get("id")?,
                kind: super::state("discrepancies", r.try_get("kind")?)?,
                subject: r.try_get("subject")?,
                status: super::state("discrepancies", r.try_get("status")?)?,
                first_seen: r.try_get("first_seen")?,
                amount: r.try_get("amount")?,
                currency: r.try_get("currency")?,
                customer_email: r.try_get("customer_email")?,
                suggested_action: r.try_get("suggested_action")?,
            })
        })
        .collect()
}

/// The unresolved discrepancy about one payment (its subject is the
/// payment id, or starts with it), the oldest if several.
pub async fn open_about_payment(
    read: &ReadModels,
    payment_id: &str,
) -> Result<Option<DiscrepancyKind>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    client
        .query_opt(
            "SELECT kind FROM discrepancies
             WHERE status <> $2 AND split_part(subject, ':', 1) = $1
             ORDER BY first_seen LIMIT 1",
            &[&payment_id, &DiscrepancyStatus::Resolved.as_str()],
        )
        .await?
        .map(|r| super::state("discrepancies", r.try_get("kind")?))
        .transpose()
}
