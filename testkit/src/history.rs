//! Generated payment histories for benchmarks and tests: checkouts and
//! their charges, orphans (half matched later), duplicates, amount
//! mismatches, refunds, disputes, grants, email results and unparsed
//! callbacks, in a fixed pattern so every run builds the same history.

use chrono::{DateTime, TimeZone, Utc};
use payledger_events::*;
use uuid::Uuid;

pub type Fact = (StreamId, EventData);

pub fn usd() -> anyhow::Result<Currency> {
    Ok(Currency::new("usd")?)
}

pub fn at(minute: i64) -> DateTime<Utc> {
    let start = Utc
        .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    start + chrono::Duration::minutes(minute)
}

fn meta(actor: Actor) -> Metadata {
    Metadata::new(Uuid::new_v4(), actor, "test")
}

pub fn data(event: impl Into<DomainEvent>, actor: Actor) -> anyhow::Result<EventData> {
    let event = event.into();
    Ok(EventData::new(&event, Uuid::new_v4(), meta(actor))?)
}

pub fn fact(event: impl Into<DomainEvent>, object_id: &str) -> anyhow::Result<EventData> {
    let event = event.into();
    Ok(EventData::for_processor_fact(
        &event,
        object_id,
        meta(Actor::webhook()),
    )?)
}

pub fn checkout_started(checkout: Uuid, email: &str, amount: i64) -> anyhow::Result<Fact> {
    let e = CheckoutStarted {
        checkout_id: checkout,
        email: email.into(),
        plan: "annual".into(),
        amount,
        currency: usd()?,
        period: payledger_events::Period::Year,
        renews: false,
    };
    Ok((
        StreamId::checkout(checkout),
        data(e, Actor::Customer(email.into()))?,
    ))
}

pub fn charge(
    payment: &str,
    reference: Option<Uuid>,
    email: Option<&str>,
    amount: i64,
    minute: i64,
) -> anyhow::Result<Fact> {
    let e = ChargeSucceeded {
        payment_id: payment.into(),
        charge_id: None,
        session_id: None,
        checkout_reference: reference.map(|r| r.to_string()),
        customer_email: email.map(str::to_string),
        amount,
        currency: usd()?,
        paid_at: at(minute),
        source: ChargeSource::Webhook,
        invoice_id: None,
    };
    Ok((StreamId::payment(payment), fact(e, payment)?))
}

pub fn matched(payment: &str, email: &str) -> anyhow::Result<Fact> {
    let e = ChargeMatched {
        payment_id: payment.into(),
        email: email.into(),
        plan: "annual".into(),
        reason: "test".into(),
        matched_by: Actor::Support("alice".into()),
    };
    Ok((StreamId::payment(payment), fact(e, payment)?))
}

pub fn refunded(payment: &str, refund: &str, amount: i64) -> anyhow::Result<Fact> {
    let e = ChargeRefunded {
        payment_id: payment.into(),
        refund_id: refund.into(),
        amount,
        currency: usd()?,
        refunded_at: at(500),
        reason: None,
        source: ChargeSource::Webhook,
    };
    Ok((StreamId::payment(payment), fact(e, refund)?))
}

pub fn dispute_opened(payment: &str, dispute: &str) -> anyhow::Result<Fact> {
    let e = DisputeOpened {
        payment_id: payment.into(),
        dispute_id: dispute.into(),
        amount: 24900,
        currency: usd()?,
        reason: None,
        opened_at: at(600),
    };
    Ok((StreamId::payment(payment), fact(e, dispute)?))
}

pub fn dispute_closed(payment: &str, dispute: &str, status: &str) -> anyhow::Result<Fact> {
    let e = DisputeClosed {
        payment_id: payment.into(),
        dispute_id: dispute.into(),
        status: status.into(),
        closed_at: at(700),
    };
    Ok((StreamId::payment(payment), fact(e, dispute)?))
}

