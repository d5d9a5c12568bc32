//! Per customer email: every event that concerns them, for the support view.

use crate::ledger::{self, Ledger, LedgerChange};
use crate::projection::{Projection, ProjectionRows};
use crate::table::{Db, Table};
use chrono::{DateTime, Utc};
use payledger_events::{Currency, DomainEvent, RecordedEvent};
use tokio_postgres::Error;

pub struct Timeline;

impl Projection for Timeline {
    fn name(&self) -> &'static str {
        "timeline"
    }
    fn version(&self) -> i32 {
        // v2: processor disagreements.
        // v3: ledger rows remember refunds seen before their charge.
        // v4: a charge's summary keeps the payment id's case.
        // v5: buying again after a refund is not a duplicate charge.
        // v6: a subscription's first invoice pays its checkout.
        // v7: subscription disagreements found before access ended.
        7
    }
    fn shares_ledger(&self) -> bool {
        true
    }
    fn handles(&self, event_type: &str) -> bool {
        // Only the processor's raw callbacks and reconciliation runs concern
        // no one customer.
        !matches!(
            event_type,
            "ProcessorEventReceived"
                | "ReconciliationCompleted"
                | "ReconciliationFailed"
                | "DiscrepancyAcknowledged"
                | "DiscrepancyResolved"
        )
    }
    fn schema_sql(&self) -> &'static str {
        concat!(include_str!("ledger.sql"), include_str!("timeline.sql"))
    }
    fn public_tables(&self) -> &'static [&'static str] {
        &["timeline"]
    }
    fn rows(&self) -> Box<dyn ProjectionRows> {
        Box::<TimelineRows>::default()
    }
}

crate::record! {
    Entry in "timeline", key(email, position), indexes() {
        email: String = TEXT,
        position: i64 = INT8,
        recorded_at: DateTime<Utc> = TIMESTAMPTZ,
        event_type: String = TEXT,
        stream_id: String = TEXT,
        actor: String = TEXT,
        summary: String = TEXT,
    }
}

crate::record! {
    /// Who an outbox key's email went to, for the email events that name
    /// only the key.
    EmailKey in "timeline_email_keys", key(email_key), indexes() {
        email_key: String = TEXT,
        email: String = TEXT,
    }
}

#[derive(Default)]
pub struct TimelineRows {
    ledger: Ledger,
    timeline: Table<Entry>,
    timeline_email_keys: Table<EmailKey>,
}

crate::projection_rows!(TimelineRows {
    ledger,
    timeline,
    timeline_email_keys
});

