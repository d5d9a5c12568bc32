//! What the customer's pages and status emails show: one row per checkout,
//! and one per payment no checkout knows, each under an unguessable
//! reference code. "Pending" versus "needs attention" depends on how long
//! ago, so it is decided when read, not stored.

use crate::ledger::{Ledger, LedgerChange};
use crate::projection::{Projection, ProjectionRows};
use crate::states::{DisputeState, LedgerPaymentState, PaymentState};
use crate::subscriptions::period_end_from;
use crate::table::{Db, Table};
use chrono::{DateTime, Utc};
use payledger_events::{DomainEvent, RecordedEvent};
use sha2::{Digest, Sha256};
use tokio_postgres::Error;

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
        // v2: ledger rows remember refunds seen before their charge.
        // v3: buying again after a refund is not a duplicate charge.
        // v4: refunded amount and dispute state per payment.
        // v5: a charge reconciliation found is activated as a rescue.
        // v6: a subscription's first invoice pays its checkout; periods in
        //     calendar months and years.
        // v7: indexes for the columns the rules find rows by.
        7
    }
    fn shares_ledger(&self) -> bool {
        true
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
                | "DisputeClosed"
                | "InvoicePaid"
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
    fn rows(&self) -> Box<dyn ProjectionRows> {
        Box::<CustomerStatusRows>::default()
    }
}

crate::record! {
    Status in "customer_status", key(reference), indexes(checkout_id, payment_id) {
        reference: String = TEXT,
        checkout_id: Option<String> = TEXT,
        payment_id: Option<String> = TEXT,
        session_id: Option<String> = TEXT,
        email: Option<String> = TEXT,
        plan: Option<String> = TEXT,
        amount: Option<i64> = INT8,
        currency: Option<String> = TEXT,
        started_at: DateTime<Utc> = TIMESTAMPTZ,
        returned_at: Option<DateTime<Utc>> = TIMESTAMPTZ,
        paid_at: Option<DateTime<Utc>> = TIMESTAMPTZ,
        state: String = TEXT,
        activation: Option<String> = TEXT,
        period_end: Option<DateTime<Utc>> = TIMESTAMPTZ,
        refunded_amount: i64 = INT8,
        dispute: Option<String> = TEXT,
        updated_position: i64 = INT8,
    }
}

const BY_CHECKOUT: usize = 0;
const BY_PAYMENT: usize = 1;

#[derive(Default)]
pub struct CustomerStatusRows {
    ledger: Ledger,
    customer_status: Table<Status>,
}

crate::projection_rows!(CustomerStatusRows {
    ledger,
    customer_status
});

impl CustomerStatusRows {
    async fn apply_event(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), Error> {
        let position = event.position;
        match decoded {
            DomainEvent::CheckoutStarted(c) => {
                let id = c.checkout_id.to_string();
                let reference = reference_code("checkout", &id);
                if self.customer_status.get(db, &reference).await?.is_none() {
                    self.customer_status.put(Status {
                        reference,
                        checkout_id: Some(id),
                        payment_id: None,
                        session_id: None,
                        email: Some(c.email.to_lowercase()),
                        plan: Some(c.plan.clone()),
                        amount: Some(c.amount),
                        currency: Some(c.currency.as_str().into()),
                        started_at: event.recorded_at,
                        returned_at: None,
                        paid_at: None,
                        state: PaymentState::AwaitingPayment.as_str().into(),
                        activation: None,
                        period_end: None,
                        refunded_amount: 0,
                        dispute: None,
                        updated_position: position,
                    });
                }
            }
            DomainEvent::ProcessorSessionOpened(o) => {
                for mut row in self.of_checkout(db, &o.checkout_id.to_string()).await? {
                    row.session_id = Some(o.session_id.clone());
                    row.updated_position = position;
                    self.customer_status.put(row);
                }
            }
            DomainEvent::CheckoutReturned(r) => {
                for mut row in self.of_checkout(db, &r.checkout_id.to_string()).await? {
                    row.returned_at = row.returned_at.or(Some(event.recorded_at));
                    row.updated_position = position;
                    self.customer_status.put(row);
                }
            }
            DomainEvent::CheckoutSessionExpired(e) => {
                self.end_unpaid(
                    db,
                    e.checkout_reference.as_deref(),
                    PaymentState::Expired.as_str(),
                    position,
                )
                .await?
            }
            DomainEvent::CheckoutPaymentFailed(f) => {
                self.end_unpaid(
                    db,
                    f.checkout_reference.as_deref(),
                    PaymentState::Failed.as_str(),
                    position,
                )
                .await?
            }
            _ => {}
        }
        for change in self.ledger.track(db, event, decoded).await? {
            self.apply_change(db, event, change).await?;
        }
        Ok(())
    }

