//! The states the read models store as text, as types. Readers parse a
//! row's column into one of these and match on it; the strings live here
//! (and in the SQL that writes them), nowhere else.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A stored state that is not one of its type's values: the read model and
/// the code disagree (an old generation, a hand-edited row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {kind} (one of: {known})")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
    pub known: String,
}

macro_rules! state_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(UnknownState {
                        kind: $kind,
                        value: s.to_string(),
                        known: [$($text),*].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

state_enum!(
    /// Where one checkout or payment stands for its customer
    /// (`customer_status.state`).
    PaymentState, "payment state" {
        AwaitingPayment = "awaiting_payment",
        /// Charged, but no checkout explains the charge yet.
        PaidUnmatched = "paid_unmatched",
        Active = "active",
        Refunded = "refunded",
        Disputed = "disputed",
        /// Charged, but something disagrees (a duplicate, another amount).
        NeedsAttention = "needs_attention",
        /// The processor's session expired unpaid.
        Expired = "expired",
        /// The processor refused the payment.
        Failed = "failed",
    }
);

state_enum!(
    /// A customer's access (`subscriptions.status`).
    SubscriptionStatus, "subscription status" {
        Active = "active",
        Refunded = "refunded",
        Disputed = "disputed",
        /// A lost dispute took the money back, and the access with it.
        Revoked = "revoked",
        /// A renewal failed; the processor is still retrying.
        PastDue = "past_due",
        /// Will not renew; active until the end of what was paid.
        Canceled = "canceled",
        /// The subscription is over; access ended with what was paid.
        Ended = "ended",
    }
);

state_enum!(
    /// An outgoing email (`outgoing_emails.status`).
    EmailStatus, "email status" {
        Pending = "pending",
        Sent = "sent",
        /// Failed for now; the sender tries again.
        Failed = "failed",
        /// Given up: a discrepancy says so.
        Undeliverable = "undeliverable",
    }
);

state_enum!(
    /// A message to the product's application (`app_webhook_deliveries.status`).
    AppWebhookStatus, "application webhook status" {
        Pending = "pending",
        Sent = "sent",
        /// Every retry used.
        Failed = "failed",
    }
);

state_enum!(
    /// `discrepancies.status`.
    DiscrepancyStatus, "discrepancy status" {
        Open = "open",
        Acknowledged = "acknowledged",
        Resolved = "resolved",
    }
);

state_enum!(
    /// `discrepancies.kind`.
    DiscrepancyKind, "discrepancy kind" {
        UnmatchedCharge = "unmatched_charge",
        DuplicateCharge = "duplicate_charge",
        AmountMismatch = "amount_mismatch",
        RefundWithoutCharge = "refund_without_charge",
        DisputeOpened = "dispute_opened",
        EmailUndeliverable = "email_undeliverable",
        UnparsedProcessorEvent = "unparsed_processor_event",
        ProcessorDisagreement = "processor_disagreement",
        ProcessorEventConflict = "processor_event_conflict",
        /// Reconciliation met a processor object it cannot read.
        UnreadableProcessorObject = "unreadable_processor_object",
        /// The processor renewed a subscription and the ledger learned it
        /// only by asking (its webhook was lost): applied, for a person to see.
        RenewalNotApplied = "renewal_not_applied",
        /// A renewal paid for a subscription no checkout in the ledger bought.
        RenewalOrphan = "renewal_orphan",
        /// A message to the product's application used every retry.
        AppWebhookUndeliverable = "app_webhook_undeliverable",
        /// The ledger grants access now (a renewal's grace) but neither it
        /// nor the processor, asked, shows a paid period covering now.
        AccessWithoutPaidPeriod = "access_without_paid_period",
        /// The processor's status or period of a subscription is not the
        /// ledger's, even with every fact of its answer appended.
        SubscriptionDisagreement = "subscription_disagreement",
    }
);

state_enum!(
    /// A payment's dispute (`customer_status.dispute`), when it has one.
    DisputeState, "dispute state" {
        /// The bank took the money back for now; the processor is arguing.
        Open = "open",
        /// The money came back to us.
        Won = "won",
        /// The money stays with the customer's bank.
        Lost = "lost",
    }
);

impl DisputeState {
    /// How a closed dispute ended, in the processor's words ("won", "lost");
    /// `None` for any other closing (e.g. a warning that closed).
    pub fn of_closing(status: &str) -> Option<DisputeState> {
        status.parse().ok().filter(|s| *s != DisputeState::Open)
    }
}

state_enum!(
    /// The payment rules' own view of a payment (`ledger_payments.state`):
    /// how far it got towards access.
    LedgerPaymentState, "ledger payment state" {
        /// A checkout or a charge seen, not yet both.
        Pending = "pending",
        /// Charged, with no checkout to explain it.
        Unmatched = "unmatched",
        Active = "active",
        /// Matched, but for another amount than the checkout's.
        Mismatch = "mismatch",
        /// A second charge for a checkout already paid.
        Duplicate = "duplicate",
        /// A charge for an invoice, waiting for the invoice's own fact to
        /// say which subscription it pays (not an orphan while it waits).
        AwaitingInvoice = "awaiting_invoice",
        /// Paid a renewal invoice: the renewal rules give its access.
        Renewal = "renewal",
    }
);

state_enum!(
    /// A projection's runner (`projection_state.status`).
    ProjectionState, "projection state" {
        Running = "running",
        Stopped = "stopped",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_own_text() {
        for s in PaymentState::ALL {
            assert_eq!(s.as_str().parse::<PaymentState>(), Ok(*s));
        }
        for s in DiscrepancyKind::ALL {
            assert_eq!(s.as_str().parse::<DiscrepancyKind>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let e = "paid".parse::<PaymentState>().unwrap_err();
        assert!(
            e.to_string().contains("\"paid\" is not a payment state"),
            "{e}"
        );
    }
}
