//! What needs a look. A discrepancy opens on the event that shows the
//! problem, closes by itself when a later event clears the condition, and
//! closes by `DiscrepancyResolved`.

use crate::ledger::{Ledger, LedgerChange};
use crate::projection::{Projection, ProjectionRows};
use crate::renewals::Renewals;
use crate::states::{DiscrepancyKind, DiscrepancyStatus};
use crate::table::{Db, Table};
use chrono::{DateTime, Utc};
use payledger_events::{shell_word, DomainEvent, RecordedEvent};
use tokio_postgres::Error;

pub struct Discrepancies;

/// `SubscriptionDisagreement.kind` of access kept with nothing paid for now.
pub const NO_PAID_PERIOD: &str = "no_paid_period";

/// One subscription's disagreement about one paid period.
fn period_subject(subscription: &str, ledger_period_end: DateTime<Utc>) -> String {
    format!("{subscription}:{}", ledger_period_end.timestamp())
}

const TYPES: &[&str] = &[
    "CheckoutStarted",
    "ChargeSucceeded",
    "ChargeMatched",
    "ChargeRefunded",
    "DisputeOpened",
    "DisputeClosed",
    "EmailSent",
    "EmailFailed",
    "ProcessorEventReceived",
    "DiscrepancyAcknowledged",
    "DiscrepancyResolved",
    "ProcessorDisagreement",
    "ProcessorEventConflict",
    "ProcessorObjectUnreadable",
    "AppWebhookMessageFailed",
    "SubscriptionDisagreement",
];

struct Opening<'a> {
    kind: &'a str,
    subject: &'a str,
    amount: Option<i64>,
    currency: Option<&'a str>,
    email: Option<&'a str>,
    action: String,
}

impl Projection for Discrepancies {
    fn name(&self) -> &'static str {
        "discrepancies"
    }
    fn version(&self) -> i32 {
        // v2: processor disagreements found by reconciliation.
        // v3: processor event conflicts; values in suggested commands quoted.
        // v4: ledger rows remember refunds seen before their charge.
        // v5: buying again after a refund is not a duplicate charge.
        // v6: suggested commands say what the queue's run lines say.
        // v7: a subscription's invoices account for their payments; a
        //     renewal found by asking the processor is renewal_not_applied.
        // v8: app_webhook_undeliverable.
        // v9: access_without_paid_period, subscription_disagreement.
        // v10: unreadable_processor_object.
        10
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
            include_str!("discrepancies.sql")
        )
    }
    fn public_tables(&self) -> &'static [&'static str] {
        &["discrepancies"]
    }
    fn rows(&self) -> Box<dyn ProjectionRows> {
        Box::<DiscrepancyRows>::default()
    }
}

crate::record! {
    Discrepancy in "discrepancies", key(id), indexes() {
        id: String = TEXT,
        kind: String = TEXT,
        subject: String = TEXT,
        amount: Option<i64> = INT8,
        currency: Option<String> = TEXT,
        customer_email: Option<String> = TEXT,
        first_seen: DateTime<Utc> = TIMESTAMPTZ,
        status: String = TEXT,
        suggested_action: String = TEXT,
        resolution: Option<String> = TEXT,
        resolved_by: Option<String> = TEXT,
        updated_position: i64 = INT8,
    }
}

#[derive(Default)]
pub struct DiscrepancyRows {
    ledger: Ledger,
    renewals: Renewals,
    discrepancies: Table<Discrepancy>,
}

crate::projection_rows!(DiscrepancyRows {
    ledger,
    renewals,
    discrepancies
});

