//! What needs a look. A discrepancy opens on the event that shows the
//! problem, closes by itself when a later event clears the condition, and
//! closes by `DiscrepancyResolved`.

use crate::ledger::{self, LedgerChange};
use crate::projection::{ApplyFuture, Projection};
use crate::sql;
use deadpool_postgres::Transaction;
use payledger_events::{DomainEvent, RecordedEvent};

pub struct Discrepancies;

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
        2
    }
    fn handles(&self, event_type: &str) -> bool {
        TYPES.contains(&event_type)
    }
    fn schema_sql(&self) -> &'static str {
        concat!(
            include_str!("ledger.sql"),
            include_str!("discrepancies.sql")
        )
    }
    fn public_tables(&self) -> &'static [&'static str] {
        &["discrepancies"]
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
                DomainEvent::ProcessorEventReceived(p) if p.unparsed_reason.is_some() => {
                    let action = format!(
                        "read the kept body (payledger audit log --stream processor-event-{}) and act on it by hand; then support resolve",
                        p.processor_event_id
                    );
                    let opening = Opening {
                        kind: "unparsed_processor_event",
                        subject: &p.processor_event_id,
                        amount: None,
                        currency: None,
                        email: None,
                        action,
                    };
                    return open(tx, event, opening).await;
                }
                DomainEvent::EmailFailed(f) if f.permanent => {
                    // Confirmation keys end in the payment id.
                    let payment_id = f
                        .email_key
                        .split_once(':')
                        .map(|(_, id)| id)
                        .unwrap_or_default();
                    let recipient: Option<String> = sql::query_opt(tx, "SELECT COALESCE(account_email, customer_email) FROM ledger_payments WHERE payment_id = $1", &[&payment_id])
                        .await?
                        .and_then(|r| r.get(0));
                    let action = format!("check the address with the customer, then payledger support resend-email {} --as NAME", f.email_key);
                    let opening = Opening {
                        kind: "email_undeliverable",
                        subject: &f.email_key,
                        amount: None,
                        currency: None,
                        email: recipient.as_deref(),
                        action,
                    };
                    return open(tx, event, opening).await;
                }
                DomainEvent::ProcessorDisagreement(d) => {
                    let subject = format!("{}:{}", d.payment_id, d.kind);
                    let email: Option<String> = sql::query_opt(tx, "SELECT COALESCE(account_email, customer_email) FROM ledger_payments WHERE payment_id = $1", &[&d.payment_id])
                        .await?
                        .and_then(|r| r.get(0));
                    let action = match d.kind.as_str() {
                        "refunded_at_processor" => format!("the processor refunded {} but the ledger has no refund: run payledger reconcile --since 30d (the refund is older than the window), then check again", d.payment_id),
                        _ => format!("{}: check the payment at the processor (payledger support find {}), then refund or payledger support resolve", d.detail, d.payment_id),
                    };
                    let opening = Opening {
                        kind: "processor_disagreement",
                        subject: &subject,
                        amount: Some(d.processor_amount),
                        currency: Some(d.processor_currency.as_str()),
                        email: email.as_deref(),
                        action,
                    };
                    return open(tx, event, opening).await;
                }
                DomainEvent::EmailSent(s) => {
                    return close(
                        tx,
                        "email_undeliverable",
                        &s.email_key,
                        "delivered",
                        position,
                    )
                    .await
                }
                DomainEvent::DiscrepancyAcknowledged(a) => {
                    sql::exec(tx,
                        "UPDATE discrepancies SET status = 'acknowledged', updated_position = $2 WHERE id = $1 AND status = 'open'",
                        &[&a.discrepancy_id, &position],
                    )
                    .await?;
                    return Ok(());
                }
                DomainEvent::DiscrepancyResolved(r) => {
                    sql::exec(tx,
                        "UPDATE discrepancies SET status = 'resolved', resolution = $2, resolved_by = $3, updated_position = $4
                         WHERE id = $1 AND status <> 'resolved'",
                        &[&r.discrepancy_id, &r.resolution, &r.resolved_by.to_string(), &position],
                    )
                    .await?;
                    return Ok(());
                }
                _ => {}
            }
            for change in ledger::track(tx, event, decoded).await? {
                match &change {
                    LedgerChange::Unmatched {
                        payment_id,
                        email,
                        money,
                    } => {
                        let action = match email {
                            Some(e) => format!("payledger support rescue {payment_id} --email {e} --plan PLAN --as NAME (or wait for auto-rescue)"),
                            None => format!("find the customer, then payledger support rescue {payment_id} --email EMAIL --plan PLAN --as NAME"),
                        };
                        let o = Opening {
                            kind: "unmatched_charge",
                            subject: payment_id,
                            amount: Some(money.amount),
                            currency: Some(&money.currency),
                            email: email.as_deref(),
                            action,
                        };
                        open(tx, event, o).await?;
                    }
                    LedgerChange::Duplicate {
                        payment_id,
                        email,
                        money,
                        of_payment,
                    } => {
                        let action = format!("the customer paid twice (first {of_payment}): payledger support refund {payment_id} --reason duplicate --as NAME");
                        let o = Opening {
                            kind: "duplicate_charge",
                            subject: payment_id,
                            amount: Some(money.amount),
                            currency: Some(&money.currency),
                            email: email.as_deref(),
                            action,
                        };
                        open(tx, event, o).await?;
                    }
                    LedgerChange::AmountMismatch {
                        payment_id,
                        email,
                        money,
                        expected,
                    } => {
                        let action = format!(
                            "charged {} {} but the checkout said {} {}: rescue (payledger support rescue {payment_id} --force ...) or refund",
                            money.amount, money.currency, expected.amount, expected.currency
                        );
                        let o = Opening {
                            kind: "amount_mismatch",
                            subject: payment_id,
                            amount: Some(money.amount),
                            currency: Some(&money.currency),
                            email: email.as_deref(),
                            action,
                        };
                        open(tx, event, o).await?;
                    }
                    LedgerChange::Settled { payment_id } => {
                        for kind in ["unmatched_charge", "amount_mismatch", "duplicate_charge"] {
                            close(tx, kind, payment_id, "matched", position).await?;
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
                            for kind in ["unmatched_charge", "duplicate_charge", "amount_mismatch"]
                            {
                                close(tx, kind, payment_id, "refunded", position).await?;
                            }
                            let subject = format!("{payment_id}:refunded_at_processor");
                            close(
                                tx,
                                "processor_disagreement",
                                &subject,
                                "refund recorded",
                                position,
                            )
                            .await?;
                        } else {
                            let action = format!("the processor refunded {payment_id}, which the ledger never saw charged: run payledger reconcile");
                            let o = Opening {
                                kind: "refund_without_charge",
                                subject: payment_id,
                                amount: Some(money.amount),
                                currency: Some(&money.currency),
                                email: email.as_deref(),
                                action,
                            };
                            open(tx, event, o).await?;
                        }
                    }
                    LedgerChange::ChargeAfterRefund { payment_id } => {
                        close(
                            tx,
                            "refund_without_charge",
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
                            "answer the dispute at the processor with the receipt for {payment_id}"
                        );
                        let o = Opening {
                            kind: "dispute_opened",
                            subject: dispute_id,
                            amount: Some(money.amount),
                            currency: Some(&money.currency),
                            email: email.as_deref(),
                            action,
                        };
                        open(tx, event, o).await?;
                    }
                    LedgerChange::DisputeClosed {
                        dispute_id, status, ..
                    } => {
                        close(
                            tx,
                            "dispute_opened",
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
        })
    }
}

