//! Who has access: one row per account email.

use crate::ledger::{Ledger, LedgerChange};
use crate::projection::{Projection, ProjectionRows};
use crate::renewals::{Renewals, Standing};
use crate::states::{DisputeState, SubscriptionStatus};
use crate::table::{Db, Table};
use chrono::{DateTime, Utc};
use payledger_events::{DomainEvent, Period, RecordedEvent};
use tokio_postgres::Error;

/// The end of one period of a plan that starts at `start`, in the
/// processor's calendar arithmetic (31 January + 1 month = end of February;
/// docs/projections.md). Saturates instead of panicking: a rule must be
/// total over any date a fact can carry.
pub fn period_end_from(start: DateTime<Utc>, period: Period) -> DateTime<Utc> {
    payledger_events::period_end(start, period, 1)
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
        // v5: renewals (spec §12); periods in calendar months and years.
        // v6: each change of access is a versioned message (spec §13).
        // v7: an index for the column the rules find rows by.
        7
    }
    fn shares_ledger(&self) -> bool {
        true
    }
    fn handles(&self, event_type: &str) -> bool {
        TYPES.contains(&event_type) || crate::renewals::LIFECYCLE.contains(&event_type)
    }
    fn schema_sql(&self) -> &'static str {
        concat!(
            include_str!("ledger.sql"),
            include_str!("renewals.sql"),
            include_str!("subscriptions.sql")
        )
    }
    fn public_sql(&self) -> &'static str {
        include_str!("payledger_access.sql")
    }
    fn public_tables(&self) -> &'static [&'static str] {
        &["subscriptions", "subscription_changes"]
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
        subscription_id: Option<String> = TEXT,
        renews_at: Option<DateTime<Utc>> = TIMESTAMPTZ,
        cancel_at_period_end: bool = BOOL,
        grace_until: Option<DateTime<Utc>> = TIMESTAMPTZ,
        version: i64 = INT8,
    }
}

crate::record! {
    /// One change of a customer's access, as the product's application is
    /// told of it (spec §13): `version` counts the changes of that address.
    SubscriptionChange in "subscription_changes", key(email, version), indexes() {
        email: String = TEXT,
        version: i64 = INT8,
        message_type: String = TEXT,
        active: bool = BOOL,
        plan: String = TEXT,
        status: String = TEXT,
        period_end: DateTime<Utc> = TIMESTAMPTZ,
        activation: String = TEXT,
        renews_at: Option<DateTime<Utc>> = TIMESTAMPTZ,
        cancel_at_period_end: bool = BOOL,
        reference: Option<String> = TEXT,
        changed_at: DateTime<Utc> = TIMESTAMPTZ,
        position: i64 = INT8,
    }
}

const BY_PAYMENT: usize = 0;

#[derive(Default)]
pub struct SubscriptionRows {
    ledger: Ledger,
    renewals: Renewals,
    subscriptions: Table<Subscription>,
    changes: Table<SubscriptionChange>,
    /// The rows the event being applied wrote, as they were before it.
    touched: Vec<(String, Option<Subscription>)>,
}

crate::projection_rows!(SubscriptionRows {
    ledger,
    renewals,
    subscriptions,
    changes
});

/// The message a change of access is (spec §13); `None` when nothing the
/// application is told about changed.
pub fn message_type(before: Option<&Subscription>, after: &Subscription) -> Option<&'static str> {
    use SubscriptionStatus as S;
    let told = |s: &Subscription| {
        (
            s.plan.clone(),
            s.status.clone(),
            s.period_end,
            s.activation.clone(),
            s.renews_at,
            s.cancel_at_period_end,
        )
    };
    if before.is_some_and(|b| told(b) == told(after)) {
        return None;
    }
    let status = after.status.parse::<S>().ok();
    let was = before.and_then(|b| b.status.parse::<S>().ok());
    Some(match status {
        Some(S::PastDue) => "subscription.past_due",
        Some(S::Canceled) => "subscription.canceled",
        Some(S::Ended) | Some(S::Revoked) => "subscription.ended",
        Some(S::Refunded) => "subscription.refunded",
        Some(S::Disputed) => "subscription.disputed",
        Some(S::Active) => match (before, was) {
            (None, _) => "subscription.activated",
            (Some(_), Some(S::Active)) => match before {
                Some(b) if after.period_end > b.period_end => "subscription.renewed",
                _ => "subscription.updated",
            },
            (Some(_), Some(S::Ended) | Some(S::Revoked) | Some(S::Refunded)) => {
                "subscription.activated"
            }
            (Some(_), _) => "subscription.reactivated",
        },
        None => "subscription.updated",
    })
}

