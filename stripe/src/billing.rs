//! The processor's billing objects — subscriptions and invoices — in both
//! wire shapes (spec §12): accounts pinned to older API versions put the
//! period on the subscription and the subscription on the invoice; current
//! versions put the period on each subscription item and the subscription
//! under `invoice.parent.subscription_details`. Every shape-specific field is
//! optional, so one type reads (and the simulator writes) either.

use crate::objects::{Expandable, List};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recurring {
    pub interval: String,
    #[serde(default = "one")]
    pub interval_count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub unit_amount: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub recurring: Option<Recurring>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionItem {
    pub id: String,
    #[serde(default)]
    pub price: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_period_start: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CancellationDetails {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub customer: Option<Expandable>,
    /// `active`, `past_due`, `canceled`, `unpaid`, `incomplete`, `trialing`, …
    pub status: String,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    #[serde(default)]
    pub cancel_at: Option<i64>,
    #[serde(default)]
    pub canceled_at: Option<i64>,
    #[serde(default)]
    pub ended_at: Option<i64>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub start_date: Option<i64>,
    #[serde(default)]
    pub billing_cycle_anchor: Option<i64>,
    /// Older API versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_period_start: Option<i64>,
    /// Older API versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_period_end: Option<i64>,
    #[serde(default)]
    pub items: Option<List<SubscriptionItem>>,
    #[serde(default)]
    pub latest_invoice: Option<Expandable>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub cancellation_details: Option<CancellationDetails>,
    #[serde(default)]
    pub livemode: bool,
}

impl Subscription {
    /// The current period, wherever this API version puts it.
    pub fn current_period(&self) -> Option<(i64, i64)> {
        let on_item = self.items.as_ref().and_then(|items| {
            items
                .data
                .iter()
                .find_map(|i| Some((i.current_period_start?, i.current_period_end?)))
        });
        on_item.or_else(|| Some((self.current_period_start?, self.current_period_end?)))
    }

    /// The recurring price it bills (the first item's).
    pub fn price_id(&self) -> Option<&str> {
        self.items
            .as_ref()
            .and_then(|i| i.data.first())
            .and_then(|i| i.price.as_ref())
            .map(|p| p.id.as_str())
    }

    pub fn customer_id(&self) -> Option<&str> {
        self.customer.as_ref().and_then(|c| c.id())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinePeriod {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvoiceLine {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub amount: i64,
    #[serde(default)]
    pub period: Option<LinePeriod>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionDetails {
    #[serde(default)]
    pub subscription: Option<Expandable>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvoiceParent {
    #[serde(default)]
    pub subscription_details: Option<SubscriptionDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusTransitions {
    #[serde(default)]
    pub paid_at: Option<i64>,
    #[serde(default)]
    pub voided_at: Option<i64>,
}

/// One payment of an invoice (current API versions, when expanded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvoicePaymentRef {
    #[serde(default)]
    pub payment_intent: Option<Expandable>,
    #[serde(default)]
    pub charge: Option<Expandable>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvoicePayment {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub payment: Option<InvoicePaymentRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub customer: Option<Expandable>,
    #[serde(default)]
    pub customer_email: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible`, `void`.
    #[serde(default)]
    pub status: Option<String>,
    /// `subscription_create`, `subscription_cycle`, `subscription_update`, `manual`, …
    #[serde(default)]
    pub billing_reason: Option<String>,
    #[serde(default)]
    pub amount_due: i64,
    #[serde(default)]
    pub amount_paid: i64,
    pub currency: String,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub attempt_count: u32,
    #[serde(default)]
    pub next_payment_attempt: Option<i64>,
    #[serde(default)]
    pub period_start: Option<i64>,
    #[serde(default)]
    pub period_end: Option<i64>,
    #[serde(default)]
    pub lines: Option<List<InvoiceLine>>,
    /// Older API versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<Expandable>,
    /// Older API versions (2022 on) carry the subscription's metadata here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_details: Option<SubscriptionDetails>,
    /// Current API versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<InvoiceParent>,
    /// Older API versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<Expandable>,
    /// Older API versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<Expandable>,
    /// Current API versions, when expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments: Option<List<InvoicePayment>>,
    #[serde(default)]
    pub status_transitions: Option<StatusTransitions>,
    #[serde(default)]
    pub hosted_invoice_url: Option<String>,
    #[serde(default)]
    pub livemode: bool,
}

impl Invoice {
    fn details(&self) -> Option<&SubscriptionDetails> {
        self.parent
            .as_ref()
            .and_then(|p| p.subscription_details.as_ref())
            .or(self.subscription_details.as_ref())
    }

    /// The subscription it bills, wherever this API version puts it.
    pub fn subscription_id(&self) -> Option<&str> {
        self.subscription
            .as_ref()
            .and_then(|s| s.id())
            .or_else(|| self.details()?.subscription.as_ref()?.id())
    }

    /// The subscription's metadata as it was when the invoice was made.
    pub fn subscription_metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.details()?.metadata.as_ref()
    }

    /// The period it pays for: its line's (the invoice's own
    /// `period_start/end` is the period *before* a renewal), else its own.
    pub fn paid_period(&self) -> Option<(i64, i64)> {
        let line = self
            .lines
            .as_ref()
            .and_then(|l| l.data.iter().find_map(|l| l.period.as_ref()))
            .filter(|p| p.end > p.start)
            .map(|p| (p.start, p.end));
        line.or_else(|| Some((self.period_start?, self.period_end?)))
    }

    /// The payment that paid it, when the processor says.
    pub fn payment_id(&self) -> Option<&str> {
        let listed = self.payments.as_ref().and_then(|l| {
            l.data.iter().find_map(|p| {
                let payment = p.payment.as_ref()?;
                payment
                    .payment_intent
                    .as_ref()
                    .or(payment.charge.as_ref())?
                    .id()
            })
        });
        self.payment_intent
            .as_ref()
            .and_then(|p| p.id())
            .or(listed)
            .or_else(|| self.charge.as_ref()?.id())
    }

    pub fn customer_id(&self) -> Option<&str> {
        self.customer.as_ref().and_then(|c| c.id())
    }

    pub fn is_paid(&self) -> bool {
        self.status.as_deref() == Some("paid")
    }

    pub fn paid_at(&self) -> Option<i64> {
        self.status_transitions.as_ref().and_then(|t| t.paid_at)
    }
}