async fn open(
    tx: &Transaction<'_>,
    event: &RecordedEvent,
    o: Opening<'_>,
) -> Result<(), tokio_postgres::Error> {
    let id = format!("{}:{}", o.kind, o.subject);
    sql::exec(tx,
        "INSERT INTO discrepancies (id, kind, subject, amount, currency, customer_email, first_seen, status, suggested_action, updated_position)
         VALUES ($1, $2, $3, $4, $5, lower($6), $7, 'open', $8, $9)
         ON CONFLICT (id) DO UPDATE SET status = 'open', resolution = NULL, resolved_by = NULL, updated_position = $9
         WHERE discrepancies.resolved_by IS NULL AND discrepancies.status = 'resolved'",
        &[&id, &o.kind, &o.subject, &o.amount, &o.currency, &o.email, &event.recorded_at, &o.action, &event.position],
    )
    .await
    .map(|_| ())
}

async fn close(
    tx: &Transaction<'_>,
    kind: &str,
    subject: &str,
    resolution: &str,
    position: i64,
) -> Result<(), tokio_postgres::Error> {
    sql::exec(
        tx,
        "UPDATE discrepancies SET status = 'resolved', resolution = $3, updated_position = $4
         WHERE id = $1 || ':' || $2 AND status <> 'resolved'",
        &[&kind, &subject, &resolution, &position],
    )
    .await
    .map(|_| ())
}
