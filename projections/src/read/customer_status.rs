//! `customer_status`: where each checkout or payment stands for its
//! customer, by reference, checkout, payment or email.

use super::ReadModels;
use crate::states::{DisputeState, PaymentState};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};
use payledger_store::StoreError;
use tokio_postgres::Row;

const COLUMNS: &str = "reference, checkout_id, payment_id, session_id, email, plan, amount, \
    currency, started_at, returned_at, paid_at, state, activation, period_end, refunded_amount, dispute";

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerStatusRow {
    pub reference: String,
    pub checkout_id: Option<String>,
    pub payment_id: Option<String>,
    pub session_id: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub started_at: DateTime<Utc>,
    pub returned_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub state: PaymentState,
    pub activation: Option<String>,
    pub period_end: Option<DateTime<Utc>>,
    /// Minor units refunded so far.
    pub refunded_amount: i64,
    pub dispute: Option<DisputeState>,
}

impl CustomerStatusRow {
    fn from_row(r: &Row) -> Result<Self, StoreError> {
        Ok(CustomerStatusRow {
            reference: r.try_get("reference")?,
            checkout_id: r.try_get("checkout_id")?,
            payment_id: r.try_get("payment_id")?,
            session_id: r.try_get("session_id")?,
            email: r.try_get("email")?,
            plan: r.try_get("plan")?,
            amount: r.try_get("amount")?,
            currency: r.try_get("currency")?,
            started_at: r.try_get("started_at")?,
            returned_at: r.try_get("returned_at")?,
            paid_at: r.try_get("paid_at")?,
            state: super::state("customer_status", r.try_get("state")?)?,
            activation: r.try_get("activation")?,
            period_end: r.try_get("period_end")?,
            refunded_amount: r.try_get("refunded_amount")?,
            dispute: r
                .try_get::<_, Option<&str>>("dispute")?
                .map(|d| super::state("customer_status", d))
                .transpose()?,
        })
    }

    /// When the customer last heard from us: back from the pay page, else
    /// paid, else started.
    pub fn waiting_since(&self) -> DateTime<Utc> {
        self.returned_at.or(self.paid_at).unwrap_or(self.started_at)
    }
}

async fn one<C: GenericClient>(
    client: &C,
    column: &str,
    value: &str,
) -> Result<Option<CustomerStatusRow>, StoreError> {
    // `column` is one of this file's constants, never input.
    let sql = format!("SELECT {COLUMNS} FROM customer_status WHERE {column} = $1");
    client
        .query_opt(&sql, &[&value])
        .await?
        .as_ref()
        .map(CustomerStatusRow::from_row)
        .transpose()
}

pub async fn by_reference(
    read: &ReadModels,
    reference: &str,
) -> Result<Option<CustomerStatusRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    one(client, "reference", reference).await
}

pub async fn by_checkout(
    read: &ReadModels,
    checkout_id: &str,
) -> Result<Option<CustomerStatusRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    one(client, "checkout_id", checkout_id).await
}

pub async fn by_payment(
    read: &ReadModels,
    payment_id: &str,
) -> Result<Option<CustomerStatusRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    one(client, "payment_id", payment_id).await
}

/// Every checkout and payment of one address, oldest first.
pub async fn by_email(
    read: &ReadModels,
    email: &str,
) -> Result<Vec<CustomerStatusRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    let sql = format!("SELECT {COLUMNS} FROM customer_status WHERE email = $1 ORDER BY started_at");
    client
        .query(&sql, &[&email])
        .await?
        .iter()
        .map(CustomerStatusRow::from_row)
        .collect()
}

/// Everything one customer has: their address's rows and those of the
/// given payments (a payment may carry no address).
pub async fn of_customer(
    read: &ReadModels,
    email: Option<&str>,
    payment_ids: &[String],
) -> Result<Vec<CustomerStatusRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    let sql = format!(
        "SELECT {COLUMNS} FROM customer_status WHERE email = $1 OR payment_id = ANY($2) ORDER BY started_at"
    );
    client
        .query(&sql, &[&email, &payment_ids])
        .await?
        .iter()
        .map(CustomerStatusRow::from_row)
        .collect()
}
