//! Every event payledger can record. docs/events.md says who appends each one,
//! to which stream, and with which id.

use crate::{Actor, Currency, Period};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Through which door a charge became known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChargeSource {
    /// A signed callback from the processor.
    Webhook,
    /// Reconciliation asked the processor.
    Reconciliation,
    /// A person at the desk (a refund they made).
    Support,
}

/// Written before the processor is contacted, so a crash after the charge
/// still leaves the customer's intent in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutStarted {
    /// Our checkout's id.
    pub checkout_id: Uuid,
    /// The customer's address, lowercased.
    pub email: String,
    /// The plan's id (from the plans file).
    pub plan: String,
    /// Minor units of `currency`.
    pub amount: i64,
    /// The currency of `amount`.
    pub currency: Currency,
    /// How long one paid period of the plan lasts (absent before plans had
    /// periods: a year).
    #[serde(default)]
    pub period: Period,
    /// Whether the plan renews through the processor's subscription.
    #[serde(default)]
    pub renews: bool,
}

/// The processor opened a checkout session for a checkout; the customer pays there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorSessionOpened {
    /// Our checkout's id.
    pub checkout_id: Uuid,
    /// The processor's checkout session id.
    pub session_id: String,
    /// Where the customer pays.
    pub url: String,
}

/// The customer came back to the return page from the processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutReturned {
    /// Our checkout's id.
    pub checkout_id: Uuid,
    /// The processor's checkout session id.
    pub session_id: String,
}

/// The processor's session expired unpaid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutSessionExpired {
    /// The processor's checkout session id.
    pub session_id: String,
    /// The checkout id we gave the processor, when it came back.
    pub checkout_reference: Option<String>,
}

/// The processor refused the customer's payment method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutPaymentFailed {
    /// The processor's checkout session id.
    pub session_id: String,
    /// The checkout id we gave the processor, when it came back.
    pub checkout_reference: Option<String>,
    /// The processor's payment id, when it made one.
    pub payment_id: Option<String>,
}

/// The processor took the customer's money. Id: `ChargeSucceeded:<payment id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeSucceeded {
    /// The processor's payment (PaymentIntent) id.
    pub payment_id: String,
    /// The processor's charge id (`ch_…`).
    pub charge_id: Option<String>,
    /// The processor's checkout session id, when the charge came through one.
    pub session_id: Option<String>,
    /// The `client_reference_id` the checkout gave the processor (our checkout id).
    pub checkout_reference: Option<String>,
    /// The address the processor has for the payer.
    pub customer_email: Option<String>,
    /// Minor units of `currency`.
    pub amount: i64,
    /// The currency of `amount`.
    pub currency: Currency,
    /// When the processor charged it.
    pub paid_at: DateTime<Utc>,
    /// Through which door it became known.
    pub source: ChargeSource,
    /// The invoice this charge paid, when the processor said so: its
    /// invoice's fact, not the charge, says what it pays for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_id: Option<String>,
}

/// Id: `ChargeRefunded:<refund id>` (a payment may be refunded in parts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRefunded {
    /// The processor's payment (PaymentIntent) id.
    pub payment_id: String,
    /// The processor's refund id.
    pub refund_id: String,
    /// Minor units of `currency`.
    pub amount: i64,
    /// The currency of `amount`.
    pub currency: Currency,
    /// When the processor refunded it.
    pub refunded_at: DateTime<Utc>,
    /// Why, when the processor or a person said.
    pub reason: Option<String>,
    /// Through which door it became known.
    pub source: ChargeSource,
}

/// The customer disputed a charge with their bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeOpened {
    /// The processor's payment (PaymentIntent) id.
    pub payment_id: String,
    /// The processor's dispute id.
    pub dispute_id: String,
    /// Minor units of `currency`.
    pub amount: i64,
    /// The currency of `amount`.
    pub currency: Currency,
    /// Why, when the processor or a person said.
    pub reason: Option<String>,
    /// When the customer disputed it.
    pub opened_at: DateTime<Utc>,
}

/// A dispute ended (`won`, `lost`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeClosed {
    /// The processor's payment (PaymentIntent) id.
    pub payment_id: String,
    /// The processor's dispute id.
    pub dispute_id: String,
    /// The processor's outcome: `won`, `lost`, `warning_closed`, ...
    pub status: String,
    /// When the dispute closed.
    pub closed_at: DateTime<Utc>,
}

