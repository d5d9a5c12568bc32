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
    /// A renewing plan's processor subscription.
    pub subscription_id: Option<String>,
    /// When the processor charges next; `None` once it will not.
    pub renews_at: Option<DateTime<Utc>>,
    /// Cancelled: ends at `period_end` instead of renewing.
    pub cancel_at_period_end: bool,
    /// Past due: until when the processor keeps retrying; a renewing plan
    /// that is active: until when its renewal is expected.
    pub grace_until: Option<DateTime<Utc>>,
}

impl SubscriptionRow {
    /// Whether it grants access at `now`, keeping access while a failed
    /// renewal is retried (`PAYLEDGER_PAST_DUE_ACCESS=keep`, the default).
    pub fn grants_access_at(&self, now: DateTime<Utc>) -> bool {
        self.grants_access(now, PastDueAccess::Keep)
    }

    /// Whether it grants access at `now` under a past-due policy.
    pub fn grants_access(&self, now: DateTime<Utc>, past_due: PastDueAccess) -> bool {
        let in_grace = self.grace_until.is_some_and(|g| g > now);
        match self.status {
            SubscriptionStatus::Active => self.period_end > now || in_grace,
            SubscriptionStatus::Canceled => self.period_end > now,
            SubscriptionStatus::PastDue => {
                self.period_end > now || (past_due == PastDueAccess::Keep && in_grace)
            }
            _ => false,
        }
    }
}

/// `PAYLEDGER_PAST_DUE_ACCESS`: whether a customer whose renewal failed
/// keeps access while the processor retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PastDueAccess {
    #[default]
    Keep,
    Revoke,
}

impl PastDueAccess {
    /// As written in the setting (and in `payledger_settings`).
    pub fn as_str(self) -> &'static str {
        match self {
            PastDueAccess::Keep => "keep",
            PastDueAccess::Revoke => "revoke",
        }
    }
}

impl std::str::FromStr for PastDueAccess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "keep" => Ok(PastDueAccess::Keep),
            "revoke" => Ok(PastDueAccess::Revoke),
            other => Err(format!("{other:?} is neither \"keep\" nor \"revoke\"")),
        }
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
            "SELECT email, plan, status, period_start, period_end, activation, payment_id, reason,
                    subscription_id, renews_at, cancel_at_period_end, grace_until
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
        subscription_id: r.try_get("subscription_id")?,
        renews_at: r.try_get("renews_at")?,
        cancel_at_period_end: r.try_get("cancel_at_period_end")?,
        grace_until: r.try_get("grace_until")?,
    }))
}

/// A renewing plan's access that ends before `before` while its
/// subscription might still be paying: what payledger asks the processor
/// about before letting access end (spec §12).
#[derive(Debug, Clone, PartialEq)]
pub struct EndingAccess {
    pub email: String,
    pub subscription_id: String,
    pub status: SubscriptionStatus,
    pub period_end: DateTime<Utc>,
}

pub async fn renewing_access_ending_before(
    read: &ReadModels,
    before: DateTime<Utc>,
) -> Result<Vec<EndingAccess>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    let still_paying: Vec<&str> = [
        SubscriptionStatus::Active,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Canceled,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    let rows = client
        .query(
            "SELECT email, subscription_id, status, period_end FROM subscriptions
             WHERE subscription_id IS NOT NULL AND status = ANY($1) AND period_end < $2
             ORDER BY period_end",
            &[&still_paying, &before],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(EndingAccess {
                email: r.try_get("email")?,
                subscription_id: r.try_get("subscription_id")?,
                status: super::state("subscriptions", r.try_get("status")?)?,
                period_end: r.try_get("period_end")?,
            })
        })
        .collect()
}

/// The access a processor subscription gives, by its id.
pub async fn by_subscription(
    read: &ReadModels,
    subscription_id: &str,
) -> Result<Option<SubscriptionRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    let email: Option<String> = client
        .query_opt(
            "SELECT email FROM subscriptions WHERE subscription_id = $1",
            &[&subscription_id],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    match email {
        Some(e) => by_email(read, &e).await,
        None => Ok(None),
    }
}

/// A renewing plan that the processor will charge again before `until`.
#[derive(Debug, Clone, PartialEq)]
pub struct ComingRenewal {
    pub email: String,
    pub subscription_id: String,
    pub plan: String,
    pub renews_at: DateTime<Utc>,
}

pub async fn renewing_before(
    read: &ReadModels,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<ComingRenewal>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    let rows = client
        .query(
            "SELECT email, subscription_id, plan, renews_at FROM subscriptions
             WHERE subscription_id IS NOT NULL AND status = $1 AND renews_at > $2 AND renews_at <= $3
             ORDER BY renews_at",
            &[&SubscriptionStatus::Active.as_str(), &from, &until],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ComingRenewal {
                email: r.try_get("email")?,
                subscription_id: r.try_get("subscription_id")?,
                plan: r.try_get("plan")?,
                renews_at: r.try_get("renews_at")?,
            })
        })
        .collect()
}

/// A customer whose renewal was declined, and when the processor tries
/// again (`None`: it will not; the subscription ends).
#[derive(Debug, Clone, PartialEq)]
pub struct PastDue {
    pub email: String,
    pub subscription_id: String,
    pub next_try: Option<DateTime<Utc>>,
}

/// Every past-due customer, the soonest retry first.
pub async fn past_due(read: &ReadModels) -> Result<Vec<PastDue>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    let rows = client
        .query(
            "SELECT email, subscription_id, grace_until FROM subscriptions
             WHERE status = $1 AND subscription_id IS NOT NULL
             ORDER BY grace_until NULLS FIRST",
            &[&SubscriptionStatus::PastDue.as_str()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PastDue {
                email: r.try_get("email")?,
                subscription_id: r.try_get("subscription_id")?,
                next_try: r.try_get("grace_until")?,
            })
        })
        .collect()
}
