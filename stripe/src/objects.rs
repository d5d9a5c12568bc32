//! The processor's wire objects, in Stripe's shapes (field names as in
//! `shared/stripe/fixtures3.json`). Lenient on purpose: unknown fields are
//! ignored and most fields are optional, because the processor adds fields
//! over time and payledger must never refuse to read what it was sent.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A reference that the API may send as an id or, when expanded, as the
/// object itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expandable {
    Id(String),
    Object(serde_json::Value),
}

impl Expandable {
    pub fn id(&self) -> Option<&str> {
        match self {
            Expandable::Id(id) => Some(id),
            Expandable::Object(o) => o.get("id").and_then(|v| v.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub api_version: Option<String>,
    pub created: i64,
    pub data: EventObject,
    #[serde(default)]
    pub livemode: bool,
    #[serde(default)]
    pub pending_webhooks: Option<i64>,
    #[serde(rename = "type")]
    pub event_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventObject {
    pub object: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_attributes: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerDetails {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub amount_total: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub customer_details: Option<CustomerDetails>,
    #[serde(default)]
    pub customer_email: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<Expandable>,
    /// `paid`, `unpaid` or `no_payment_required`.
    pub payment_status: String,
    /// `open`, `complete` or `expired`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    // Absent from some real payloads (pay-rails' fixture); 0 then.
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub success_url: Option<String>,
    #[serde(default)]
    pub cancel_url: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Subscription mode: the subscription the session created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<Expandable>,
    /// Subscription mode: the subscription's first invoice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<Expandable>,
    #[serde(default)]
    pub livemode: bool,
}

impl CheckoutSession {
    /// The address the customer paid with: what they typed at the
    /// processor, else what the checkout pre-filled.
    pub fn email(&self) -> Option<&str> {
        self.customer_details
            .as_ref()
            .and_then(|d| d.email.as_deref())
            .or(self.customer_email.as_deref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BillingDetails {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List<T> {
    #[serde(default)]
    pub object: String,
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub amount: i64,
    #[serde(default)]
    pub amount_refunded: i64,
    pub currency: String,
    pub created: i64,
    #[serde(default)]
    pub paid: bool,
    #[serde(default)]
    pub refunded: bool,
    #[serde(default)]
    pub disputed: bool,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<Expandable>,
    #[serde(default)]
    pub billing_details: Option<BillingDetails>,
    #[serde(default)]
    pub receipt_email: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub refunds: Option<List<Refund>>,
    /// The invoice it paid (older API versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<Expandable>,
    #[serde(default)]
    pub livemode: bool,
}

impl Charge {
    /// The payment this charge belongs to: its payment intent, or the charge
    /// itself when it was made without one.
    pub fn payment_id(&self) -> &str {
        self.payment_intent
            .as_ref()
            .and_then(|p| p.id())
            .unwrap_or(&self.id)
    }

    pub fn email(&self) -> Option<&str> {
        self.billing_details
            .as_ref()
            .and_then(|b| b.email.as_deref())
            .or(self.receipt_email.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub amount: i64,
    #[serde(default)]
    pub charge: Option<Expandable>,
    #[serde(default)]
    pub payment_intent: Option<Expandable>,
    pub currency: String,
    pub created: i64,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispute {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub amount: i64,
    pub charge: Expandable,
    #[serde(default)]
    pub payment_intent: Option<Expandable>,
    pub currency: String,
    pub created: i64,
    #[serde(default)]
    pub reason: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    #[serde(default)]
    pub object: String,
    pub amount: i64,
    #[serde(default)]
    pub amount_received: i64,
    pub currency: String,
    pub created: i64,
    pub status: String,
    #[serde(default)]
    pub receipt_email: Option<String>,
    #[serde(default)]
    pub latest_charge: Option<Expandable>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// The invoice it paid (older API versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<Expandable>,
}

/// The metadata key under which payledger's checkout stores its checkout id
/// on the session and its payment intent, so every object of the payment can
/// be traced back to the checkout.
pub const CHECKOUT_REFERENCE_KEY: &str = "checkout_reference";
