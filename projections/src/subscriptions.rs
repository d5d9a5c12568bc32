//! Who has access: one row per account email.

use crate::ledger::{self, LedgerChange};
use crate::projection::{ApplyFuture, Projection};
use crate::sql;
use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::Transaction;
use payledger_events::{DomainEvent, RecordedEvent};

/// A one-year plan runs 365 days from the charge: every customer gets the
/// same length, so across a 29 February the period ends one calendar day
/// earlier than "same date next year" (docs/projections.md).
pub const PLAN_PERIOD_DAYS: i64 = 365;

pub struct Subscriptions;

const TYPES: &[&str] = &[
    "CheckoutStarted",
    "ChargeSucceeded",
    "ChargeMatched",
    "ChargeRefunded",
    "DisputeOpened",
    "DisputeClosed",
    "SubscriptionGranted",
    "SubscriptionRevoked",
];

impl Projection for Subscriptions {
    fn name(&self) -> &'static str {
        "subscriptions"
    }
    fn version(&self) -> i32 {
        1
    }
    fn handles(&self, event_type: &str) -> bool {
        TYPES.contains(&event_type)
    }
    fn schema_sql(&self) -> &'static str {
        concat!(
            include_str!("ledger.sql"),
            include_str!("subscriptions.sql")
        )
    }
    fn public_sql(&self) -> &'static str {
        include_str!("payledger_access.sql")
    }
    fn public_tables(&self) -> &'static [&'static str] {
        &["subscriptions"]
    }
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        event: &'a RecordedEvent,
        decoded: &'a DomainEvent,
    ) -> ApplyFuture<'a> {
        Box::pin(async move {
            let position = event.position;
            match decoded {
                DomainEvent::SubscriptionGranted(g) => {
                    let end = event.recorded_at + Duration::days(PLAN_PERIOD_DAYS);
                    sql::exec(tx,
                        "INSERT INTO subscriptions (email, plan, status, period_start, period_end, activation, payment_id, reason, updated_position)
                         VALUES (lower($1), $2, 'active', $3, $4, 'grant', NULL, $5, $6)
                         ON CONFLICT (email) DO UPDATE SET plan = $2, status = 'active', period_start = $3,
                             period_end = GREATEST(subscriptions.period_end, $4), activation = 'grant', payment_id = NULL,
                             reason = $5, updated_position = $6",
                        &[&g.email, &g.plan, &event.recorded_at, &end, &g.reason, &position],
                    )
                    .await?;
                    return Ok(());
                }
                DomainEvent::SubscriptionRevoked(r) => {
                    sql::exec(tx,
                        "UPDATE subscriptions SET status = 'revoked', reason = $2, updated_position = $3 WHERE email = lower($1)",
                        &[&r.email, &r.reason, &position],
                    )
                    .await?;
                    return Ok(());
                }
                _ => {}
            }
            for change in ledger::track(tx, event, decoded).await? {
                match change {
                    LedgerChange::Activated {
                        payment_id,
                        email,
                        plan,
                        activation,
                        paid_at,
                        ..
                    } => {
                        activate(
                            tx,
                            &email,
                            &plan,
                            activation.as_str(),
                            &payment_id,
                            paid_at,
                            position,
                        )
                        .await?;
                    }
                    LedgerChange::Refunded {
                        payment_id,
                        fully: true,
                        ..
                    } => {
                        set_status(tx, &payment_id, "refunded", position).await?;
                    }
                    LedgerChange::DisputeOpened { payment_id, .. } => {
                        set_status(tx, &payment_id, "disputed", position).await?;
                    }
                    LedgerChange::DisputeClosed {
                        payment_id, status, ..
                    } => {
                        let to = if status == "lost" {
                            "revoked"
                        } else {
                            "active"
                        };
                        sql::exec(tx,
                            "UPDATE subscriptions SET status = $2, updated_position = $3 WHERE payment_id = $1 AND status = 'disputed'",
                            &[&payment_id, &to, &position],
                        )
                        .await?;
                    }
                    _ => {}
                }
            }
            Ok(())
        })
    }
}

async fn activate(
    tx: &Transaction<'_>,
    email: &str,
    plan: &str,
    activation: &str,
    payment_id: &str,
    paid_at: DateTime<Utc>,
    position: i64,
) -> Result<(), tokio_postgres::Error> {
    let end = paid_at + Duration::days(PLAN_PERIOD_DAYS);
    sql::exec(tx,
        "INSERT INTO subscriptions (email, plan, status, period_start, period_end, activation, payment_id, reason, updated_position)
         VALUES ($1, $2, 'active', $3, $4, $5, $6, NULL, $7)
         ON CONFLICT (email) DO UPDATE SET plan = $2, status = 'active',
             period_start = CASE WHEN subscriptions.period_end < $3 THEN $3 ELSE LEAST(subscriptions.period_start, $3) END,
             period_end = GREATEST(subscriptions.period_end, $4),
             activation = $5, payment_id = $6, reason = NULL, updated_position = $7",
        &[&email, &plan, &paid_at, &end, &activation, &payment_id, &position],
    )
    .await
    .map(|_| ())
}

async fn set_status(
    tx: &Transaction<'_>,
    payment_id: &str,
    status: &str,
    position: i64,
) -> Result<(), tokio_postgres::Error> {
    sql::exec(
        tx,
        "UPDATE subscriptions SET status = $2, updated_position = $3 WHERE payment_id = $1",
        &[&payment_id, &status, &position],
    )
    .await
    .map(|_| ())
}