/// An orphan charge assigned to an account and plan, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeMatched {
    /// The processor's payment (PaymentIntent) id.
    pub payment_id: String,
    /// The customer's address, lowercased.
    pub email: String,
    /// The plan's id (from the plans file).
    pub plan: String,
    /// Why, in words a person wrote or the rule states.
    pub reason: String,
    /// Who matched it (a person, or auto-rescue).
    pub matched_by: Actor,
}

/// Access without a charge; shown as a grant forever after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionGranted {
    /// The customer's address, lowercased.
    pub email: String,
    /// The plan's id (from the plans file).
    pub plan: String,
    /// Why, in words a person wrote or the rule states.
    pub reason: String,
    /// Who granted it.
    pub granted_by: Actor,
}

/// Access taken away by a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRevoked {
    /// The customer's address, lowercased.
    pub email: String,
    /// Why, in words a person wrote or the rule states.
    pub reason: String,
    /// Who revoked it.
    pub revoked_by: Actor,
}

/// An email left: the server accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSent {
    /// The outbox key, e.g. `confirmation:<payment id>`.
    pub email_key: String,
    /// The sent message's Message-ID.
    pub message_id: String,
    /// Which attempt this was (from 1).
    pub attempt: u32,
}

/// An email could not be sent this time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailFailed {
    /// Which email (`confirmation:<payment>`, `refund_confirmation:<refund>`, …).
    pub email_key: String,
    /// Which attempt this was (from 1).
    pub attempt: u32,
    /// What went wrong, in the words of whoever failed.
    pub error: String,
    /// Whether trying again cannot help (the address was refused).
    pub permanent: bool,
}

/// A person asked for an email to be sent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailResendRequested {
    /// Which email (`confirmation:<payment>`, `refund_confirmation:<refund>`, …).
    pub email_key: String,
    /// Who asked.
    pub requested_by: Actor,
}

/// A person took a discrepancy; it stays open until resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscrepancyAcknowledged {
    /// The discrepancy's id (`<kind>:<subject>`).
    pub discrepancy_id: String,
    /// What the person wrote.
    pub note: String,
    /// Who took it.
    pub acknowledged_by: Actor,
}

/// A person closed a discrepancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscrepancyResolved {
    /// The discrepancy's id (`<kind>:<subject>`).
    pub discrepancy_id: String,
    /// How it ended.
    pub resolution: String,
    /// What the person wrote.
    pub note: String,
    /// Who resolved it.
    pub resolved_by: Actor,
}

/// The processor's callback, verbatim, whether or not payledger acts on it.
/// Id: `ProcessorEventReceived:<evt id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorEventReceived {
    /// The processor's event id (`evt_…`).
    pub processor_event_id: String,
    /// The processor's event type (`charge.succeeded`, …).
    pub event_type: String,
    /// The body exactly as received (text; see `raw_body_base64` for bytes).
    pub raw_body: String,
    /// The exact bytes, base64, when `raw_body` cannot hold them (not UTF-8,
    /// or a NUL byte); `raw_body` is then a readable approximation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body_base64: Option<String>,
    /// Whether its signature verified.
    pub signature_verified: bool,
    /// When payledger received it.
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
    /// The processor's event id (`evt_…`).
    pub processor_event_id: String,
    /// SHA-256 of the body stored first under this id.
    pub stored_body_sha256: String,
    /// SHA-256 of the body received now.
    pub received_body_sha256: String,
    /// When payledger received it.
    pub received_at: DateTime<Utc>,
}

/// Reconciliation listed an object at the processor (a checkout session,
/// charge, refund, dispute, subscription, invoice or undelivered event)
/// whose facts payledger cannot read: a currency its table lacks, a field
/// out of range. It may be money taken; nothing it says became a fact, so
/// a person must look. Id: `ProcessorObjectUnreadable:<payment id>` when
/// the object names its payment (the session, the charge and their events
/// are one thing for a person), else `…:<object id>` — once however often
/// reconciliation meets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorObjectUnreadable {
    /// The processor's id of the object (`ch_…`, `cs_…`, `in_…`, `evt_…`).
    pub object_id: String,
    /// What kind of object it is (`charge`, `checkout session`, …).
    pub object: String,
    /// The payment (PaymentIntent) it is about, when it says.
    #[serde(default)]
    pub payment_id: Option<String>,
    /// The customer's address, when it gives one.
    #[serde(default)]
    pub customer_email: Option<String>,
    /// Why its facts cannot be read.
    pub reason: String,
    /// The reconciliation run that met it (its stream).
    pub run_id: Uuid,
}

