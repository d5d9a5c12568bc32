//! The outbox rows (sending is the email sender's job).

use crate::ledger::{self, Ledger, LedgerChange};
use crate::projection::{Projection, ProjectionRows};
use crate::renewals::Renewals;
use crate::states::EmailStatus;
use crate::table::{Db, Table};
use chrono::{DateTime, Utc};
use payledger_events::{DomainEvent, RecordedEvent};
use tokio_postgres::Error;

pub struct OutgoingEmails;

const TYPES: &[&str] = &[
    "CheckoutStarted",
    "ChargeSucceeded",
    "RenewalReminderDue",
    "ChargeMatched",
    "ChargeRefunded",
    "DisputeOpened",
    "DisputeClosed",
    "StatusLinkRequested",
    "EmailSent",
    "EmailFailed",
    "EmailResendRequested",
];

impl Projection for OutgoingEmails {
    fn name(&self) -> &'static str {
        "outgoing_emails"
    }
    fn version(&self) -> i32 {
        // v2: refunds seen before their charge are announced when it comes.
        // v3: buying again after a refund is not a duplicate charge.
        // v4: the customer hears of disputes (opened, won, lost).
        // v5: a subscription's first invoice pays its checkout; renewal
        //     receipts, failed payments, cancellations and endings.
        5
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
            include_str!("outgoing_emails.sql")
        )
    }
    fn public_tables(&self) -> &'static [&'static str] {
        &["outgoing_emails"]
    }
    fn rows(&self) -> Box<dyn ProjectionRows> {
        Box::<OutgoingEmailRows>::default()
    }
}

crate::record! {
    OutgoingEmail in "outgoing_emails", key(email_key), indexes() {
        email_key: String = TEXT,
        kind: String = TEXT,
        recipient: String = TEXT,
        payment_id: Option<String> = TEXT,
        status: String = TEXT,
        attempts: i32 = INT4,
        last_error: Option<String> = TEXT,
        message_id: Option<String> = TEXT,
        resends: i32 = INT4,
        requested_at: DateTime<Utc> = TIMESTAMPTZ,
        updated_position: i64 = INT8,
    }
}

#[derive(Default)]
pub struct OutgoingEmailRows {
    ledger: Ledger,
    renewals: Renewals,
    outgoing_emails: Table<OutgoingEmail>,
}

crate::projection_rows!(OutgoingEmailRows {
    ledger,
    renewals,
    outgoing_emails
});

