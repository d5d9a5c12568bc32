//! From a verified processor callback to the events it implies. Every fact
//! gets the deterministic id the reconciler and support also compute, so
//! whichever path learns it first records it and the others are duplicates.

use crate::objects::{self as stripe, CHECKOUT_REFERENCE_KEY};
use chrono::{DateTime, TimeZone, Utc};
use payledger_events::{
    Actor, ChargeRefunded, ChargeSource, ChargeSucceeded, CheckoutPaymentFailed,
    CheckoutSessionExpired, Currency, DisputeClosed, DisputeOpened, DomainEvent, EventData,
    Metadata, ProcessorEventReceived, StreamId,
};
use payledger_store::{ExpectedVersion, StreamAppend};
use sha2::{Digest, Sha256};

/// What a callback becomes: the verbatim record and the facts it states.
#[derive(Debug)]
pub struct MappedCallback {
    pub processor_event_id: String,
    pub event_type: String,
    pub unparsed_reason: Option<String>,
    /// Domain event types stated by the callback (not the verbatim record).
    pub facts: Vec<&'static str>,
    /// The verbatim record's id: the facts are stored only with it, never
    /// when it is already stored (possibly with another body).
    pub record_event_id: uuid::Uuid,
    pub appends: Vec<StreamAppend>,
}

/// A fact stated by a processor object: the event, its stream and the
/// processor id its deterministic event id is derived from.
#[derive(Debug, Clone)]
pub struct ProcessorFact {
    pub event: DomainEvent,
    pub stream: StreamId,
    pub object_id: String,
}

pub fn map_callback(
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<MappedCallback, serde_json::Error> {
    let (raw_body, raw_body_base64) = verbatim(body);
    let value: Result<serde_json::Value, _> = serde_json::from_slice(body);
    let (processor_event_id, event_type, facts, unparsed_reason) = match value {
        Err(e) => (
            body_digest_id(body),
            String::new(),
            vec![],
            Some(format!("body is not JSON: {e}")),
        ),
        Ok(value) => {
            let claimed_id = value.get("id").and_then(|v| v.as_str()).map(str::to_string);
            let claimed_type = value
                .get("type")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            match serde_json::from_value::<stripe::Event>(value) {
                Err(e) => (
                    claimed_id.unwrap_or_else(|| body_digest_id(body)),
                    claimed_type,
                    vec![],
                    Some(format!("not a processor event: {e}")),
                ),
                Ok(event) => {
                    let facts = facts_of_event(&event, ChargeSource::Webhook).and_then(|facts| {
                        facts
                            .iter()
                            .try_for_each(|f| check_fact(f, received_at))
                            .map(|()| facts)
                    });
                    match facts {
                        Ok(facts) => (event.id, event.event_type, facts, None),
                        Err(reason) => (event.id, event.event_type, vec![], Some(reason)),
                    }
                }
            }
        }
    };
    // An id that cannot be a stream name (too long, control characters)
    // must not keep the body out of the log: the body's digest stands in.
    let (processor_event_id, facts, unparsed_reason) =
        match check_id("event id", &processor_event_id) {
            Ok(()) => (processor_event_id, facts, unparsed_reason),
            Err(reason) => (body_digest_id(body), vec![], Some(reason)),
        };
    let event_type = printable_prefix(&event_type, MAX_TEXT_CHARS);

    let record: DomainEvent = ProcessorEventReceived {
        processor_event_id: processor_event_id.clone(),
        event_type: event_type.clone(),
        raw_body,
        raw_body_base64,
        signature_verified: true,
        received_at,
        unparsed_reason: unparsed_reason.clone(),
    }
    .into();
    // Everything this callback caused is correlated by the record's id.
    let correlation =
        payledger_events::deterministic_event_id(record.event_type(), &processor_event_id);
    let record_data = EventData::for_processor_fact(
        &record,
        &processor_event_id,
        Metadata::new(correlation, Actor::webhook(), "webhook"),
    )?;
    let record_event_id = record_data.event_id;
    let mut appends = vec![StreamAppend::new(
        StreamId::processor_event(&processor_event_id),
        ExpectedVersion::Any,
        vec![record_data],
    )];
    let mut fact_types = vec![];
    for fact in facts {
        fact_types.push(fact.event.event_type());
        let metadata =
            Metadata::new(correlation, Actor::webhook(), "webhook").caused_by(correlation);
        let data = EventData::for_processor_fact(&fact.event, &fact.object_id, metadata)?;
        appends.push(StreamAppend::new(
            fact.stream,
            ExpectedVersion::Any,
            vec![data],
        ));
    }
    Ok(MappedCallback {
        processor_event_id,
        event_type,
        unparsed_reason,
        facts: fact_types,
        record_event_id,
        appends,
    })
}

/// A body without an id still needs a stable one, so retries of the same
/// bytes are stored once.
fn body_digest_id(body: &[u8]) -> String {
    format!("unparsed-{}", &hex::encode(Sha256::digest(body))[..32])
}

/// The body as text for reading, and — when text cannot hold it exactly
/// (not UTF-8, or a NUL byte, which PostgreSQL's jsonb refuses) — its exact
/// bytes in base64.
pub fn verbatim(body: &[u8]) -> (String, Option<String>) {
    use base64::Engine;
    match std::str::from_utf8(body) {
        Ok(text) if !text.contains('\0') => (text.to_string(), None),
        _ => (
            String::from_utf8_lossy(body).replace('\0', "\u{fffd}"),
            Some(base64::engine::general_purpose::STANDARD.encode(body)),
        ),
    }
}

/// The exact bytes a stored callback was received as.
pub fn stored_body_bytes(record: &ProcessorEventReceived) -> Vec<u8> {
    use base64::Engine;
    record
        .raw_body_base64
        .as_deref()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| record.raw_body.as_bytes().to_vec())
}

pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Processor ids are short ASCII tokens (`evt_…`, `pi_…`); anything else
/// cannot name a stream (PostgreSQL's index rows are limited, and text may
/// not hold NUL).
pub const MAX_ID_CHARS: usize = 255;
/// No field of a fact is near this; it keeps every indexed column storable.
pub const MAX_TEXT_CHARS: usize = 1024;
/// The processor's own limit is eight digits; far above it is not money.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

pub(crate) fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if id.len() > MAX_ID_CHARS {
        return Err(format!(
            "{what} is {} bytes long (at most {MAX_ID_CHARS})",
            id.len()
        ));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{what} {:?} holds characters a processor id never has",
            printable_prefix(id, 40)
        ));
    }
    Ok(())
}

/// At most `max` characters, control characters replaced, for names kept
/// beside an unparsed body.
/// A processor object's id as payledger can file it: the id itself, or —
/// when it cannot name a stream (empty, too long, odd characters) — its
/// digest, so that the object is still recorded.
pub fn storable_object_id(id: &str) -> String {
    match check_id("object id", id) {
        Ok(()) => id.to_string(),
        Err(_) => format!(
            "digest-{}",
            &hex::encode(Sha256::digest(id.as_bytes()))[..32]
        ),
    }
}

/// Text from outside, cut to what a fact's field holds and without
/// control characters.
pub fn printable(text: &str) -> String {
    printable_prefix(text, MAX_TEXT_CHARS)
}

