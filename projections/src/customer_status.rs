//! What the customer's pages and status emails show: one row per checkout,
//! and one per payment no checkout knows, each under an unguessable
//! reference code. "Pending" versus "needs attention" depends on how long
//! ago, so it is decided when read, not stored.

use crate::ledger::{self, LedgerChange};
use crate::projection::{ApplyFuture, Projection};
use crate::sql;
use crate::subscriptions::PLAN_PERIOD_DAYS;
use deadpool_postgres::Transaction;
use payledger_events::{DomainEvent, RecordedEvent};
use sha2::{Digest, Sha256};

pub struct CustomerStatus;

/// The code a customer holds for a checkout (`kind` "checkout") or an
/// orphan payment ("payment"): 64 bits of a hash of an id that is itself
/// random, so it can be neither guessed nor enumerated.
pub fn reference_code(kind: &str, id: &str) -> String {
    let digest = hex::encode_upper(Sha256::digest(format!("payledger:{kind}:{id}").as_bytes()));
    format!(
        "PL-{}-{}-{}-{}",
        &digest[0..4],
        &digest[4..8],
        &digest[8..12],
        &digest[12..16]
    )
}

impl Projection for CustomerStatus {
    fn name(&self) -> &'static str {
        "customer_status"
    }
    fn version(&self) -> i32 {
        1
    }
    fn handles(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            "CheckoutStarted"
                | "ProcessorSessionOpened"
                | "CheckoutReturned"
                | "CheckoutSessionExpired"
                | "CheckoutPaymentFailed"
                | "ChargeSucceeded"
                | "ChargeMatched"
                | "ChargeRefunded"
                | "DisputeOpened"
        )
    }
    fn schema_sql(&self) -> &'static str {
        concat!(
            include_str!("ledger.sql"),
            include_str!("customer_status.sql")
        )
    }
    fn public_tables(&self) -> &'static [&'static str] {
        &["customer_status"]
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
                DomainEvent::CheckoutStarted(c) => {
                    let id = c.checkout_id.to_string();
                    sql::exec(tx,
                        "INSERT INTO customer_status (reference, checkout_id, email, plan, amount, currency, started_at, state, updated_position)
                         VALUES ($1, $2, lower($3), $4, $5, $6, $7, 'awaiting_payment', $8) ON CONFLICT DO NOTHING",
                        &[&reference_code("checkout", &id), &id, &c.email, &c.plan, &c.amount, &c.currency.as_str(), &event.recorded_at, &position],
                    )
                    .await?;
                }
                DomainEvent::ProcessorSessionOpened(o) => {
                    sql::exec(
                        tx,
                        "UPDATE customer_status SET session_id = $2, updated_position = $3 WHERE checkout_id = $1",
                        &[&o.checkout_id.to_string(), &o.session_id, &position],
                    )
                    .await?;
                }
                DomainEvent::CheckoutReturned(r) => {
                    sql::exec(tx,
                        "UPDATE customer_status SET returned_at = COALESCE(returned_at, $2), updated_position = $3 WHERE checkout_id = $1",
                        &[&r.checkout_id.to_string(), &event.recorded_at, &position],
                    )
                    .await?;
                }
                DomainEvent::CheckoutSessionExpired(e) => {
                    end_unpaid(tx, e.checkout_reference.as_deref(), "expired", position).await?
                }
                DomainEvent::CheckoutPaymentFailed(f) => {
                    end_unpaid(tx, f.checkout_reference.as_deref(), "failed", position).await?
                }
                _ => {}
            }
            for change in ledger::track(tx, event, decoded).await? {
                apply_change(tx, event, change).await?;
            }
            Ok(())
        })
    }
}

async fn end_unpaid(
    tx: &Transaction<'_>,
    checkout: Option<&str>,
    state: &str,
    position: i64,
) -> Result<(), tokio_postgres::Error> {
    let Some(checkout) = checkout else {
        return Ok(());
    };
    sql::exec(tx,
        "UPDATE customer_status SET state = $2, updated_position = $3 WHERE checkout_id = $1 AND state = 'awaiting_payment'",
        &[&checkout, &state, &position],
    )
    .await
    .map(|_| ())
}

async fn apply_change(
    tx: &Transaction<'_>,
    event: &RecordedEvent,
    change: LedgerChange,
) -> Result<(), tokio_postgres::Error> {
    let position = event.position;
    let (payment_id, state) = match &change {
        LedgerChange::Activated {
            payment_id,
            email,
            plan,
            activation,
            paid_at,
            money,
            ..
        } => {
            let reference = row_for_payment(tx, event, payment_id).await?;
            let period_end = *paid_at + chrono::Duration::days(PLAN_PERIOD_DAYS);
            sql::exec(tx,
                "UPDATE customer_status SET state = 'active', email = lower($2), plan = $3, activation = $4, paid_at = $5,
                     amount = $6, currency = $7, period_end = $8, updated_position = $9
                 WHERE reference = $1",
                &[&reference, &email, &plan, &activation.as_str(), &paid_at, &money.amount, &money.currency, &period_end, &position],
            )
            .await?;
            return Ok(());
        }
        LedgerChange::Unmatched { payment_id, .. } => (payment_id, "paid_unmatched"),
        LedgerChange::Duplicate { payment_id, .. }
        | LedgerChange::AmountMismatch { payment_id, .. } => (payment_id, "needs_attention"),
        LedgerChange::Refunded {
            payment_id,
            fully: true,
            charge_seen: true,
            ..
        } => (payment_id, "refunded"),
        LedgerChange::DisputeOpened { payment_id, .. } => (payment_id, "disputed"),
        _ => return Ok(()),
    };
    let reference = row_for_payment(tx, event, payment_id).await?;
    sql::exec(
        tx,
        "UPDATE customer_status SET state = $2, updated_position = $3 WHERE reference = $1",
        &[&reference, &state, &position],
    )
    .await
    .map(|_| ())
}

/// The row a payment belongs to: its own, its checkout's (when the checkout
/// has no payment yet), or a new one under the payment's reference.
async fn row_for_payment(
    tx: &Transaction<'_>,
    event: &RecordedEvent,
    payment_id: &str,
) -> Result<String, tokio_postgres::Error> {
    if let Some(r) = sql::query_opt(
        tx,
        "SELECT reference FROM customer_status WHERE payment_id = $1",
        &[&payment_id],
    )
    .await?
    {
        return Ok(r.get(0));
    }
    if let Some(r) = sql::query_opt(tx,
        "UPDATE customer_status SET payment_id = $1
         WHERE payment_id IS NULL AND checkout_id = (SELECT checkout_reference FROM ledger_payments WHERE payment_id = $1)
         RETURNING reference",
        &[&payment_id],
    )
    .await?
    {
        let reference: String = r.get(0);
        sql::exec(tx,
            "UPDATE customer_status s SET paid_at = p.paid_at FROM ledger_payments p WHERE s.reference = $1 AND p.payment_id = $2",
            &[&reference, &payment_id],
        )
        .await?;
        return Ok(reference);
    }
    let reference = reference_code("payment", payment_id);
    sql::exec(tx,
        "INSERT INTO customer_status (reference, payment_id, email, amount, currency, started_at, paid_at, state, updated_position)
         SELECT $1, $2, COALESCE(account_email, customer_email), amount, currency, $3, paid_at, 'paid_unmatched', $4
         FROM ledger_payments WHERE payment_id = $2
         ON CONFLICT DO NOTHING",
        &[&reference, &payment_id, &event.recorded_at, &event.position],
    )
    .await?;
    Ok(reference)
}