pub fn email_result(key: &str, sent: bool, permanent: bool) -> anyhow::Result<Fact> {
    let stream = StreamId::email(Uuid::new_v5(&EVENT_ID_NAMESPACE, key.as_bytes()));
    let e: DomainEvent = if sent {
        EmailSent {
            email_key: key.into(),
            message_id: format!("<{key}@payledger>"),
            attempt: 1,
        }
        .into()
    } else {
        EmailFailed {
            email_key: key.into(),
            attempt: 1,
            error: "550 no such user".into(),
            permanent,
        }
        .into()
    };
    Ok((stream, data(e, Actor::System("email-sender".into()))?))
}

pub fn unparsed(evt: &str) -> anyhow::Result<Fact> {
    let e = ProcessorEventReceived {
        processor_event_id: evt.into(),
        event_type: "checkout.session.completed".into(),
        raw_body: "garbage".into(),
        raw_body_base64: None,
        signature_verified: true,
        received_at: at(0),
        unparsed_reason: Some("body is not JSON".into()),
    };
    Ok((StreamId::processor_event(evt), fact(e, evt)?))
}

pub fn resolved(discrepancy: &str) -> anyhow::Result<Fact> {
    let e = DiscrepancyResolved {
        discrepancy_id: discrepancy.into(),
        resolution: "handled".into(),
        note: "test".into(),
        resolved_by: Actor::Support("alice".into()),
    };
    Ok((
        StreamId::discrepancy(discrepancy),
        data(e, Actor::Support("alice".into()))?,
    ))
}

pub fn granted(email: &str) -> anyhow::Result<Fact> {
    let e = SubscriptionGranted {
        email: email.into(),
        plan: "annual".into(),
        reason: "press".into(),
        granted_by: Actor::Support("alice".into()),
    };
    Ok((
        StreamId::account(email),
        data(e, Actor::Support("alice".into()))?,
    ))
}

/// A deterministic mixed history of about `3 * customers` events: checkouts
/// and their charges, orphans (half matched later), duplicates, refunds,
/// disputes, grants, email results, unparsed callbacks.
pub fn mixed_history(customers: usize) -> anyhow::Result<Vec<Fact>> {
    mixed_history_range(0, customers as u64)
}

/// Customers `from .. from + count` of the history `mixed_history` builds
/// (so a long history can be built and appended slice by slice).
pub fn mixed_history_range(from: u64, count: u64) -> anyhow::Result<Vec<Fact>> {
    let mut out = vec![];
    for i in from..from + count {
        let email = format!("c{i}@example.com");
        let checkout = Uuid::from_u128(i as u128 + 1);
        let pi = format!("pi_{i}");
        let minute = i as i64;
        match i % 7 {
            0 => {
                out.push(charge(&pi, None, Some(&email), 24900, minute)?);
                if i % 14 == 0 {
                    out.push(matched(&pi, &email)?);
                }
            }
            _ => {
                out.push(checkout_started(checkout, &email, 24900)?);
                let amount = if i % 31 == 0 { 100 } else { 24900 };
                out.push(charge(&pi, Some(checkout), Some(&email), amount, minute)?);
                out.push(email_result(
                    &format!("confirmation:{pi}"),
                    i % 23 != 0,
                    i % 23 == 0,
                )?);
                if i % 11 == 0 {
                    out.push(charge(
                        &format!("{pi}_dup"),
                        Some(checkout),
                        Some(&email),
                        24900,
                        minute + 1,
                    )?);
                }
            }
        }
        if i % 13 == 0 {
            out.push(refunded(&pi, &format!("re_{i}"), 24900)?);
        }
        if i % 17 == 0 {
            out.push(dispute_opened(&pi, &format!("dp_{i}"))?);
            if i % 34 == 0 {
                out.push(dispute_closed(
                    &pi,
                    &format!("dp_{i}"),
                    if i % 68 == 0 { "lost" } else { "won" },
                )?);
            }
        }
        if i % 19 == 0 {
            out.push(granted(&format!("g{i}@example.com"))?);
        }
        if i % 29 == 0 {
            out.push(unparsed(&format!("evt_bad_{i}"))?);
        }
        if i % 37 == 0 {
            out.push(refunded(
                &format!("pi_never_{i}"),
                &format!("re_never_{i}"),
                500,
            )?);
        }
    }
    Ok(out)
}