/// Whether the row grants access at `at` (past due kept while retried, as
/// `/api/access` does by default).
fn grants_access_at(s: &Subscription, at: DateTime<Utc>) -> bool {
    use SubscriptionStatus as S;
    let in_grace = s.grace_until.is_some_and(|g| g > at);
    match s.status.parse::<S>() {
        Ok(S::Active | S::PastDue) => s.period_end > at || in_grace,
        Ok(S::Canceled) => s.period_end > at,
        _ => false,
    }
}

impl SubscriptionRows {
    async fn apply_event(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), Error> {
        self.touched.clear();
        self.apply_rules(db, event, decoded).await?;
        for (email, was) in std::mem::take(&mut self.touched) {
            let Some(mut now) = self.subscriptions.get(db, &email).await? else {
                continue;
            };
            let version = was.as_ref().map_or(0, |w| w.version);
            now.version = version;
            if let Some(kind) = message_type(was.as_ref(), &now) {
                now.version = version + 1;
                self.changes.put(SubscriptionChange {
                    email: now.email.clone(),
                    version: now.version,
                    message_type: kind.into(),
                    active: grants_access_at(&now, event.recorded_at),
                    plan: now.plan.clone(),
                    status: now.status.clone(),
                    period_end: now.period_end,
                    activation: now.activation.clone(),
                    renews_at: now.renews_at,
                    cancel_at_period_end: now.cancel_at_period_end,
                    reference: now.payment_id.clone(),
                    changed_at: event.recorded_at,
                    position: event.position,
                });
            }
            self.subscriptions.put(now);
        }
        Ok(())
    }

    /// Writes a row, remembering how it was before this event.
    async fn put_row(&mut self, db: Db<'_>, row: Subscription) -> Result<(), Error> {
        if !self.touched.iter().any(|(e, _)| *e == row.email) {
            let before = self.subscriptions.get(db, &row.email).await?;
            self.touched.push((row.email.clone(), before));
        }
        self.subscriptions.put(row);
        Ok(())
    }