fn printable_prefix(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// The oldest date a processor fact can carry; the processor did not exist
/// before it.
fn earliest_fact() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn check_time(what: &str, t: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    let latest = now
        .checked_add_signed(chrono::Duration::days(366))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if t < earliest_fact() || t > latest {
        return Err(format!(
            "{what} {} is outside the range a processor fact can have (2000-01-01 to a year from now)",
            t.to_rfc3339()
        ));
    }
    Ok(())
}

/// A date a period after another: no period is longer than a year (the
/// bound is relative, so a renewal's end a year after "now" is sane).
fn check_within_a_period(what: &str, t: DateTime<Utc>, from: DateTime<Utc>) -> Result<(), String> {
    let latest = from
        .checked_add_signed(chrono::Duration::days(400))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if t < from || t > latest {
        return Err(format!(
            "{what} {} is not within a year after {}",
            t.to_rfc3339(),
            from.to_rfc3339()
        ));
    }
    Ok(())
}

fn check_strings(value: &serde_json::Value) -> Result<(), String> {
    match value {
        serde_json::Value::String(text) => {
            if text.contains('\0') {
                return Err("a field holds a NUL character".into());
            }
            if text.len() > MAX_TEXT_CHARS {
                return Err(format!(
                    "a field is {} bytes long (at most {MAX_TEXT_CHARS})",
                    text.len()
                ));
            }
            Ok(())
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(check_strings),
        serde_json::Value::Object(map) => map.values().try_for_each(check_strings),
        _ => Ok(()),
    }
}

/// Whether a fact drawn from a processor object can be recorded and folded
/// without harm: storable ids and text, dates in a sane range. A fact that
/// fails makes its callback unparsed (kept verbatim, a discrepancy) — never a
/// fact that could stop a projection or an email.
pub fn check_fact(fact: &ProcessorFact, now: DateTime<Utc>) -> Result<(), String> {
    check_id("object id", &fact.object_id)?;
    let payload = fact.event.to_payload().map_err(|e| e.to_string())?;
    check_strings(&payload)?;
    match &fact.event {
        DomainEvent::ChargeSucceeded(c) => {
            check_id("payment id", &c.payment_id)?;
            check_time("paid_at", c.paid_at, now)
        }
        DomainEvent::ChargeRefunded(r) => {
            check_id("payment id", &r.payment_id)?;
            check_time("refunded_at", r.refunded_at, now)
        }
        DomainEvent::DisputeOpened(d) => {
            check_id("payment id", &d.payment_id)?;
            check_time("opened_at", d.opened_at, now)
        }
        DomainEvent::DisputeClosed(d) => {
            check_id("payment id", &d.payment_id)?;
            check_time("closed_at", d.closed_at, now)
        }
        DomainEvent::InvoicePaid(i) => {
            if let Some(p) = &i.payment_id {
                check_id("payment id", p)?;
            }
            check_time("period_start", i.period_start, now)?;
            check_within_a_period("period_end", i.period_end, i.period_start)?;
            check_time("paid_at", i.paid_at, now)
        }
        DomainEvent::SubscriptionCancellationScheduled(c) => {
            check_time("requested_at", c.requested_at, now)?;
            check_within_a_period("cancel_at", c.cancel_at, c.requested_at)
        }
        DomainEvent::SubscriptionEnded(e) => check_time("ended_at", e.ended_at, now),
        _ => Ok(()),
    }
}

pub(crate) fn at(unix: i64) -> Result<DateTime<Utc>, String> {
    Utc.timestamp_opt(unix, 0)
        .single()
        .ok_or_else(|| format!("timestamp {unix} is out of range"))
}

fn money(amount: i64, currency: &str) -> Result<(i64, Currency), String> {
    if amount <= 0 {
        return Err(format!("amount {amount} is not positive"));
    }
    if amount > MAX_AMOUNT {
        return Err(format!("amount {amount} is larger than any payment"));
    }
    Ok((amount, iso_currency(currency)?))
}

/// A currency code the processor sent, if it is one payledger can book.
pub(crate) fn iso_currency(code: &str) -> Result<Currency, String> {
    let c = Currency::new(code).map_err(|e| e.to_string())?;
    if !c.is_iso4217() {
        return Err(format!(
            "currency {:?} is not an ISO 4217 currency",
            c.as_str()
        ));
    }
    Ok(c)
}

fn object<T: serde::de::DeserializeOwned>(event: &stripe::Event) -> Result<T, String> {
    serde_json::from_value(event.data.object.clone()).map_err(|e| {
        format!(
            "{} object does not have the expected shape: {e}",
            event.event_type
        )
    })
}

fn reference(metadata: &Option<std::collections::BTreeMap<String, String>>) -> Option<String> {
    metadata
        .as_ref()
        .and_then(|m| m.get(CHECKOUT_REFERENCE_KEY))
        .cloned()
}

/// The facts a processor event states; `Err` names why a body of a type
/// payledger acts on could not be understood.
pub fn facts_of_event(
    event: &stripe::Event,
    source: ChargeSource,
) -> Result<Vec<ProcessorFact>, String> {
    let when = at(event.created)?;
    match event.event_type.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let session: stripe::CheckoutSession = object(event)?;
            if let Some(started) = subscription_of_session(&session, when)? {
                return Ok(vec![started]);
            }
            Ok(charge_of_session(&session, when, source)?
                .into_iter()
                .collect())
        }
        "checkout.session.async_payment_failed" => {
            let session: stripe::CheckoutSession = object(event)?;
            Ok(vec![ProcessorFact {
                stream: StreamId::processor_session(&session.id),
                object_id: session.id.clone(),
                event: CheckoutPaymentFailed {
                    payment_id: session
                        .payment_intent
                        .as_ref()
                        .and_then(|p| p.id())
                        .map(str::to_string),
                    checkout_reference: session.client_reference_id.clone(),
                    session_id: session.id,
                }
                .into(),
            }])
        }
        "checkout.session.expired" => {
            let session: stripe::CheckoutSession = object(event)?;
            Ok(vec![ProcessorFact {
                stream: StreamId::processor_session(&session.id),
                object_id: session.id.clone(),
                event: CheckoutSessionExpired {
                    checkout_reference: session.client_reference_id.clone(),
                    session_id: session.id,
                }
                .into(),
            }])
        }
        "payment_intent.succeeded" => {
            let pi: stripe::PaymentIntent = object(event)?;
            let amount = if pi.amount_received > 0 {
                pi.amount_received
            } else {
                pi.amount
            };
            let (amount, currency) = money(amount, &pi.currency)?;
            Ok(vec![charge_fact(ChargeSucceeded {
                payment_id: pi.id.clone(),
                charge_id: pi
                    .latest_charge
                    .as_ref()
                    .and_then(|c| c.id())
                    .map(str::to_string),
                session_id: None,
                checkout_reference: reference(&pi.metadata),
                customer_email: pi.receipt_email.clone(),
                amount,
                currency,
                paid_at: when,
                source,
                invoice_id: pi.invoice.as_ref().and_then(|i| i.id()).map(str::to_string),
            })])
        }
        "charge.succeeded" => {
            let charge: stripe::Charge = object(event)?;
            Ok(vec![charge_of_charge(&charge, source)?])
        }
        "charge.refunded" => {
            let charge: stripe::Charge = object(event)?;
            refunds_of_charge(&charge, source)
        }
        "charge.dispute.created" => {
            let dispute: stripe::Dispute = object(event)?;
            Ok(vec![dispute_opened(&dispute)?])
        }
        "charge.dispute.closed" => {
            let dispute: stripe::Dispute = object(event)?;
            Ok(vec![dispute_closed(&dispute, when)?])
        }
        _ => crate::lifecycle::facts_of_billing_event(event, when, source)
            // Kept verbatim, acted on by nobody (yet).
            .unwrap_or(Ok(vec![])),
    }
}

