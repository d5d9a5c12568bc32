//! `subscriptions`: one customer's access, by email.

use super::ReadModels;
use crate::states::SubscriptionStatus;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};
use payledger_store::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub email: String,
    pub plan: String,
    pub status: SubscriptionStatus,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// checkout | rescue | grant
    pub activation: String,
    /// The payment behind it; `None` for a grant.
    pub payment_id: Option<String>,
    pub reason: Option<String>,
}

impl SubscriptionRow {
    /// Whether it grants access at `now`.
    pub fn grants_access_at(&self, now: DateTime<Utc>) -> bool {
        self.status == SubscriptionStatus::Active && self.period_end > now
    }
}

pub async fn by_email(
    read: &ReadModels,
    email: &str,
) -> Result<Option<SubscriptionRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    let Some(r) = client
        .query_opt(
            "SELECT email, plan, status, period_start, period_end, activation, payment_id, reason
             FROM subscriptions WHERE email = $1",
            &[&email],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(SubscriptionRow {
        email: r.try_get("email")?,
        plan: r.try_get("plan")?,
        status: super::state("subscriptions", r.try_get("status")?)?,
        period_start: r.try_get("period_start")?,
        period_end: r.try_get("period_end")?,
        activation: r.try_get("activation")?,
        payment_id: r.try_get("payment_id")?,
        reason: r.try_get("reason")?,
    }))
}