/// A customer asked, by address, where their payment stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusLinkRequested {
    /// The request's id (its stream).
    pub request_id: Uuid,
    /// The customer's address, lowercased.
    pub email: String,
}

/// A reconciliation run finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationCompleted {
    /// The run's id (its stream).
    pub run_id: Uuid,
    /// The start of the window asked about.
    pub window_from: DateTime<Utc>,
    /// The end of the window asked about.
    pub window_to: DateTime<Utc>,
    /// Objects the processor listed.
    pub objects_seen: u64,
    /// Facts the ledger lacked, appended by the run.
    pub missing_appended: u64,
    /// Disagreements found.
    pub differences: u64,
    /// How long the run took.
    pub duration_ms: u64,
}

/// A scheduled or manual run that could not finish: the window it did not
/// complete, so the next scheduled run starts again from before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationFailed {
    /// The run's id (its stream).
    pub run_id: Uuid,
    /// The start of the window asked about.
    pub window_from: DateTime<Utc>,
    /// The end of the window asked about.
    pub window_to: DateTime<Utc>,
    /// Objects the processor listed.
    pub objects_seen: u64,
    /// Facts the ledger lacked, appended by the run.
    pub missing_appended: u64,
    /// What went wrong, in the words of whoever failed.
    pub error: String,
}

/// The processor and the ledger disagree about a payment in a way that is
/// not simply a missing fact: `kind` is `amount_differs`,
/// `currency_differs` or `refunded_at_processor`. Id:
/// `ProcessorDisagreement:<payment id>:<kind>:<processor value>`, so the
/// same disagreement seen by every later run is recorded once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorDisagreement {
    /// The processor's payment (PaymentIntent) id.
    pub payment_id: String,
    /// What disagrees (`amount`, `refunded_at_processor`, …).
    pub kind: String,
    /// What the ledger says, in minor units, if it has the payment.
    pub ledger_amount: Option<i64>,
    /// The ledger's currency, if it has the payment.
    pub ledger_currency: Option<Currency>,
    /// What the processor says, in minor units.
    pub processor_amount: i64,
    /// The processor's currency.
    pub processor_currency: Currency,
    /// The processor's object that says so.
    pub processor_object_id: String,
    /// The disagreement in words.
    pub detail: String,
}

/// The processor created a subscription (a renewing plan was bought), or
/// payledger first saw it. Id: `SubscriptionStarted:<subscription id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionStarted {
    /// The processor's subscription id (`sub_…`).
    pub subscription_id: String,
    /// The processor's customer id (`cus_…`).
    pub customer_id: Option<String>,
    /// Our checkout id, from the subscription's metadata; `None` when our
    /// side never recorded the checkout.
    pub checkout_reference: Option<String>,
    /// The processor's recurring price the subscription bills.
    pub price_id: Option<String>,
    /// When the processor started it.
    pub started_at: DateTime<Utc>,
}

/// An invoice of a subscription was paid: exactly one period of access.
/// Id: `InvoicePaid:<invoice id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePaid {
    /// The processor's invoice id (`in_…`).
    pub invoice_id: String,
    /// The processor's subscription id (`sub_…`).
    pub subscription_id: String,
    /// The payment that paid it, when the processor names one.
    pub payment_id: Option<String>,
    /// `subscription_create` (the first), `subscription_cycle` (a renewal), …
    pub billing_reason: String,
    /// Our checkout id, from the subscription's metadata, when present.
    pub checkout_reference: Option<String>,
    /// The address the processor has for the customer.
    pub customer_email: Option<String>,
    /// Minor units of `currency` (0 for a free period).
    pub amount: i64,
    /// The currency of `amount`.
    pub currency: Currency,
    /// The start of the period it pays for.
    pub period_start: DateTime<Utc>,
    /// The end of the period it pays for.
    pub period_end: DateTime<Utc>,
    /// When the processor took the money.
    pub paid_at: DateTime<Utc>,
    /// Through which door it became known.
    pub source: ChargeSource,
}