    async fn of_checkout(&mut self, db: Db<'_>, checkout_id: &str) -> Result<Vec<Status>, Error> {
        self.customer_status
            .find(db, BY_CHECKOUT, checkout_id)
            .await
    }

    async fn end_unpaid(
        &mut self,
        db: Db<'_>,
        checkout: Option<&str>,
        state: &str,
        position: i64,
    ) -> Result<(), Error> {
        let Some(checkout) = checkout else {
            return Ok(());
        };
        for mut row in self.of_checkout(db, checkout).await? {
            if row.state == PaymentState::AwaitingPayment.as_str() {
                row.state = state.into();
                row.updated_position = position;
                self.customer_status.put(row);
            }
        }
        Ok(())
    }

    async fn apply_change(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        change: LedgerChange,
    ) -> Result<(), Error> {
        let position = event.position;
        let (payment_id, state) = match &change {
            LedgerChange::Activated {
                payment_id,
                email,
                plan,
                activation,
                paid_at,
                money,
                period,
                ..
            } => {
                if let Some(mut row) = self.row_for_payment(db, event, payment_id).await? {
                    row.state = PaymentState::Active.as_str().into();
                    row.email = Some(email.to_lowercase());
                    row.plan = Some(plan.clone());
                    row.activation = Some(activation.as_str().into());
                    row.paid_at = Some(*paid_at);
                    row.amount = Some(money.amount);
                    row.currency = Some(money.currency.clone());
                    row.period_end = Some(period_end_from(*paid_at, *period));
                    row.updated_position = position;
                    self.customer_status.put(row);
                }
                return Ok(());
            }
            LedgerChange::Unmatched { payment_id, .. } => {
                (payment_id, PaymentState::PaidUnmatched.as_str())
            }
            LedgerChange::Duplicate { payment_id, .. }
            | LedgerChange::AmountMismatch { payment_id, .. } => {
                (payment_id, PaymentState::NeedsAttention.as_str())
            }
            LedgerChange::Refunded {
                payment_id,
                fully,
                charge_seen: true,
                ..
            }
            | LedgerChange::ChargeAfterRefund {
                payment_id, fully, ..
            } => {
                let refunded = self
                    .ledger
                    .payments
                    .get(db, payment_id)
                    .await?
                    .map_or(0, |p| p.refunded);
                let Some(mut row) = self.row_for_payment(db, event, payment_id).await? else {
                    return Ok(());
                };
                row.refunded_amount = refunded;
                if *fully {
                    row.state = PaymentState::Refunded.as_str().into();
                }
                row.updated_position = position;
                self.customer_status.put(row);
                return Ok(());
            }
            LedgerChange::DisputeOpened { payment_id, .. } => {
                let Some(mut row) = self.row_for_payment(db, event, payment_id).await? else {
                    return Ok(());
                };
                row.state = PaymentState::Disputed.as_str().into();
                // A closing that arrived first stays the last word.
                if row.dispute.is_none() {
                    row.dispute = Some(DisputeState::Open.as_str().into());
                }
                row.updated_position = position;
                self.customer_status.put(row);
                return Ok(());
            }
            LedgerChange::DisputeClosed {
                payment_id, status, ..
            } => {
                // Won: back to what it was before the dispute; lost: stays
                // (or, when the opening never arrived, becomes) disputed.
                let Some(mut row) = self.row_for_payment(db, event, payment_id).await? else {
                    return Ok(());
                };
                match DisputeState::of_closing(status) {
                    Some(DisputeState::Lost) => {
                        row.state = PaymentState::Disputed.as_str().into();
                    }
                    Some(DisputeState::Won) => {
                        if row.state == PaymentState::Disputed.as_str() {
                            // Back to what the payment was before the
                            // dispute, as the rules see it now.
                            let ledger = self.ledger.payments.get(db, payment_id).await?;
                            let back = match ledger {
                                Some(p) if p.amount.is_some_and(|a| p.refunded >= a) => {
                                    PaymentState::Refunded
                                }
                                Some(p) if p.state == LedgerPaymentState::Active.as_str() => {
                                    PaymentState::Active
                                }
                                Some(p)
                                    if p.state == LedgerPaymentState::Mismatch.as_str()
                                        || p.state == LedgerPaymentState::Duplicate.as_str() =>
                                {
                                    PaymentState::NeedsAttention
                                }
                                _ => PaymentState::PaidUnmatched,
                            };
                            row.state = back.as_str().into();
                        }
                    }
                    _ => return Ok(()),
                }
                row.dispute = DisputeState::of_closing(status).map(|d| d.as_str().into());
                row.updated_position = position;
                self.customer_status.put(row);
                return Ok(());
            }
            _ => return Ok(()),
        };
        if let Some(mut row) = self.row_for_payment(db, event, payment_id).await? {
            row.state = state.into();
            row.updated_position = position;
            self.customer_status.put(row);
        }
        Ok(())
    }