impl OutgoingEmailRows {
    async fn apply_event(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), Error> {
        let position = event.position;
        match decoded {
            DomainEvent::StatusLinkRequested(r) => {
                let key = format!("status_link:{}", r.request_id);
                return self
                    .request(db, &key, "status_link", &r.email, None, event)
                    .await;
            }
            DomainEvent::EmailSent(s) => {
                if let Some(mut row) = self.outgoing_emails.get(db, &s.email_key).await? {
                    row.status = EmailStatus::Sent.as_str().into();
                    row.attempts = row.attempts.max(s.attempt as i32);
                    row.message_id = Some(s.message_id.clone());
                    row.last_error = None;
                    row.updated_position = position;
                    self.outgoing_emails.put(row);
                }
                return Ok(());
            }
            DomainEvent::EmailFailed(f) => {
                if let Some(mut row) = self.outgoing_emails.get(db, &f.email_key).await? {
                    if row.status != EmailStatus::Sent.as_str() {
                        row.status = if f.permanent {
                            EmailStatus::Undeliverable.as_str()
                        } else {
                            EmailStatus::Failed.as_str()
                        }
                        .into();
                        row.attempts = row.attempts.max(f.attempt as i32);
                        row.last_error = Some(f.error.clone());
                        row.updated_position = position;
                        self.outgoing_emails.put(row);
                    }
                }
                return Ok(());
            }
            DomainEvent::RenewalReminderDue(r) => {
                let standing = self
                    .renewals
                    .standing(db, &mut self.ledger, &r.subscription_id)
                    .await?;
                // Only a renewal still coming is announced.
                if let Some(s) = standing.filter(|s| s.renews_at == Some(r.renews_at)) {
                    let key = format!(
                        "renewal_reminder:{}:{}",
                        r.subscription_id,
                        r.renews_at.timestamp()
                    );
                    self.request(db, &key, "renewal_reminder", &s.email, None, event)
                        .await?;
                }
                return Ok(());
            }
            DomainEvent::EmailResendRequested(r) => {
                if let Some(mut row) = self.outgoing_emails.get(db, &r.email_key).await? {
                    row.status = EmailStatus::Pending.as_str().into();
                    row.attempts = 0;
                    row.last_error = None;
                    row.resends = row.resends.saturating_add(1);
                    row.updated_position = position;
                    self.outgoing_emails.put(row);
                }
                return Ok(());
            }
            _ => {}
        }
        // Every fact owes its email, also one that changes nothing (an
        // earlier attempt's failure delivered after a later one's); the
        // outbox key keeps each to one.
        let changed = self.renewals.track(db, &mut self.ledger, decoded).await?;
        if let (Some((key, kind, payment)), Some(subscription)) = (
            renewal_email(decoded),
            crate::renewals::subscription_of(decoded),
        ) {
            let standing = match changed {
                Some(s) => Some(s),
                None => {
                    self.renewals
                        .standing(db, &mut self.ledger, subscription)
                        .await?
                }
            };
            // A failure of an invoice since paid is old news.
            let old_news = match decoded {
                DomainEvent::InvoicePaymentFailed(f) => {
                    self.renewals
                        .invoice_paid(db, subscription, &f.invoice_id)
                        .await?
                }
                _ => false,
            };
            match (standing, old_news) {
                (_, true) => {}
                (Some(standing), false) => {
                    self.request(db, &key, kind, &standing.email, payment.as_deref(), event)
                        .await?;
                }
                // Owed once the customer is known, whatever the order.
                (None, false) => {
                    let owed = format!("{kind}|{key}|{}", payment.unwrap_or_default());
                    self.renewals.owe(db, subscription, &owed).await?;
                }
            }
        }
        if let Some(subscription) = crate::renewals::subscription_of(decoded) {
            self.announce_owed(db, subscription, event).await?;
        }
        if let DomainEvent::CheckoutStarted(c) = decoded {
            let checkout_id = c.checkout_id.to_string();
            let known = self
                .renewals
                .standings_of_checkout(db, &mut self.ledger, &checkout_id)
                .await?;
            for standing in known {
                self.announce_owed(db, &standing.subscription_id, event)
                    .await?;
            }
        }
        for change in self.ledger.track(db, event, decoded).await? {
            // Refunds seen before their charge are announced once the
            // charge (and the customer's address) arrives, as they would
            // have been in the processor's order.
            if let LedgerChange::ChargeAfterRefund {
                payment_id,
                refund_ids,
                email: Some(recipient),
                ..
            } = &change
            {
                for refund_id in refund_ids {
                    let key = format!("refund_confirmation:{refund_id}");
                    self.request(
                        db,
                        &key,
                        "refund_confirmation",
                        recipient,
                        Some(payment_id),
                        event,
                    )
                    .await?;
                }
                continue;
            }
            if let Some((key, kind, recipient)) = ledger::email_for(&change) {
                let payment = match &change {
                    LedgerChange::Activated { payment_id, .. }
                    | LedgerChange::Refunded { payment_id, .. }
                    | LedgerChange::DisputeOpened { payment_id, .. }
                    | LedgerChange::DisputeClosed { payment_id, .. } => Some(payment_id.as_str()),
                    _ => None,
                };
                // Disputes recorded before customers were told of them stay
                // untold: an email about a months-old dispute would confuse.
                if kind.starts_with("dispute_") && event.recorded_at < dispute_emails_from() {
                    continue;
                }
                // A closing also owes the notice that the dispute was opened,
                // whatever order the facts came in (an opening delivered
                // after its closing, or both before the charge).
                if let LedgerChange::DisputeClosed { dispute_id, .. } = &change {
                    let notice = format!("dispute_notice:{dispute_id}");
                    self.request(db, &notice, "dispute_notice", &recipient, payment, event)
                        .await?;
                }
                self.request(db, &key, kind, &recipient, payment, event)
                    .await?;
            }
        }
        Ok(())
    }