impl DiscrepancyRows {
    async fn apply_event(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), Error> {
        let position = event.position;
        match decoded {
            DomainEvent::ProcessorEventReceived(p) if p.unparsed_reason.is_some() => {
                let action = format!(
                    "read the kept body (payledger audit log --stream {}) and act on it by hand; then support resolve",
                    shell_word(&format!("processor-event-{}", p.processor_event_id))
                );
                let opening = Opening {
                    kind: DiscrepancyKind::UnparsedProcessorEvent.as_str(),
                    subject: &p.processor_event_id,
                    amount: None,
                    currency: None,
                    email: None,
                    action,
                };
                return self.open(db, event, opening).await;
            }
            DomainEvent::AppWebhookMessageFailed(f) => {
                let action = format!(
                    "the application's endpoint {} never acknowledged message {} ({} about {}) after {} attempts (last: {}): fix the endpoint, then payledger app-webhooks replay {} --since <when it broke> --as NAME, and payledger support resolve",
                    f.endpoint_id, f.message_id, f.message_type, f.email, f.attempts, f.last_error, f.endpoint_id
                );
                let opening = Opening {
                    kind: DiscrepancyKind::AppWebhookUndeliverable.as_str(),
                    subject: &f.message_id,
                    amount: None,
                    currency: None,
                    email: Some(&f.email),
                    action,
                };
                return self.open(db, event, opening).await;
            }
            DomainEvent::SubscriptionDisagreement(d) => {
                let (kind, action) = if d.kind == NO_PAID_PERIOD {
                    (
                        DiscrepancyKind::AccessWithoutPaidPeriod,
                        format!("{}: the customer keeps access only for the renewal's grace; check the subscription at the processor (payledger support find {}), then grant, cancel or payledger support resolve", d.detail, shell_word(d.email.as_deref().unwrap_or(&d.subscription_id))),
                    )
                } else {
                    (
                        DiscrepancyKind::SubscriptionDisagreement,
                        format!("{}: compare the subscription at the processor with payledger support find {}, then payledger reconcile --since 30d or payledger support resolve", d.detail, shell_word(d.email.as_deref().unwrap_or(&d.subscription_id))),
                    )
                };
                let subject = period_subject(&d.subscription_id, d.ledger_period_end);
                let opening = Opening {
                    kind: kind.as_str(),
                    subject: &subject,
                    amount: None,
                    currency: None,
                    email: d.email.as_deref(),
                    action,
                };
                return self.open(db, event, opening).await;
            }
            DomainEvent::ProcessorEventConflict(c) => {
                let action = format!(
                    "a signed callback reused the id {} with another body (stored sha256 {}, received sha256 {}); nothing of the second body was recorded as a fact: check the event at the processor, then payledger support resolve",
                    c.processor_event_id, c.stored_body_sha256, c.received_body_sha256
                );
                let opening = Opening {
                    kind: DiscrepancyKind::ProcessorEventConflict.as_str(),
                    subject: &c.processor_event_id,
                    amount: None,
                    currency: None,
                    email: None,
                    action,
                };
                return self.open(db, event, opening).await;
            }
            DomainEvent::ProcessorObjectUnreadable(u) => {
                let payment = u
                    .payment_id
                    .as_ref()
                    .map(|p| format!(" (payment {p})"))
                    .unwrap_or_default();
                let action = format!(
                    "reconciliation found {} {}{payment} at the processor and cannot read it ({}); it may be money taken: look at it in the processor's dashboard, then rescue, refund or grant by hand, and payledger support resolve",
                    article(&u.object), u.object_id, u.reason
                );
                let opening = Opening {
                    kind: DiscrepancyKind::UnreadableProcessorObject.as_str(),
                    subject: u.payment_id.as_deref().unwrap_or(&u.object_id),
                    amount: None,
                    currency: None,
                    email: u.customer_email.as_deref(),
                    action,
                };
                return self.open(db, event, opening).await;
            }
            DomainEvent::EmailFailed(f) if f.permanent => {
                // Confirmation keys end in the payment id.
                let payment_id = f
                    .email_key
                    .split_once(':')
                    .map(|(_, id)| id)
                    .unwrap_or_default();
                let recipient = self.ledger.email_of_payment(db, payment_id).await?;
                let action = format!("check the address with the customer, then payledger support resend-email {} --as NAME", shell_word(&f.email_key));
                let opening = Opening {
                    kind: DiscrepancyKind::EmailUndeliverable.as_str(),
                    subject: &f.email_key,
                    amount: None,
                    currency: None,
                    email: recipient.as_deref(),
                    action,
                };
                return self.open(db, event, opening).await;
            }
            DomainEvent::InvoicePaid(i)
                if i.source != payledger_events::ChargeSource::Webhook
                    && i.billing_reason != crate::ledger::FIRST_INVOICE =>
            {
                let action = format!(
                    "the processor renewed {} (invoice {}) but its webhook never reached us; payledger found it by asking the processor and applied it: if the customer wrote, answer with payledger support reply, then payledger support resolve",
                    i.subscription_id, i.invoice_id
                );
                let opening = Opening {
                    kind: DiscrepancyKind::RenewalNotApplied.as_str(),
                    subject: &i.invoice_id,
                    amount: Some(i.amount),
                    currency: Some(i.currency.as_str()),
                    email: i.customer_email.as_deref(),
                    action,
                };
                // No return: the payment rules see the invoice too.
                self.open(db, event, opening).await?;
            }
            DomainEvent::ProcessorDisagreement(d) => {
                let subject = format!("{}:{}", d.payment_id, d.kind);
                let email = self.ledger.email_of_payment(db, &d.payment_id).await?;
                let action = match d.kind.as_str() {
                    "refunded_at_processor" => format!("the processor refunded {} but the ledger has no refund: run payledger reconcile --since 30d (the refund is older than the window), then check again", d.payment_id),
                    _ => format!("{}: check the payment at the processor (payledger support find {}), then refund or payledger support resolve", d.detail, shell_word(&d.payment_id)),
                };
                let opening = Opening {
                    kind: DiscrepancyKind::ProcessorDisagreement.as_str(),
                    subject: &subject,
                    amount: Some(d.processor_amount),
                    currency: Some(d.processor_currency.as_str()),
                    email: email.as_deref(),
                    action,
                };
                return self.open(db, event, opening).await;
            }
            DomainEvent::EmailSent(s) => {
                return self
                    .close(
                        db,
                        DiscrepancyKind::EmailUndeliverable.as_str(),
                        &s.email_key,
                        "delivered",
                        position,
                    )
                    .await
            }
            DomainEvent::DiscrepancyAcknowledged(a) => {
                if let Some(mut d) = self.discrepancies.get(db, &a.discrepancy_id).await? {
                    if d.status == DiscrepancyStatus::Open.as_str() {
                        d.status = DiscrepancyStatus::Acknowledged.as_str().into();
                        d.updated_position = position;
                        self.discrepancies.put(d);
                    }
                }
                return Ok(());
            }
            DomainEvent::DiscrepancyResolved(r) => {
                if let Some(mut d) = self.discrepancies.get(db, &r.discrepancy_id).await? {
                    if d.status != DiscrepancyStatus::Resolved.as_str() {
                        d.status = DiscrepancyStatus::Resolved.as_str().into();
                        d.resolution = Some(r.resolution.clone());
                        d.resolved_by = Some(r.resolved_by.to_string());
                        d.updated_position = position;
                        self.discrepancies.put(d);
                    }
                }
                return Ok(());
            }
            _ => {}
        }
        let changes = self.ledger.track(db, event, decoded).await?;
        self.apply_changes(db, event, &changes).await?;
        // A charge whose refund came first: what its arrival opened is
        // closed as a refund closes it in the processor's order.
        for change in &changes {
            if let LedgerChange::ChargeAfterRefund { payment_id, .. } = change {
                for kind in [
                    DiscrepancyKind::UnmatchedCharge.as_str(),
                    DiscrepancyKind::DuplicateCharge.as_str(),
                    DiscrepancyKind::AmountMismatch.as_str(),
                ] {
                    self.close(db, kind, payment_id, "refunded", position)
                        .await?;
                }
            }
        }
        self.renewal_orphans(db, event, decoded).await
    }