/// A session in subscription mode paid by its subscription's first invoice:
/// the subscription started, and the invoice (its own fact) is the payment.
fn subscription_of_session(
    session: &stripe::CheckoutSession,
    when: DateTime<Utc>,
) -> Result<Option<ProcessorFact>, String> {
    let Some(subscription_id) = session.subscription.as_ref().and_then(|s| s.id()) else {
        return Ok(None);
    };
    if session.mode.as_deref() != Some("subscription") {
        return Ok(None);
    }
    check_id("subscription id", subscription_id)?;
    Ok(Some(ProcessorFact {
        stream: StreamId::subscription(subscription_id),
        object_id: subscription_id.to_string(),
        event: payledger_events::SubscriptionStarted {
            subscription_id: subscription_id.to_string(),
            customer_id: None,
            checkout_reference: session
                .client_reference_id
                .clone()
                .or_else(|| reference(&session.metadata)),
            price_id: None,
            started_at: when,
        }
        .into(),
    }))
}

fn charge_fact(charge: ChargeSucceeded) -> ProcessorFact {
    ProcessorFact {
        stream: StreamId::payment(&charge.payment_id),
        object_id: charge.payment_id.clone(),
        event: charge.into(),
    }
}

/// A paid checkout session as a charge; `None` while it is not paid (an
/// asynchronous payment method still pending).
pub fn charge_of_session(
    session: &stripe::CheckoutSession,
    paid_at: DateTime<Utc>,
    source: ChargeSource,
) -> Result<Option<ProcessorFact>, String> {
    if session.payment_status != "paid" {
        return Ok(None);
    }
    // Subscription mode: the subscription's first invoice is the payment
    // (its own fact), not the session.
    if session.subscription.is_some() && session.mode.as_deref() == Some("subscription") {
        return Ok(None);
    }
    let amount = session
        .amount_total
        .ok_or("a paid session has no amount_total")?;
    let currency = session
        .currency
        .as_deref()
        .ok_or("a paid session has no currency")?;
    let (amount, currency) = money(amount, currency)?;
    // A session paid without a payment intent (e.g. an invoice) is still one
    // payment; the session id stands in for it.
    let payment_id = session
        .payment_intent
        .as_ref()
        .and_then(|p| p.id())
        .unwrap_or(&session.id)
        .to_string();
    Ok(Some(charge_fact(ChargeSucceeded {
        payment_id,
        charge_id: None,
        session_id: Some(session.id.clone()),
        checkout_reference: session
            .client_reference_id
            .clone()
            .or_else(|| reference(&session.metadata)),
        customer_email: session.email().map(str::to_string),
        amount,
        currency,
        paid_at,
        source,
        invoice_id: None,
    })))
}

