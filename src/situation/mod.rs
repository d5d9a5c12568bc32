//! One customer situation per payment, derived in one place from the read
//! models. The status page, the status email's line for a payment,
//! `/api/access`'s reading and `support reply` all come from it, so the
//! four voices cannot tell a customer four stories (docs/communication.md
//! has the table; `table_markdown` and its test keep it in step with this code).

pub mod load;
mod words;

pub use words::{day, until, Details, Page, Receipt};

use chrono::{DateTime, Duration, Utc};
use payledger_projections::read::customer_status::CustomerStatusRow;
use payledger_projections::states::{
    DiscrepancyKind, DisputeState, PaymentState, SubscriptionStatus,
};

/// Where one checkout or payment stands, as its customer must be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Situation {
    /// Checkout started, no payment recorded yet, within the pending window.
    AwaitingPayment,
    /// Waited past the window and no payment is recorded: we keep asking
    /// the processor, but nobody has been asked to look (no queue entry).
    NotYetRecorded,
    /// The processor said the session expired or the payment failed.
    NotCompleted,
    /// Charged, and being connected to the account (within the window).
    PaidConfirming,
    /// Charged and active.
    Active,
    /// Charged and active, but only after a delay on our side (rescue or
    /// reconciliation activated it).
    ActiveAfterDelay,
    /// Active, with part of the money refunded.
    PartiallyRefunded,
    /// All of the money went back.
    Refunded,
    /// Charged, not active, and in the support queue: a person is on it.
    WithAPerson,
    /// Charged, not active, and nothing open for a person: the customer
    /// must be told to write, not that someone will.
    PaidNotActive,
    /// A second charge for a checkout already paid; in the queue for a
    /// refund. The customer's access comes from the first payment.
    DuplicateCharge,
    /// The customer's bank disputes the charge; access is paused.
    DisputeOpen,
    /// The dispute ended in our favour; access is back.
    DisputeWon,
    /// The bank returned the money; access ended.
    DisputeLost,
    /// A renewal was declined; the processor is retrying, access goes on
    /// meanwhile, and the customer can update the card.
    PastDue,
    /// Cancelled: it will not renew; access goes on to the end of what was paid.
    Canceled,
    /// The subscription is over; access ended with what was paid.
    Ended,
    /// The processor renewed it, but the renewal reached our records late
    /// (payledger found it by asking); it is applied now.
    RenewalNotApplied,
}

impl Situation {
    pub const ALL: &'static [Situation] = &[
        Situation::AwaitingPayment,
        Situation::NotYetRecorded,
        Situation::NotCompleted,
        Situation::PaidConfirming,
        Situation::Active,
        Situation::ActiveAfterDelay,
        Situation::PartiallyRefunded,
        Situation::Refunded,
        Situation::WithAPerson,
        Situation::PaidNotActive,
        Situation::DuplicateCharge,
        Situation::DisputeOpen,
        Situation::DisputeWon,
        Situation::DisputeLost,
        Situation::PastDue,
        Situation::Canceled,
        Situation::Ended,
        Situation::RenewalNotApplied,
    ];

    /// Its name in tables, tests and the page's `data-situation`.
    pub fn name(self) -> &'static str {
        match self {
            Situation::AwaitingPayment => "awaiting_payment",
            Situation::NotYetRecorded => "not_yet_recorded",
            Situation::NotCompleted => "not_completed",
            Situation::PaidConfirming => "paid_confirming",
            Situation::Active => "active",
            Situation::ActiveAfterDelay => "active_after_delay",
            Situation::PartiallyRefunded => "partially_refunded",
            Situation::Refunded => "refunded",
            Situation::WithAPerson => "with_a_person",
            Situation::PaidNotActive => "paid_not_active",
            Situation::DuplicateCharge => "duplicate_charge",
            Situation::DisputeOpen => "dispute_open",
            Situation::DisputeWon => "dispute_won",
            Situation::DisputeLost => "dispute_lost",
            Situation::PastDue => "past_due",
            Situation::Canceled => "canceled",
            Situation::Ended => "ended",
            Situation::RenewalNotApplied => "renewal_not_applied",
        }
    }

    /// Whether the customer has access because of this payment (or, for a
    /// duplicate, because of the payment it duplicates): what
    /// `/api/access` must answer for them.
    pub fn has_access(self) -> bool {
        matches!(
            self,
            Situation::Active
                | Situation::ActiveAfterDelay
                | Situation::PartiallyRefunded
                | Situation::DisputeWon
                | Situation::DuplicateCharge
                | Situation::PastDue
                | Situation::Canceled
                | Situation::RenewalNotApplied
        )
    }

    /// Whether the words promise that a person will act; only true when
    /// the support queue holds it (and so the alerter announces it).
    pub fn promises_a_person(self) -> bool {
        matches!(self, Situation::WithAPerson | Situation::DuplicateCharge)
    }

    /// Whether money was taken (and not yet all given back).
    pub fn charged(self) -> bool {
        !matches!(
            self,
            Situation::AwaitingPayment
                | Situation::NotYetRecorded
                | Situation::NotCompleted
                | Situation::Refunded
                | Situation::DisputeLost
        )
    }
}