impl TimelineRows {
    async fn apply_event(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), Error> {
        let mut people: Vec<String> = vec![];
        let money = |amount: i64, c: &Currency| c.format_amount(amount);
        let summary = match decoded {
            DomainEvent::CheckoutStarted(c) => {
                people.push(c.email.clone());
                format!(
                    "started checkout for {} ({})",
                    c.plan,
                    money(c.amount, &c.currency)
                )
            }
            DomainEvent::CheckoutReturned(_) | DomainEvent::ProcessorSessionOpened(_) => {
                let checkout = event
                    .stream
                    .as_str()
                    .trim_start_matches("checkout-")
                    .to_string();
                if let Some(c) = self.ledger.checkouts.get(db, &checkout).await? {
                    people.push(c.email);
                }
                match decoded {
                    DomainEvent::CheckoutReturned(_) => "came back to the return page".to_string(),
                    _ => "was sent to the processor's pay page".to_string(),
                }
            }
            DomainEvent::ChargeSucceeded(c) => {
                people.extend(c.customer_email.clone());
                payment_summary(decoded).unwrap_or_default()
            }
            DomainEvent::ChargeMatched(m) => {
                people.push(m.email.clone());
                payment_summary(decoded).unwrap_or_default()
            }
            DomainEvent::ChargeRefunded(_)
            | DomainEvent::DisputeOpened(_)
            | DomainEvent::DisputeClosed(_) => payment_summary(decoded).unwrap_or_default(),
            DomainEvent::SubscriptionGranted(g) => {
                people.push(g.email.clone());
                format!("granted {} by {}: {}", g.plan, g.granted_by, g.reason)
            }
            DomainEvent::SubscriptionRevoked(r) => {
                people.push(r.email.clone());
                format!("access revoked by {}: {}", r.revoked_by, r.reason)
            }
            DomainEvent::StatusLinkRequested(r) => {
                people.push(r.email.clone());
                self.remember_key(db, &format!("status_link:{}", r.request_id), &r.email)
                    .await?;
                "asked for a status link by email".to_string()
            }
            DomainEvent::EmailSent(s) => {
                people.extend(self.recipient(db, &s.email_key).await?);
                format!("email {} sent (attempt {})", s.email_key, s.attempt)
            }
            DomainEvent::EmailFailed(f) => {
                people.extend(self.recipient(db, &f.email_key).await?);
                let how = if f.permanent { "gave up" } else { "will retry" };
                format!(
                    "email {} failed (attempt {}, {how}): {}",
                    f.email_key, f.attempt, f.error
                )
            }
            DomainEvent::EmailResendRequested(r) => {
                people.extend(self.recipient(db, &r.email_key).await?);
                format!("resend of {} requested by {}", r.email_key, r.requested_by)
            }
            DomainEvent::ProcessorDisagreement(d) => {
                people.extend(self.ledger.email_of_payment(db, &d.payment_id).await?);
                payment_summary(decoded).unwrap_or_default()
            }
            DomainEvent::SubscriptionDisagreement(d) => {
                people.extend(d.email.clone());
                format!(
                    "asked before access ended, the processor disagrees about {}: {}",
                    d.subscription_id, d.detail
                )
            }
            _ => String::new(),
        };
        for change in self.ledger.track(db, event, decoded).await? {
            if let Some((key, _, email)) = ledger::email_for(&change) {
                self.remember_key(db, &key, &email).await?;
            }
            match change {
                LedgerChange::Activated { email, .. } => people.push(email),
                LedgerChange::Refunded { email: Some(e), .. }
                | LedgerChange::DisputeOpened { email: Some(e), .. }
                | LedgerChange::DisputeClosed { email: Some(e), .. } => people.push(e),
                _ => {}
            }
        }
        let actor = event.metadata.actor.to_string();
        for email in people {
            self.timeline.put(Entry {
                email: email.to_lowercase(),
                position: event.position,
                recorded_at: event.recorded_at,
                event_type: event.event_type.clone(),
                stream_id: event.stream.as_str().into(),
                actor: actor.clone(),
                summary: summary.clone(),
            });
        }
        Ok(())
    }

    async fn remember_key(&mut self, db: Db<'_>, key: &str, email: &str) -> Result<(), Error> {
        if self.timeline_email_keys.get(db, key).await?.is_none() {
            self.timeline_email_keys.put(EmailKey {
                email_key: key.into(),
                email: email.to_lowercase(),
            });
        }
        Ok(())
    }

    async fn recipient(&mut self, db: Db<'_>, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .timeline_email_keys
            .get(db, key)
            .await?
            .map(|k| k.email))
    }
}

/// How the timeline words the events of a payment's own stream; support
/// shows these for a payment no address is known for, straight from its
/// stream.
pub fn payment_summary(decoded: &DomainEvent) -> Option<String> {
    let money = |amount: i64, c: &Currency| c.format_amount(amount);
    Some(match decoded {
        // The payment id is the processor's, case and all.
        DomainEvent::ChargeSucceeded(c) => format!(
            "charged {} (payment {}, via {})",
            money(c.amount, &c.currency),
            c.payment_id,
            format!("{:?}", c.source).to_lowercase()
        ),
        DomainEvent::ChargeMatched(m) => format!(
            "payment {} matched to plan {} by {}: {}",
            m.payment_id, m.plan, m.matched_by, m.reason
        ),
        DomainEvent::ChargeRefunded(r) => format!(
            "refunded {} of payment {}",
            money(r.amount, &r.currency),
            r.payment_id
        ),
        DomainEvent::DisputeOpened(d) => format!(
            "opened dispute {} on payment {}",
            d.dispute_id, d.payment_id
        ),
        DomainEvent::DisputeClosed(d) => format!("dispute {} closed: {}", d.dispute_id, d.status),
        DomainEvent::ProcessorDisagreement(d) => {
            format!("reconciliation found a disagreement: {}", d.detail)
        }
        _ => return None,
    })
}
