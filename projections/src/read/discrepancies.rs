//! `discrepancies`: what a person must look at, by id.

use crate::states::{DiscrepancyKind, DiscrepancyStatus};
use deadpool_postgres::GenericClient;
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

pub async fn by_id<C: GenericClient>(
    client: &C,
    id: &str,
) -> Result<Option<DiscrepancyRow>, StoreError> {
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
pub async fn unresolved_of_customer<C: GenericClient>(
    client: &C,
    email: Option<&str>,
    payment_ids: &[String],
) -> Result<Vec<DiscrepancyRow>, StoreError> {
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
pub async fn open_of_kind_since<C: GenericClient>(
    client: &C,
    kind: DiscrepancyKind,
    seen_by: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<DiscrepancyRow>, StoreError> {
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