/// An attempt to collect an invoice failed. Id:
/// `InvoicePaymentFailed:<invoice id>:<attempt>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePaymentFailed {
    /// The processor's invoice id (`in_…`).
    pub invoice_id: String,
    /// The processor's subscription id (`sub_…`).
    pub subscription_id: String,
    /// Which attempt failed (from 1).
    pub attempt: u32,
    /// When the processor tries again; `None` after the last attempt.
    pub next_attempt: Option<DateTime<Utc>>,
    /// The address the processor has for the customer.
    pub customer_email: Option<String>,
    /// Minor units of `currency` still due.
    pub amount: i64,
    /// The currency of `amount`.
    pub currency: Currency,
    /// When the attempt failed.
    pub failed_at: DateTime<Utc>,
}

/// The subscription will end at `cancel_at` instead of renewing. Id:
/// `SubscriptionCancellationScheduled:<subscription id>:<requested at>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCancellationScheduled {
    /// The processor's subscription id (`sub_…`).
    pub subscription_id: String,
    /// When it will end.
    pub cancel_at: DateTime<Utc>,
    /// When the cancellation was asked for (orders it against an undo).
    pub requested_at: DateTime<Utc>,
}

/// A scheduled cancellation was withdrawn: the subscription renews again.
/// Id: `SubscriptionCancellationUndone:<subscription id>:<undone at>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCancellationUndone {
    /// The processor's subscription id (`sub_…`).
    pub subscription_id: String,
    /// When the processor recorded the undo.
    pub undone_at: DateTime<Utc>,
}

/// The subscription was moved to another price (a plan change, in the
/// processor's portal or by support): from its next invoice the customer
/// pays the new price for the new price's period. The fact names prices
/// only — which of our plans a price is comes from `PlanOffered`, so the
/// stored fact never depends on the plans file of the day.
/// Id: `SubscriptionPlanChanged:<subscription id>:<price id>:<changed at>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionPlanChanged {
    /// The processor's subscription id (`sub_…`).
    pub subscription_id: String,
    /// The price it is on now.
    pub price_id: String,
    /// The price it was on, when the processor said.
    pub previous_price_id: Option<String>,
    /// When the processor recorded the change.
    pub changed_at: DateTime<Utc>,
}

/// A plan of the plans file is sold at a processor price: recorded at
/// start-up by `serve`/`run` whenever the pairing is new, so the log itself
/// says which plan a price means (a plan change names only the price).
/// Id: from every field, so the same pairing is recorded once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOffered {
    /// The plan's id (from the plans file).
    pub plan: String,
    /// The processor's price id (`price_…`).
    pub price_id: String,
    /// Minor units of `currency`, each period.
    pub amount: i64,
    /// The currency of `amount`.
    pub currency: Currency,
    /// How long one paid period lasts.
    pub period: Period,
    /// Whether the processor charges again at each period's end.
    pub renews: bool,
}

/// An endpoint of the product's application is told of every change of
/// access (spec §13). The secret itself is never in the log (an auditor's
/// export must not sign messages): only its fingerprint.
/// Id: `AppWebhookEndpointAdded:<endpoint id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppWebhookEndpointAdded {
    /// `ep_…`.
    pub endpoint_id: String,
    /// Where messages are posted.
    pub url: String,
    /// The message types it wants (`subscription.renewed`, …); empty: all.
    pub types: Vec<String>,
    /// The first 16 hex digits of the SHA-256 of the secret.
    pub secret_fingerprint: String,
}

/// No more messages go to the endpoint: by a person, an answer `410 Gone`,
/// or five days of failures. Id: `AppWebhookEndpointDisabled:<endpoint id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppWebhookEndpointDisabled {
    /// `ep_…`.
    pub endpoint_id: String,
    /// Why, in words.
    pub reason: String,
}

/// The endpoint signs with a new secret; the previous one keeps signing
/// beside it until `previous_valid_until`.
/// Id: `AppWebhookSecretRotated:<endpoint id>:<fingerprint>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppWebhookSecretRotated {
    /// `ep_…`.
    pub endpoint_id: String,
    /// The new secret's fingerprint.
    pub secret_fingerprint: String,
    /// Until when the previous secret signs too.
    pub previous_valid_until: DateTime<Utc>,
}

/// A message to the application used every retry without a 2xx: it will
/// not be sent again unless replayed. Opens `app_webhook_undeliverable`.
/// Id: `AppWebhookMessageFailed:<message id>:<attempts>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppWebhookMessageFailed {
    /// `ep_…`.
    pub endpoint_id: String,
    /// The message's `webhook-id`.
    pub message_id: String,
    /// The customer the message is about.
    pub email: String,
    /// The message type (`subscription.renewed`, …).
    pub message_type: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's outcome (status code or error).
    pub last_error: String,
}