    /// The emails owed to a subscription's customer from before they were
    /// known, asked for now that they are.
    async fn announce_owed(
        &mut self,
        db: Db<'_>,
        subscription: &str,
        event: &RecordedEvent,
    ) -> Result<(), Error> {
        let Some(standing) = self
            .renewals
            .standing(db, &mut self.ledger, subscription)
            .await?
        else {
            return Ok(());
        };
        for owed in self.renewals.take_owed(db, subscription).await? {
            let mut parts = owed.splitn(3, '|');
            let (Some(kind), Some(key), payment) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            // A failure of an invoice paid since is old news.
            if let Some(invoice) = key
                .strip_prefix("payment_failed:")
                .and_then(|rest| rest.rsplit_once(':'))
                .map(|(invoice, _)| invoice)
            {
                if self
                    .renewals
                    .invoice_paid(db, subscription, invoice)
                    .await?
                {
                    continue;
                }
            }
            let payment = payment.filter(|p| !p.is_empty());
            self.request(db, key, kind, &standing.email, payment, event)
                .await?;
        }
        Ok(())
    }

    /// Asks for an email once: a key already in the outbox stays as it is.
    async fn request(
        &mut self,
        db: Db<'_>,
        key: &str,
        kind: &str,
        recipient: &str,
        payment_id: Option<&str>,
        event: &RecordedEvent,
    ) -> Result<(), Error> {
        if self.outgoing_emails.get(db, key).await?.is_none() {
            self.outgoing_emails.put(OutgoingEmail {
                email_key: key.into(),
                kind: kind.into(),
                recipient: recipient.to_lowercase(),
                payment_id: payment_id.map(Into::into),
                status: EmailStatus::Pending.as_str().into(),
                attempts: 0,
                last_error: None,
                message_id: None,
                resends: 0,
                requested_at: event.recorded_at,
                updated_position: event.position,
            });
        }
        Ok(())
    }
}

/// What a subscription's fact tells its customer (docs/communication.md):
/// the outbox key (each sent once), the kind, and the payment it is about.
pub fn renewal_email(fact: &DomainEvent) -> Option<(String, &'static str, Option<String>)> {
    match fact {
        // The first invoice's receipt is the checkout's confirmation.
        DomainEvent::InvoicePaid(i) if i.billing_reason != crate::ledger::FIRST_INVOICE => Some((
            format!("renewal_receipt:{}", i.invoice_id),
            "renewal_receipt",
            i.payment_id.clone(),
        )),
        DomainEvent::InvoicePaymentFailed(f) => Some((
            format!("payment_failed:{}:{}", f.invoice_id, f.attempt),
            // Before the processor's last try, the customer is told it is
            // the last.
            if f.attempt == FINAL_NOTICE_ATTEMPT {
                "final_notice"
            } else {
                "payment_failed"
            },
            None,
        )),
        DomainEvent::SubscriptionCancellationScheduled(c) => Some((
            format!(
                "cancellation_confirmed:{}:{}",
                c.subscription_id,
                c.requested_at.timestamp()
            ),
            "cancellation_confirmed",
            None,
        )),
        DomainEvent::SubscriptionEnded(e) => Some((
            format!("access_ended:{}", e.subscription_id),
            "access_ended",
            None,
        )),
        _ => None,
    }
}

/// The failed attempt after which the processor tries once more, the last
/// time (it retries 3, 5 and 7 days after the first: four attempts).
pub const FINAL_NOTICE_ATTEMPT: u32 = 3;

/// When payledger began writing to customers about disputes (this
/// projection's version 4); a rebuild keeps the same line.
fn dispute_emails_from() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_795_824_000, 0).unwrap_or_default() // 2026-11-28T00:00:00Z
}