    /// A renewal paid for a subscription whose customer the ledger does not
    /// know (no checkout bought it, as far as the log says) is money nobody
    /// is told about: a `renewal_orphan` until the subscription is known.
    async fn renewal_orphans(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), Error> {
        self.close_subscription_disagreements(db, event, decoded)
            .await?;
        let mut known = vec![];
        if let Some(s) = self.renewals.track(db, &mut self.ledger, decoded).await? {
            known.push(s.subscription_id);
        }
        if let DomainEvent::CheckoutStarted(c) = decoded {
            let checkout_id = c.checkout_id.to_string();
            for s in self
                .renewals
                .standings_of_checkout(db, &mut self.ledger, &checkout_id)
                .await?
            {
                known.push(s.subscription_id);
            }
        }
        if let DomainEvent::InvoicePaid(i) = decoded {
            let orphan = i.billing_reason != crate::ledger::FIRST_INVOICE
                && self
                    .renewals
                    .standing(db, &mut self.ledger, &i.subscription_id)
                    .await?
                    .is_none();
            if orphan {
                let action = format!(
                    "the processor renewed {} (invoice {}), a subscription no checkout in the ledger bought: find the customer at the processor (payledger support find {}), then grant access or refund",
                    i.subscription_id,
                    i.invoice_id,
                    shell_word(i.customer_email.as_deref().unwrap_or(&i.invoice_id))
                );
                let o = Opening {
                    kind: DiscrepancyKind::RenewalOrphan.as_str(),
                    subject: &i.invoice_id,
                    amount: Some(i.amount),
                    currency: Some(i.currency.as_str()),
                    email: i.customer_email.as_deref(),
                    action,
                };
                return self.open(db, event, o).await;
            }
        }
        for subscription in known {
            for invoice in self.renewals.paid_invoices(db, &subscription).await? {
                let kind = DiscrepancyKind::RenewalOrphan.as_str();
                self.close(
                    db,
                    kind,
                    &invoice,
                    "its subscription became known",
                    event.position,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// What the ledger had not seen arrived: an invoice of the period paid,
    /// an attempt failed (past due now, by the rules), or the end. Either
    /// way the ledger and the processor tell the same story again.
    async fn close_subscription_disagreements(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), Error> {
        let (subscription, period_end) = match decoded {
            DomainEvent::InvoicePaid(i) => (&i.subscription_id, Some(i.period_start)),
            DomainEvent::InvoicePaymentFailed(f) => (&f.subscription_id, None),
            DomainEvent::SubscriptionEnded(e) => (&e.subscription_id, None),
            _ => return Ok(()),
        };
        let paid_until = match period_end {
            Some(end) => Some(end),
            None => self
                .renewals
                .subscriptions
                .get(db, subscription)
                .await?
                .and_then(|s| s.paid_until),
        };
        let Some(paid_until) = paid_until else {
            return Ok(());
        };
        let subject = period_subject(subscription, paid_until);
        for kind in [
            DiscrepancyKind::AccessWithoutPaidPeriod,
            DiscrepancyKind::SubscriptionDisagreement,
        ] {
            let resolution = format!("the ledger learnt it ({})", decoded.event_type());
            self.close(db, kind.as_str(), &subject, &resolution, event.position)
                .await?;
        }
        Ok(())
    }

    async fn apply_changes(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        changes: &[LedgerChange],
    ) -> Result<(), Error> {
        let position = event.position;
        for change in changes {
            match &change {
                LedgerChange::Unmatched {
                    payment_id,
                    email,
                    money,
                } => {
                    let payment = shell_word(payment_id);
                    let action = match email {
                        Some(e) => format!("payledger support rescue {payment} --email {} --plan PLAN --as NAME (auto-rescue does this by itself only when the amount fits exactly one plan)", shell_word(e)),
                        None => format!("find the customer, then payledger support rescue {payment} --email EMAIL --plan PLAN --as NAME"),
                    };
                    let o = Opening {
                        kind: DiscrepancyKind::UnmatchedCharge.as_str(),
                        subject: payment_id,
                        amount: Some(money.amount),
                        currency: Some(&money.currency),
                        email: email.as_deref(),
                        action,
                    };
                    self.open(db, event, o).await?;
                }
                LedgerChange::Duplicate {
                    payment_id,
                    email,
                    money,
                    of_payment,
                } => {
                    let action = format!("the customer paid twice (first {of_payment}): payledger support refund {} --reason \"duplicate charge\" --as NAME", shell_word(payment_id));
                    let o = Opening {
                        kind: DiscrepancyKind::DuplicateCharge.as_str(),
                        subject: payment_id,
                        amount: Some(money.amount),
                        currency: Some(&money.currency),
                        email: email.as_deref(),
                        action,
                    };
                    self.open(db, event, o).await?;
                }
                LedgerChange::AmountMismatch {
                    payment_id,
                    email,
                    money,
                    expected,
                } => {
                    let shown = |m: &crate::ledger::Money| {
                        payledger_events::Money::from_parts(Some(m.amount), Some(&m.currency))
                            .map_or_else(
                                || format!("{} {}", m.amount, m.currency),
                                |m| m.to_string(),
                            )
                    };
                    let action = format!(
                        "charged {} but the checkout said {}: rescue (payledger support rescue {} --force \"REASON\") or refund",
                        shown(money), shown(expected), shell_word(payment_id)
                    );
                    let o = Opening {
                        kind: DiscrepancyKind::AmountMismatch.as_str(),
                        subject: payment_id,
                        amount: Some(money.amount),
                        currency: Some(&money.currency),
                        email: email.as_deref(),
                        action,
                    };
                    self.open(db, event, o).await?;
                }
                LedgerChange::Settled { payment_id } => {
                    for kind in [
                        DiscrepancyKind::UnmatchedCharge.as_str(),
                        DiscrepancyKind::AmountMismatch.as_str(),
                        DiscrepancyKind::DuplicateCharge.as_str(),
                    ] {
                        self.close(db, kind, payment_id, "matched", position)
                            .await?;
                    }
                }
                LedgerChange::Refunded {
                    payment_id,
                    email,
                    money,
                    charge_seen,
                    ..
                } => {
                    if *charge_seen {
                        for kind in [
                            DiscrepancyKind::UnmatchedCharge.as_str(),
                            DiscrepancyKind::DuplicateCharge.as_str(),
                            DiscrepancyKind::AmountMismatch.as_str(),
                        ] {
                            self.close(db, kind, payment_id, "refunded", position)
                                .await?;
                        }
                        let subject = format!("{payment_id}:refunded_at_processor");
                        self.close(
                            db,
                            DiscrepancyKind::ProcessorDisagreement.as_str(),
                            &subject,
                            "refund recorded",
                            position,
                        )
                        .await?;
                    } else {
                        let action = format!("the processor refunded {payment_id}, which the ledger never saw charged: run payledger reconcile");
                        let o = Opening {
                            kind: DiscrepancyKind::RefundWithoutCharge.as_str(),
                            subject: payment_id,
                            amount: Some(money.amount),
                            currency: Some(&money.currency),
                            email: email.as_deref(),
                            action,
                        };
                        self.open(db, event, o).await?;
                    }
                }
                LedgerChange::ChargeAfterRefund { payment_id, .. } => {
                    self.close(
                        db,
                        DiscrepancyKind::RefundWithoutCharge.as_str(),
                        payment_id,
                        "charge found",
                        position,
                    )
                    .await?;
                }
                LedgerChange::DisputeOpened {
                    dispute_id,
                    email,
                    money,
                    payment_id,
                } => {
                    let action = format!(
                        "answer the dispute at the processor with the receipt for {payment_id} (payledger support find {})",
                        shell_word(dispute_id)
                    );
                    let o = Opening {
                        kind: DiscrepancyKind::DisputeOpened.as_str(),
                        subject: dispute_id,
                        amount: Some(money.amount),
                        currency: Some(&money.currency),
                        email: email.as_deref(),
                        action,
                    };
                    self.open(db, event, o).await?;
                }
                LedgerChange::DisputeClosed {
                    dispute_id, status, ..
                } => {
                    self.close(
                        db,
                        DiscrepancyKind::DisputeOpened.as_str(),
                        dispute_id,
                        &format!("dispute closed: {status}"),
                        position,
                    )
                    .await?;
                }
                LedgerChange::Activated { .. } => {}
            }
        }
        Ok(())
    }

    async fn open(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        o: Opening<'_>,
    ) -> Result<(), Error> {
        let id = format!("{}:{}", o.kind, o.subject);
        match self.discrepancies.get(db, &id).await? {
            // Closed by itself earlier and the condition is back: open again.
            // One a person resolved stays resolved.
            Some(mut d)
                if d.resolved_by.is_none() && d.status == DiscrepancyStatus::Resolved.as_str() =>
            {
                d.status = DiscrepancyStatus::Open.as_str().into();
                d.resolution = None;
                d.updated_position = event.position;
                self.discrepancies.put(d);
            }
            // Seen again with the customer's address, which was not known
            // when it opened (a dispute before its charge).
            Some(mut d) if d.customer_email.is_none() && o.email.is_some() => {
                d.customer_email = o.email.map(str::to_lowercase);
                d.updated_position = event.position;
                self.discrepancies.put(d);
            }
            Some(_) => {}
            None => self.discrepancies.put(Discrepancy {
                id,
                kind: o.kind.into(),
                subject: o.subject.into(),
                amount: o.amount,
                currency: o.currency.map(Into::into),
                customer_email: o.email.map(str::to_lowercase),
                first_seen: event.recorded_at,
                status: DiscrepancyStatus::Open.as_str().into(),
                suggested_action: o.action,
                resolution: None,
                resolved_by: None,
                updated_position: event.position,
            }),
        }
        Ok(())
    }

    async fn close(
        &mut self,
        db: Db<'_>,
        kind: &str,
        subject: &str,
        resolution: &str,
        position: i64,
    ) -> Result<(), Error> {
        let id = format!("{kind}:{subject}");
        if let Some(mut d) = self.discrepancies.get(db, &id).await? {
            if d.status != DiscrepancyStatus::Resolved.as_str() {
                d.status = DiscrepancyStatus::Resolved.as_str().into();
                d.resolution = Some(resolution.into());
                d.updated_position = position;
                self.discrepancies.put(d);
            }
        }
        Ok(())
    }
}

/// "a charge", "an invoice".
fn article(object: &str) -> String {
    match object.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {object}"),
        _ => format!("a {object}"),
    }
}
