//! Per customer email: every event that concerns them, for the support view.

use crate::ledger::{self, LedgerChange};
use crate::projection::{ApplyFuture, Projection};
use crate::sql;
use deadpool_postgres::Transaction;
use payledger_events::{Currency, DomainEvent, RecordedEvent};

pub struct Timeline;

impl Projection for Timeline {
    fn name(&self) -> &'static str {
        "timeline"
    }
    fn version(&self) -> i32 {
        // v2: processor disagreements.
        2
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
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        event: &'a RecordedEvent,
        decoded: &'a DomainEvent,
    ) -> ApplyFuture<'a> {
        Box::pin(async move {
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
                    if let Some(r) = sql::query_opt(
                        tx,
                        "SELECT email FROM ledger_checkouts WHERE checkout_id = $1",
                        &[&checkout],
                    )
                    .await?
                    {
                        people.push(r.get(0));
                    }
                    match decoded {
                        DomainEvent::CheckoutReturned(_) => {
                            "came back to the return page".to_string()
                        }
                        _ => "was sent to the processor's pay page".to_string(),
                    }
                }
                DomainEvent::ChargeSucceeded(c) => {
                    people.extend(c.customer_email.clone());
                    format!(
                        "charged {} (payment {}, via {:?})",
                        money(c.amount, &c.currency),
                        c.payment_id,
                        c.source
                    )
                    .to_lowercase()
                }
                DomainEvent::ChargeMatched(m) => {
                    people.push(m.email.clone());
                    format!(
                        "payment {} matched to plan {} by {}: {}",
                        m.payment_id, m.plan, m.matched_by, m.reason
                    )
                }
                DomainEvent::ChargeRefunded(r) => format!(
                    "refunded {} of payment {}",
                    money(r.amount, &r.currency),
                    r.payment_id
                ),
                DomainEvent::DisputeOpened(d) => format!(
                    "opened dispute {} on payment {}",
                    d.dispute_id, d.payment_id
                ),
                DomainEvent::DisputeClosed(d) => {
                    format!("dispute {} closed: {}", d.dispute_id, d.status)
                }
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
                    remember_key(tx, &format!("status_link:{}", r.request_id), &r.email).await?;
                    "asked for a status link by email".to_string()
                }
                DomainEvent::EmailSent(s) => {
                    people.extend(recipient(tx, &s.email_key).await?);
                    format!("email {} sent (attempt {})", s.email_key, s.attempt)
                }
                DomainEvent::EmailFailed(f) => {
                    people.extend(recipient(tx, &f.email_key).await?);
                    let how = if f.permanent { "gave up" } else { "will retry" };
                    format!(
                        "email {} failed (attempt {}, {how}): {}",
                        f.email_key, f.attempt, f.error
                    )
                }
                DomainEvent::EmailResendRequested(r) => {
                    people.extend(recipient(tx, &r.email_key).await?);
                    format!("resend of {} requested by {}", r.email_key, r.requested_by)
                }
                DomainEvent::ProcessorDisagreement(d) => {
                    if let Some(r) = sql::query_opt(
                        tx,
                        "SELECT COALESCE(account_email, customer_email) FROM ledger_payments WHERE payment_id = $1",
                        &[&d.payment_id],
                    )
                    .await?
                    {
                        people.extend(r.get::<_, Option<String>>(0));
                    }
                    format!("reconciliation found a disagreement: {}", d.detail)
                }
                _ => String::new(),
            };
            for change in ledger::track(tx, event, decoded).await? {
                if let Some((key, _, email)) = ledger::email_for(&change) {
                    remember_key(tx, &key, &email).await?;
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
                sql::exec(tx,
                    "INSERT INTO timeline (email, position, recorded_at, event_type, stream_id, actor, summary)
                     VALUES (lower($1), $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    &[&email, &event.position, &event.recorded_at, &event.event_type, &event.stream.as_str(), &actor, &summary],
                )
                .await?;
            }
            Ok(())
        })
    }
}

async fn remember_key(
    tx: &Transaction<'_>,
    key: &str,
    email: &str,
) -> Result<(), tokio_postgres::Error> {
    sql::exec(tx,
        "INSERT INTO timeline_email_keys (email_key, email) VALUES ($1, lower($2)) ON CONFLICT DO NOTHING",
        &[&key, &email],
    )
    .await
    .map(|_| ())
}

async fn recipient(
    tx: &Transaction<'_>,
    key: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(sql::query_opt(
        tx,
        "SELECT email FROM timeline_email_keys WHERE email_key = $1",
        &[&key],
    )
    .await?
    .map(|r| r.get(0)))
}