/// The messages since `since` are sent to the endpoint again, with their
/// original ids. Id: random (each request is its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppWebhookReplayRequested {
    /// `ep_…`.
    pub endpoint_id: String,
    /// Messages of changes recorded at or after this moment.
    pub since: DateTime<Utc>,
}

/// The subscription is over at the processor (cancelled now, at its period
/// end, or after the last failed attempt). Id: `SubscriptionEnded:<subscription id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionEnded {
    /// The processor's subscription id (`sub_…`).
    pub subscription_id: String,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// The processor's reason (`cancellation_requested`, `payment_failed`, …).
    pub reason: Option<String>,
}

/// A yearly renewal is near: its customer is owed a reminder (several
/// jurisdictions require notice before an annual auto-renewal). Id:
/// `RenewalReminderDue:<subscription id>:<renews at>`, so each renewal is
/// announced once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalReminderDue {
    /// The processor's subscription id (`sub_…`).
    pub subscription_id: String,
    /// When the processor will charge.
    pub renews_at: DateTime<Utc>,
    /// Minor units of `currency` it will charge.
    pub amount: i64,
    /// The currency of `amount`.
    pub currency: Currency,
}

/// Asked about a subscription before its access ended, the processor's
/// answer and the ledger do not fit together, even with every fact the
/// answer held appended. Id:
/// `SubscriptionDisagreement:<subscription id>:<kind>:<ledger period end>`,
/// so one paid period's disagreement is recorded once however often asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionDisagreement {
    /// The processor's subscription id (`sub_…`).
    pub subscription_id: String,
    /// Whose access it is, when the ledger knows.
    pub email: Option<String>,
    /// `no_paid_period` (the ledger grants access now but nothing paid
    /// covers now), `status` (the processor's status is not the ledger's)
    /// or `period` (paid periods that end on different days).
    pub kind: String,
    /// The ledger's status of the subscription.
    pub ledger_status: String,
    /// The end of what the ledger has seen paid.
    pub ledger_period_end: DateTime<Utc>,
    /// The processor's status (`active`, `past_due`, `unpaid`, …).
    pub processor_status: String,
    /// The end of the processor's current period, if it names one.
    pub processor_period_end: Option<DateTime<Utc>>,
    /// The disagreement in words.
    pub detail: String,
}

/// Why a stored event cannot be read as a [`DomainEvent`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// No event of this type exists.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// Written by a newer build than this one.
    #[error("{event_type} payload of schema version {version} is newer than this build understands (up to {known})")]
    FutureSchema {
        /// The event's type.
        event_type: String,
        /// The stored schema version.
        version: u32,
        /// The newest version this build reads.
        known: u32,
    },
    /// The payload does not fit its type.
    #[error("{event_type} payload does not fit its schema: {source}")]
    Payload {
        /// The event's type.
        event_type: String,
        /// Why the payload does not fit.
        source: serde_json::Error,
    },
    /// An old payload could not be upgraded.
    #[error("{event_type} payload of schema version {version} cannot be upcast: {reason}")]
    Upcast {
        /// The event's type.
        event_type: String,
        /// The stored schema version.
        version: u32,
        /// Why the upgrade failed.
        reason: String,
    },
}

macro_rules! vocabulary {
    ($($name:ident),* $(,)?) => {
        /// Any event of the vocabulary.
        #[derive(Debug, Clone, PartialEq)]
        pub enum DomainEvent {
            $(
                #[doc = concat!("A [`", stringify!($name), "`].")]
                $name($name)
            ),*
        }

        impl DomainEvent {
            /// Every event type name, as stored in the `event_type` column.
            pub const TYPES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// The type name stored in the `event_type` column.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(DomainEvent::$name(_) => stringify!($name)),*
                }
            }

            /// The payload as stored (this schema version's JSON).
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
    ProcessorObjectUnreadable,
    SubscriptionStarted,
    InvoicePaid,
    InvoicePaymentFailed,
    SubscriptionCancellationScheduled,
    SubscriptionCancellationUndone,
    SubscriptionEnded,
    RenewalReminderDue,
    SubscriptionDisagreement,
    SubscriptionPlanChanged,
    PlanOffered,
    AppWebhookEndpointAdded,
    AppWebhookEndpointDisabled,
    AppWebhookSecretRotated,
    AppWebhookReplayRequested,
    AppWebhookMessageFailed,
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
