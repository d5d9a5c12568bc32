//! The outbox rows (sending is the email sender's job).

use crate::ledger::{self, LedgerChange};
use crate::projection::{ApplyFuture, Projection};
use crate::sql;
use deadpool_postgres::Transaction;
use payledger_events::{DomainEvent, RecordedEvent};

pub struct OutgoingEmails;

const TYPES: &[&str] = &[
    "CheckoutStarted",
    "ChargeSucceeded",
    "ChargeMatched",
    "ChargeRefunded",
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
        1
    }
    fn handles(&self, event_type: &str) -> bool {
        TYPES.contains(&event_type)
    }
    fn schema_sql(&self) -> &'static str {
        concat!(
            include_str!("ledger.sql"),
            include_str!("outgoing_emails.sql")
        )
    }
    fn public_tables(&self) -> &'static [&'static str] {
        &["outgoing_emails"]
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
                DomainEvent::StatusLinkRequested(r) => {
                    let key = format!("status_link:{}", r.request_id);
                    return request(tx, &key, "status_link", &r.email, None, event, position).await;
                }
                DomainEvent::EmailSent(s) => {
                    sql::exec(tx,
                        "UPDATE outgoing_emails SET status = 'sent', attempts = GREATEST(attempts, $2), message_id = $3,
                             last_error = NULL, updated_position = $4 WHERE email_key = $1",
                        &[&s.email_key, &(s.attempt as i32), &s.message_id, &position],
                    )
                    .await?;
                    return Ok(());
                }
                DomainEvent::EmailFailed(f) => {
                    let status = if f.permanent {
                        "undeliverable"
                    } else {
                        "failed"
                    };
                    sql::exec(tx,
                        "UPDATE outgoing_emails SET status = $2, attempts = GREATEST(attempts, $3), last_error = $4,
                             updated_position = $5 WHERE email_key = $1 AND status <> 'sent'",
                        &[&f.email_key, &status, &(f.attempt as i32), &f.error, &position],
                    )
                    .await?;
                    return Ok(());
                }
                DomainEvent::EmailResendRequested(r) => {
                    sql::exec(tx,
                        "UPDATE outgoing_emails SET status = 'pending', attempts = 0, last_error = NULL,
                             resends = resends + 1, updated_position = $2 WHERE email_key = $1",
                        &[&r.email_key, &position],
                    )
                    .await?;
                    return Ok(());
                }
                _ => {}
            }
            for change in ledger::track(tx, event, decoded).await? {
                if let Some((key, kind, recipient)) = ledger::email_for(&change) {
                    let payment = match &change {
                        LedgerChange::Activated { payment_id, .. }
                        | LedgerChange::Refunded { payment_id, .. } => Some(payment_id.as_str()),
                        _ => None,
                    };
                    request(tx, &key, kind, &recipient, payment, event, position).await?;
                }
            }
            Ok(())
        })
    }
}

async fn request(
    tx: &Transaction<'_>,
    key: &str,
    kind: &str,
    recipient: &str,
    payment_id: Option<&str>,
    event: &RecordedEvent,
    position: i64,
) -> Result<(), tokio_postgres::Error> {
    sql::exec(tx,
        "INSERT INTO outgoing_emails (email_key, kind, recipient, payment_id, status, requested_at, updated_position)
         VALUES ($1, $2, lower($3), $4, 'pending', $5, $6) ON CONFLICT (email_key) DO NOTHING",
        &[&key, &kind, &recipient, &payment_id, &event.recorded_at, &position],
    )
    .await
    .map(|_| ())
}
