//! Every event payledger can record. docs/events.md says who appends each one,
//! to which stream, and with which id.

use crate::{Actor, Currency};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Through which door a charge became known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChargeSource {
    Webhook,
    Reconciliation,
    Support,
}

/// Written before the processor is contacted, so a crash after the charge
/// still leaves the customer's intent in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutStarted {
    pub checkout_id: Uuid,
    pub email: String,
    pub plan: String,
    pub amount: i64,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorSessionOpened {
    pub checkout_id: Uuid,
    pub session_id: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutReturned {
    pub checkout_id: Uuid,
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutSessionExpired {
    pub session_id: String,
    pub checkout_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutPaymentFailed {
    pub session_id: String,
    pub checkout_reference: Option<String>,
    pub payment_id: Option<String>,
}

/// The processor took the customer's money. Id: `ChargeSucceeded:<payment id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeSucceeded {
    pub payment_id: String,
    pub charge_id: Option<String>,
    pub session_id: Option<String>,
    /// The `client_reference_id` the checkout gave the processor (our checkout id).
    pub checkout_reference: Option<String>,
    pub customer_email: Option<String>,
    pub amount: i64,
    pub currency: Currency,
    pub paid_at: DateTime<Utc>,
    pub source: ChargeSource,
}

/// Id: `ChargeRefunded:<refund id>` (a payment may be refunded in parts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRefunded {
    pub payment_id: String,
    pub refund_id: String,
    pub amount: i64,
    pub currency: Currency,
    pub refunded_at: DateTime<Utc>,
    pub reason: Option<String>,
    pub source: ChargeSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeOpened {
    pub payment_id: String,
    pub dispute_id: String,
    pub amount: i64,
    pub currency: Currency,
    pub reason: Option<String>,
    pub opened_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeClosed {
    pub payment_id: String,
    pub dispute_id: String,
    /// The processor's outcome: `won`, `lost`, `warning_closed`, ...
    pub status: String,
    pub closed_at: DateTime<Utc>,
}

/// An orphan charge assigned to an account and plan, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeMatched {
    pub payment_id: String,
    pub email: String,
    pub plan: String,
    pub reason: String,
    pub matched_by: Actor,
}

/// Access without a charge; shown as a grant forever after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionGranted {
    pub email: String,
    pub plan: String,
    pub reason: String,
    pub granted_by: Actor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRevoked {
    pub email: String,
    pub reason: String,
    pub revoked_by: Actor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSent {
    /// The outbox key, e.g. `confirmation:<payment id>`.
    pub email_key: String,
    pub message_id: String,
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailFailed {
    pub email_key: String,
    pub attempt: u32,
    pub error: String,
    pub permanent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailResendRequested {
    pub email_key: String,
    pub requested_by: Actor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscrepancyAcknowledged {
    pub discrepancy_id: String,
    pub note: String,
    pub acknowledged_by: Actor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscrepancyResolved {
    pub discrepancy_id: String,
    pub resolution: String,
    pub note: String,
    pub resolved_by: Actor,
}

/// The processor's callback, verbatim, whether or not payledger acts on it.
/// Id: `ProcessorEventReceived:<evt id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorEventReceived {
    pub processor_event_id: String,
    pub event_type: String,
    pub raw_body: String,
    /// The exact bytes, base64, when `raw_body` cannot hold them (not UTF-8,
    /// or a NUL byte); `raw_body` is then a readable approximation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body_base64: Option<String>,
    pub signature_verified: bool,
    pub received_at: DateTime<Utc>,
    /// Why the body could not be understood; `None` when it was mapped or
    /// deliberately ignored.
    pub unparsed_reason: Option<String>,
}

/// A signed callback arrived under a processor event id that is already
/// stored, with a different body. Nothing it says became a fact: facts come
/// only from the body that is stored. Id:
/// `ProcessorEventConflict:<evt id>:<received body's sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorEventConflict {
    pub processor_event_id: String,
    pub stored_body_sha256: String,
    pub received_body_sha256: String,
    pub received_at: DateTime<Utc>,
}

/// A customer asked, by address, where their payment stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusLinkRequested {
    pub request_id: Uuid,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationCompleted {
    pub run_id: Uuid,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub objects_seen: u64,
    pub missing_appended: u64,
    pub differences: u64,
    pub duration_ms: u64,
}

/// A scheduled or manual run that could not finish: the window it did not
/// complete, so the next scheduled run starts again from before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationFailed {
    pub run_id: Uuid,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub objects_seen: u64,
    pub missing_appended: u64,
    pub error: String,
}

/// The processor and the ledger disagree about a payment in a way that is
/// not simply a missing fact: `kind` is `amount_differs`,
/// `currency_differs` or `refunded_at_processor`. Id:
/// `ProcessorDisagreement:<payment id>:<kind>:<processor value>`, so the
/// same disagreement seen by every later run is recorded once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorDisagreement {
    pub payment_id: String,
    pub kind: String,
    pub ledger_amount: Option<i64>,
    pub ledger_currency: Option<Currency>,
    pub processor_amount: i64,
    pub processor_currency: Currency,
    pub processor_object_id: String,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{event_type} payload of schema version {version} is newer than this build understands (up to {known})")]
    FutureSchema {
        event_type: String,
        version: u32,
        known: u32,
    },
    #[error("{event_type} payload does not fit its schema: {source}")]
    Payload {
        event_type: String,
        source: serde_json::Error,
    },
    #[error("{event_type} payload of schema version {version} cannot be upcast: {reason}")]
    Upcast {
        event_type: String,
        version: u32,
        reason: String,
    },
}

macro_rules! vocabulary {
    ($($name:ident),* $(,)?) => {
        /// Any event of the vocabulary.
        #[derive(Debug, Clone, PartialEq)]
        pub enum DomainEvent {
            $($name($name)),*
        }

        impl DomainEvent {
            /// Every event type name, as stored in the `event_type` column.
            pub const TYPES: &'static [&'static str] = &[$(stringify!($name)),*];

            pub fn event_type(&self) -> &'static str {
                match self {
                    $(DomainEvent::$name(_) => stringify!($name)),*
                }
            }

            pub fn to_payload(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $(DomainEvent::$name(e) => serde_json::to_value(e)),*
                }
            }

            fn decode_current(event_type: &str, payload: serde_json::Value) -> Result<Self, DecodeError> {
                let wrap = |source| DecodeError::Payload { event_type: event_type.to_string(), source };
                match event_type {
                    $(stringify!($name) => serde_json::from_value(payload).map(DomainEvent::$name).map_err(wrap),)*
                    other => Err(DecodeError::UnknownType(other.to_string())),
                }
            }
        }

        $(impl From<$name> for DomainEvent {
            fn from(e: $name) -> Self {
                DomainEvent::$name(e)
            }
        })*
    };
}

