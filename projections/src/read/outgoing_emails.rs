//! `outgoing_emails`: each email payledger owes someone, by key or payment.

use super::ReadModels;
use crate::states::EmailStatus;
use deadpool_postgres::{Client, GenericClient};
use payledger_store::StoreError;
use tokio_postgres::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingEmailRow {
    pub email_key: String,
    /// confirmation | rescue_confirmation | refund_confirmation | status_link
    pub kind: String,
    pub recipient: String,
    pub payment_id: Option<String>,
    pub status: EmailStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub resends: i32,
}

const COLUMNS: &str =
    "email_key, kind, recipient, payment_id, status, attempts, last_error, resends";

fn from_row(r: &Row) -> Result<OutgoingEmailRow, StoreError> {
    Ok(OutgoingEmailRow {
        email_key: r.try_get("email_key")?,
        kind: r.try_get("kind")?,
        recipient: r.try_get("recipient")?,
        payment_id: r.try_get("payment_id")?,
        status: super::state("outgoing_emails", r.try_get("status")?)?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        resends: r.try_get("resends")?,
    })
}

pub async fn by_key(
    read: &ReadModels,
    email_key: &str,
) -> Result<Option<OutgoingEmailRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    let sql = format!("SELECT {COLUMNS} FROM outgoing_emails WHERE email_key = $1");
    client
        .query_opt(&sql, &[&email_key])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The newest email about one payment.
pub async fn latest_for_payment(
    read: &ReadModels,
    payment_id: &str,
) -> Result<Option<OutgoingEmailRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    let sql = format!(
        "SELECT {COLUMNS} FROM outgoing_emails WHERE payment_id = $1 ORDER BY requested_at DESC LIMIT 1"
    );
    client
        .query_opt(&sql, &[&payment_id])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Every email to one address or about the given payments, oldest first.
pub async fn of_customer(
    read: &ReadModels,
    email: Option<&str>,
    payment_ids: &[String],
) -> Result<Vec<OutgoingEmailRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    let sql = format!(
        "SELECT {COLUMNS} FROM outgoing_emails WHERE recipient = $1 OR payment_id = ANY($2) ORDER BY requested_at"
    );
    client
        .query(&sql, &[&email, &payment_ids])
        .await?
        .iter()
        .map(from_row)
        .collect()
}