    async fn apply_rules(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), Error> {
        let position = event.position;
        match decoded {
            DomainEvent::SubscriptionGranted(g) => {
                let email = g.email.to_lowercase();
                let end = period_end_from(event.recorded_at, Period::Year);
                let kept_end = self
                    .subscriptions
                    .get(db, &email)
                    .await?
                    .map_or(end, |s| s.period_end.max(end));
                self.put_row(
                    db,
                    Subscription {
                        email,
                        plan: g.plan.clone(),
                        status: SubscriptionStatus::Active.as_str().into(),
                        period_start: event.recorded_at,
                        period_end: kept_end,
                        activation: "grant".into(),
                        payment_id: None,
                        reason: Some(g.reason.clone()),
                        updated_position: position,
                        subscription_id: None,
                        renews_at: None,
                        cancel_at_period_end: false,
                        grace_until: None,
                        version: 0,
                    },
                )
                .await?;
                return Ok(());
            }
            DomainEvent::SubscriptionRevoked(r) => {
                if let Some(mut s) = self.subscriptions.get(db, &r.email.to_lowercase()).await? {
                    s.status = SubscriptionStatus::Revoked.as_str().into();
                    s.reason = Some(r.reason.clone());
                    s.updated_position = position;
                    self.put_row(db, s).await?;
                }
                return Ok(());
            }
            _ => {}
        }
        if let Some(standing) = self.renewals.track(db, &mut self.ledger, decoded).await? {
            self.apply_standing(db, &standing, position).await?;
        }
        for change in self.ledger.track(db, event, decoded).await? {
            match change {
                LedgerChange::Activated {
                    payment_id,
                    email,
                    plan,
                    activation,
                    paid_at,
                    period,
                    ..
                } => {
                    let end = period_end_from(paid_at, period);
                    let (start, end) = match self.subscriptions.get(db, &email).await? {
                        // Paying again before the end extends the year.
                        Some(s) if s.period_end >= paid_at => {
                            (s.period_start.min(paid_at), s.period_end.max(end))
                        }
                        Some(s) => (paid_at, s.period_end.max(end)),
                        None => (paid_at, end),
                    };
                    let renewing = self
                        .subscriptions
                        .get(db, &email)
                        .await?
                        .and_then(|s| s.subscription_id);
                    self.put_row(
                        db,
                        Subscription {
                            email,
                            plan,
                            status: SubscriptionStatus::Active.as_str().into(),
                            period_start: start,
                            period_end: end,
                            activation: activation.as_str().into(),
                            payment_id: Some(payment_id),
                            reason: None,
                            updated_position: position,
                            subscription_id: renewing.clone(),
                            renews_at: None,
                            cancel_at_period_end: false,
                            grace_until: None,
                            version: 0,
                        },
                    )
                    .await?;
                    // The subscription's own facts came first: they, not
                    // this payment alone, say where it stands.
                    if let Some(id) = renewing {
                        if let Some(standing) =
                            self.renewals.standing(db, &mut self.ledger, &id).await?
                        {
                            self.apply_standing(db, &standing, position).await?;
                        }
                    }
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
        if let DomainEvent::CheckoutStarted(c) = decoded {
            let checkout_id = c.checkout_id.to_string();
            for standing in self
                .renewals
                .standings_of_checkout(db, &mut self.ledger, &checkout_id)
                .await?
            {
                self.apply_standing(db, &standing, position).await?;
            }
        }
        Ok(())
    }

    /// Writes a renewing subscription's standing onto its customer's row. A
    /// person's revocation and an open dispute stay as they are.
    async fn apply_standing(
        &mut self,
        db: Db<'_>,
        standing: &Standing,
        position: i64,
    ) -> Result<(), Error> {
        let existing = self.subscriptions.get(db, &standing.email).await?;
        let kept = [SubscriptionStatus::Revoked, SubscriptionStatus::Disputed];
        let status = match &existing {
            Some(s) if kept.iter().any(|k| k.as_str() == s.status) => s.status.clone(),
            _ => standing.status.as_str().into(),
        };
        let period_start = existing.as_ref().map_or(standing.paid_from, |s| {
            s.period_start.min(standing.paid_from)
        });
        self.put_row(
            db,
            Subscription {
                email: standing.email.clone(),
                plan: standing.plan.clone(),
                status,
                period_start,
                period_end: standing.access_until,
                activation: existing
                    .as_ref()
                    .map_or("checkout".into(), |s| s.activation.clone()),
                payment_id: standing
                    .last_payment_id
                    .clone()
                    .or(existing.as_ref().and_then(|s| s.payment_id.clone())),
                reason: None,
                updated_position: position,
                subscription_id: Some(standing.subscription_id.clone()),
                renews_at: standing.renews_at,
                cancel_at_period_end: standing.cancel_at_period_end,
                grace_until: standing.grace_until,
                version: 0,
            },
        )
        .await?;
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
            // An ended subscription stays ended: what happens to its
            // payments later (a refund) no longer changes its access.
            if from.is_some_and(|f| f != s.status) || s.status == SubscriptionStatus::Ended.as_str()
            {
                continue;
            }
            s.status = status.into();
            s.updated_position = position;
            self.put_row(db, s).await?;
        }
        Ok(())
    }
}