vocabulary!(
    CheckoutStarted,
    ProcessorSessionOpened,
    CheckoutReturned,
    CheckoutSessionExpired,
    CheckoutPaymentFailed,
    ChargeSucceeded,
    ChargeRefunded,
    DisputeOpened,
    DisputeClosed,
    ChargeMatched,
    SubscriptionGranted,
    SubscriptionRevoked,
    EmailSent,
    EmailFailed,
    EmailResendRequested,
    DiscrepancyAcknowledged,
    DiscrepancyResolved,
    ProcessorEventReceived,
    StatusLinkRequested,
    ReconciliationCompleted,
    ReconciliationFailed,
    ProcessorDisagreement,
    ProcessorEventConflict,
);

/// The schema version new events of this type are written in.
pub fn current_schema_version(event_type: &str) -> u32 {
    match event_type {
        // v2: `amount_cents` (always USD) became `amount` + `currency`.
        "CheckoutStarted" => 2,
        _ => 1,
    }
}

impl DomainEvent {
    /// Decodes a stored payload, first upcasting older schema versions step by
    /// step to the current shape. Stored rows are never rewritten.
    pub fn decode(
        event_type: &str,
        version: u32,
        mut payload: serde_json::Value,
    ) -> Result<Self, DecodeError> {
        let known = current_schema_version(event_type);
        if version > known {
            return Err(DecodeError::FutureSchema {
                event_type: event_type.to_string(),
                version,
                known,
            });
        }
        let mut v = version.max(1);
        while v < known {
            payload = upcast_one_step(event_type, v, payload)?;
            v += 1;
        }
        Self::decode_current(event_type, payload)
    }
}

fn upcast_one_step(
    event_type: &str,
    from: u32,
    mut payload: serde_json::Value,
) -> Result<serde_json::Value, DecodeError> {
    let fail = |reason: &str| DecodeError::Upcast {
        event_type: event_type.to_string(),
        version: from,
        reason: reason.to_string(),
    };
    match (event_type, from) {
        ("CheckoutStarted", 1) => {
            let obj = payload
                .as_object_mut()
                .ok_or_else(|| fail("payload is not an object"))?;
            let cents = obj
                .remove("amount_cents")
                .ok_or_else(|| fail("missing amount_cents"))?;
            obj.insert("amount".into(), cents);
            // Version 1 was written while only the USD plan existed.
            obj.entry("currency").or_insert_with(|| "usd".into());
            Ok(payload)
        }
        _ => Err(fail("no upcaster for this version")),
    }
}