pub fn charge_of_charge(
    charge: &stripe::Charge,
    source: ChargeSource,
) -> Result<ProcessorFact, String> {
    let (amount, currency) = money(charge.amount, &charge.currency)?;
    Ok(charge_fact(ChargeSucceeded {
        payment_id: charge.payment_id().to_string(),
        charge_id: Some(charge.id.clone()),
        session_id: None,
        checkout_reference: reference(&charge.metadata),
        customer_email: charge.email().map(str::to_string),
        amount,
        currency,
        paid_at: at(charge.created)?,
        source,
        invoice_id: charge
            .invoice
            .as_ref()
            .and_then(|i| i.id())
            .map(str::to_string),
    }))
}

pub fn refund_fact(
    refund: &stripe::Refund,
    payment_id: &str,
    source: ChargeSource,
) -> Result<ProcessorFact, String> {
    let (amount, currency) = money(refund.amount, &refund.currency)?;
    Ok(ProcessorFact {
        stream: StreamId::payment(payment_id),
        object_id: refund.id.clone(),
        event: ChargeRefunded {
            payment_id: payment_id.to_string(),
            refund_id: refund.id.clone(),
            amount,
            currency,
            refunded_at: at(refund.created)?,
            reason: refund.reason.clone(),
            source,
        }
        .into(),
    })
}

fn refunds_of_charge(
    charge: &stripe::Charge,
    source: ChargeSource,
) -> Result<Vec<ProcessorFact>, String> {
    let listed: Vec<&stripe::Refund> = charge
        .refunds
        .as_ref()
        .map(|l| {
            l.data
                .iter()
                .filter(|r| r.status.as_deref() != Some("failed"))
                .collect()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed
            .into_iter()
            .map(|r| refund_fact(r, charge.payment_id(), source))
            .collect();
    }
    if charge.amount_refunded <= 0 {
        return Err("charge.refunded carries no refund and no amount_refunded".into());
    }
    // Older API versions omit the refund list; the refunded total then names
    // the refund, so a repeat of the same total is the same fact.
    let synthetic = stripe::Refund {
        id: format!("{}:refunded:{}", charge.id, charge.amount_refunded),
        object: "refund".into(),
        amount: charge.amount_refunded,
        charge: Some(stripe::Expandable::Id(charge.id.clone())),
        payment_intent: charge.payment_intent.clone(),
        currency: charge.currency.clone(),
        created: charge.created,
        reason: None,
        status: Some("succeeded".into()),
        metadata: None,
    };
    Ok(vec![refund_fact(&synthetic, charge.payment_id(), source)?])
}

fn dispute_payment_id(dispute: &stripe::Dispute) -> Result<String, String> {
    dispute
        .payment_intent
        .as_ref()
        .and_then(|p| p.id())
        .or(dispute.charge.id())
        .map(str::to_string)
        .ok_or_else(|| "dispute names no charge".to_string())
}

pub fn dispute_opened(dispute: &stripe::Dispute) -> Result<ProcessorFact, String> {
    let (amount, currency) = money(dispute.amount, &dispute.currency)?;
    let payment_id = dispute_payment_id(dispute)?;
    Ok(ProcessorFact {
        stream: StreamId::payment(&payment_id),
        object_id: dispute.id.clone(),
        event: DisputeOpened {
            payment_id,
            dispute_id: dispute.id.clone(),
            amount,
            currency,
            reason: dispute.reason.clone(),
            opened_at: at(dispute.created)?,
        }
        .into(),
    })
}

pub fn dispute_closed(
    dispute: &stripe::Dispute,
    closed_at: DateTime<Utc>,
) -> Result<ProcessorFact, String> {
    let payment_id = dispute_payment_id(dispute)?;
    Ok(ProcessorFact {
        stream: StreamId::payment(&payment_id),
        object_id: dispute.id.clone(),
        event: DisputeClosed {
            payment_id,
            dispute_id: dispute.id.clone(),
            status: dispute.status.clone(),
            closed_at,
        }
        .into(),
    })
}

/// Whether a dispute's status means it is over (Stripe: `won`, `lost`,
/// `warning_closed`, `prevented`).
pub fn dispute_is_closed(status: &str) -> bool {
    matches!(status, "won" | "lost" | "warning_closed" | "prevented")
}