/// What the situation of one payment is derived from.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub row: &'a CustomerStatusRow,
    /// The open discrepancy about this payment, if any (the queue's entry).
    pub open: Option<DiscrepancyKind>,
    pub now: DateTime<Utc>,
    /// How long "we're confirming" is honest (PAYLEDGER_PENDING_WINDOW).
    pub pending_window: Duration,
    /// For a renewing plan's payment: where its subscription stands.
    pub renewal: Option<Renewal>,
}

/// A renewing plan's standing, as far as its customer is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    pub status: SubscriptionStatus,
    /// A renewal reached the records late (an open `renewal_not_applied`).
    pub late: bool,
}

/// The one derivation of a payment's situation.
pub fn of_payment(f: &Facts<'_>) -> Situation {
    let row = f.row;
    let overdue = f.now - row.waiting_since() > f.pending_window;
    match row.state {
        PaymentState::AwaitingPayment if overdue => Situation::NotYetRecorded,
        PaymentState::AwaitingPayment => Situation::AwaitingPayment,
        PaymentState::Expired | PaymentState::Failed => Situation::NotCompleted,
        PaymentState::Refunded => Situation::Refunded,
        PaymentState::Disputed => match row.dispute {
            Some(DisputeState::Lost) => Situation::DisputeLost,
            _ => Situation::DisputeOpen,
        },
        PaymentState::Active => {
            let renewal = f.renewal.map(|r| (r.status, r.late));
            if let Some((SubscriptionStatus::PastDue, _)) = renewal {
                Situation::PastDue
            } else if let Some((SubscriptionStatus::Canceled, _)) = renewal {
                Situation::Canceled
            } else if let Some((SubscriptionStatus::Ended, _)) = renewal {
                Situation::Ended
            } else if let Some((SubscriptionStatus::Active, true)) = renewal {
                Situation::RenewalNotApplied
            } else if row.dispute == Some(DisputeState::Won) {
                Situation::DisputeWon
            } else if row.refunded_amount > 0 {
                Situation::PartiallyRefunded
            } else if row.activation.as_deref() == Some("rescue") {
                Situation::ActiveAfterDelay
            } else {
                Situation::Active
            }
        }
        // The first minutes of an unexplained charge are auto-rescue's.
        PaymentState::PaidUnmatched if !overdue => Situation::PaidConfirming,
        PaymentState::PaidUnmatched | PaymentState::NeedsAttention => match f.open {
            Some(DiscrepancyKind::DuplicateCharge) => Situation::DuplicateCharge,
            Some(_) => Situation::WithAPerson,
            None => Situation::PaidNotActive,
        },
    }
}

/// The table in `docs/communication.md` (between its `situations` markers):
/// every situation, what each voice says, with example amounts and dates.
/// A test keeps the document equal to this.
pub fn table_markdown() -> String {
    let d = Details {
        reference: "PL-…".into(),
        plan: "One year of access".into(),
        paid: "249.00 USD".into(),
        refunded: Some("50.00 USD".into()),
        net: Some("199.00 USD".into()),
        paid_on: Some("27 November 2026".into()),
        started_on: "27 November 2026".into(),
        access_until: Some("27 November 2027".into()),
        masked_email: "a***@example.com".into(),
        support_email: "help@…".into(),
    };
    let mut out = String::from(
        "| situation | page heading | `/api/access` active | a person promised (queue) | status email line |\n|---|---|---|---|---|\n",
    );
    for s in Situation::ALL {
        let yes = |b: bool| if b { "yes" } else { "no" };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            s.name(),
            s.page(&d, 5).heading,
            yes(s.has_access()),
            yes(s.promises_a_person()),
            s.email_line(&d)
        ));
    }
    out
}

#[cfg(test)]
mod tests;