    /// The row a payment belongs to: its own, its checkout's (when the
    /// checkout has no payment yet), or a new one under the payment's
    /// reference.
    async fn row_for_payment(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        payment_id: &str,
    ) -> Result<Option<Status>, Error> {
        if let Some(row) = self
            .customer_status
            .find(db, BY_PAYMENT, payment_id)
            .await?
            .into_iter()
            .next()
        {
            return Ok(Some(row));
        }
        let Some(payment) = self.ledger.payments.get(db, payment_id).await? else {
            return Ok(None);
        };
        // Known only from a refund or dispute so far: the charge, when it
        // comes, says which checkout's row it belongs to (and the ledger
        // announces the dispute again then).
        if !payment.charge_seen {
            return Ok(None);
        }
        if let Some(checkout) = &payment.checkout_reference {
            let unpaid = self
                .of_checkout(db, checkout)
                .await?
                .into_iter()
                .find(|r| r.payment_id.is_none());
            if let Some(mut row) = unpaid {
                row.payment_id = Some(payment_id.into());
                row.paid_at = payment.paid_at;
                self.customer_status.put(row.clone());
                return Ok(Some(row));
            }
        }
        let reference = reference_code("payment", payment_id);
        if let Some(row) = self.customer_status.get(db, &reference).await? {
            return Ok(Some(row));
        }
        let row = Status {
            reference,
            checkout_id: None,
            payment_id: Some(payment_id.into()),
            session_id: None,
            email: payment.email(),
            plan: None,
            amount: payment.amount,
            currency: payment.currency.clone(),
            started_at: event.recorded_at,
            returned_at: None,
            paid_at: payment.paid_at,
            state: PaymentState::PaidUnmatched.as_str().into(),
            activation: None,
            period_end: None,
            refunded_amount: 0,
            dispute: None,
            updated_position: event.position,
        };
        self.customer_status.put(row.clone());
        Ok(Some(row))
    }
}
