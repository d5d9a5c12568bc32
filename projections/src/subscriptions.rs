//! Who has access: one row per account email.

use crate::ledger::{Ledger, LedgerChange};
use crate::projection::{Projection, ProjectionRows};
use crate::states::{DisputeState, SubscriptionStatus};
use crate::table::{Db, Table};
use chrono::{DateTime, Duration, Utc};
use payledger_events::{DomainEvent, RecordedEvent};
use tokio_postgres::Error;

/// A one-year plan runs 365 days from the charge: every customer gets the
/// same length, so across a 29 February the period ends one calendar day
/// earlier than "same date next year" (docs/projections.md).
pub const PLAN_PERIOD_DAYS: i64 = 365;

/// The end of a plan period that starts at `start`. Saturates instead of
/// panicking: a rule must be total over any date a fact can carry.
pub fn period_end_from(start: DateTime<Utc>) -> DateTime<Utc> {
    start
        .checked_add_signed(Duration::days(PLAN_PERIOD_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

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
        // v2: ledger rows remember refunds seen before their charge.
        // v3: buying again after a refund is not a duplicate charge.
        // v4: a charge reconciliation found is activated as a rescue.
        4
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
    fn rows(&self) -> Box<dyn ProjectionRows> {
        Box::<SubscriptionRows>::default()
    }
}

crate::record! {
    Subscription in "subscriptions", key(email), indexes(payment_id) {
        email: String = TEXT,
        plan: String = TEXT,
        status: String = TEXT,
        period_start: DateTime<Utc> = TIMESTAMPTZ,
        period_end: DateTime<Utc> = TIMESTAMPTZ,
        activation: String = TEXT,
        payment_id: Option<String> = TEXT,
        reason: Option<String> = TEXT,
        updated_position: i64 = INT8,
    }
}

const BY_PAYMENT: usize = 0;

#[derive(Default)]
pub struct SubscriptionRows {
    ledger: Ledger,
    subscriptions: Table<Subscription>,
}

crate::projection_rows!(SubscriptionRows {
    ledger,
    subscriptions
});

impl SubscriptionRows {
    async fn apply_event(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), Error> {
        let position = event.position;
        match decoded {
            DomainEvent::SubscriptionGranted(g) => {
                let email = g.email.to_lowercase();
                let end = period_end_from(event.recorded_at);
                let kept_end = self
                    .subscriptions
                    .get(db, &email)
                    .await?
                    .map_or(end, |s| s.period_end.max(end));
                self.subscriptions.put(Subscription {
                    email,
                    plan: g.plan.clone(),
                    status: SubscriptionStatus::Active.as_str().into(),
                    period_start: event.recorded_at,
                    period_end: kept_end,
                    activation: "grant".into(),
                    payment_id: None,
                    reason: Some(g.reason.clone()),
                    updated_position: position,
                });
                return Ok(());
            }
            DomainEvent::SubscriptionRevoked(r) => {
                if let Some(mut s) = self.subscriptions.get(db, &r.email.to_lowercase()).await? {
                    s.status = SubscriptionStatus::Revoked.as_str().into();
                    s.reason = Some(r.reason.clone());
                    s.updated_position = position;
                    self.subscriptions.put(s);
                }
                return Ok(());
            }
            _ => {}
        }
        for change in self.ledger.track(db, event, decoded).await? {
            match change {
                LedgerChange::Activated {
                    payment_id,
                    email,
                    plan,
                    activation,
                    paid_at,
                    ..
                } => {
                    let end = period_end_from(paid_at);
                    let (start, end) = match self.subscriptions.get(db, &email).await? {
                        // Paying again before the end extends the year.
                        Some(s) if s.period_end >= paid_at => {
                            (s.period_start.min(paid_at), s.period_end.max(end))
                        }
                        Some(s) => (paid_at, s.period_end.max(end)),
                        None => (paid_at, end),
                    };
                    self.subscriptions.put(Subscription {
                        email,
                        plan,
                        status: SubscriptionStatus::Active.as_str().into(),
                        period_start: start,
                        period_end: end,
                        activation: activation.as_str().into(),
                        payment_id: Some(payment_id),
                        reason: None,
                        updated_position: position,
                    });
                }
                LedgerChange::Refunded {
                    payment_id,
                    fully: true,
                    ..
                } => {
                    self.set_status(
                        db,
                        &payment_id,
                        None,
                        SubscriptionStatus::Refunded.as_str(),
                        position,
                    )
                    .await?
                }
                LedgerChange::DisputeOpened { payment_id, .. } => {
                    self.set_status(
                        db,
                        &payment_id,
                        None,
                        SubscriptionStatus::Disputed.as_str(),
                        position,
                    )
                    .await?
                }
                LedgerChange::DisputeClosed {
                    payment_id, status, ..
                } => {
                    if DisputeState::of_closing(&status) == Some(DisputeState::Lost) {
                        // Also when the opening has not arrived (yet, or
                        // ever): a lost dispute ends access either way.
                        for from in [
                            SubscriptionStatus::Disputed.as_str(),
                            SubscriptionStatus::Active.as_str(),
                        ] {
                            self.set_status(
                                db,
                                &payment_id,
                                Some(from),
                                SubscriptionStatus::Revoked.as_str(),
                                position,
                            )
                            .await?;
                        }
                    } else {
                        self.set_status(
                            db,
                            &payment_id,
                            Some(SubscriptionStatus::Disputed.as_str()),
                            SubscriptionStatus::Active.as_str(),
                            position,
                        )
                        .await?
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Sets the status of the subscriptions behind a payment (only those in
    /// status `from`, when given).
    async fn set_status(
        &mut self,
        db: Db<'_>,
        payment_id: &str,
        from: Option<&str>,
        status: &str,
        position: i64,
    ) -> Result<(), Error> {
        for mut s in self.subscriptions.find(db, BY_PAYMENT, payment_id).await? {
            if from.is_some_and(|f| f != s.status) {
                continue;
            }
            s.status = status.into();
            s.updated_position = position;
            self.subscriptions.put(s);
        }
        Ok(())
    }
}
