//! The subscription lifecycle a callback states (spec §12): started, an
//! invoice paid (one period of access), an attempt failed, a cancellation
//! scheduled or undone, ended. Each fact's id follows from the processor's
//! objects alone, so the webhook, reconciliation and the check before
//! access ends record each fact once, in any order.

use crate::billing::{Invoice, Subscription};
use crate::mapping::{at, check_id, ProcessorFact};
use crate::objects::{self as stripe, CHECKOUT_REFERENCE_KEY};
use chrono::{DateTime, Utc};
use payledger_events::{
    ChargeSource, InvoicePaid, InvoicePaymentFailed, StreamId, SubscriptionCancellationScheduled,
    SubscriptionCancellationUndone, SubscriptionEnded, SubscriptionPlanChanged,
    SubscriptionStarted,
};

/// The facts of a billing callback; `None` for a type this module does not
/// read.
pub fn facts_of_billing_event(
    event: &stripe::Event,
    when: DateTime<Utc>,
    source: ChargeSource,
) -> Option<Result<Vec<ProcessorFact>, String>> {
    let facts = match event.event_type.as_str() {
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.paused"
        | "customer.subscription.resumed" => object::<Subscription>(event).and_then(|s| {
            let undone = was_scheduled(event) && !s.cancel_at_period_end;
            let mut facts = facts_of_subscription(&s, when, undone)?;
            facts.extend(plan_changed(event, &s, when)?);
            Ok(facts)
        }),
        "invoice.paid" | "invoice.payment_succeeded" => object::<Invoice>(event)
            .and_then(|i| Ok(invoice_paid(&i, source)?.into_iter().collect())),
        "invoice.payment_failed" => object::<Invoice>(event)
            .and_then(|i| Ok(payment_failed(&i, when)?.into_iter().collect())),
        _ => return None,
    };
    Some(facts)
}

fn object<T: serde::de::DeserializeOwned>(event: &stripe::Event) -> Result<T, String> {
    serde_json::from_value(event.data.object.clone()).map_err(|e| {
        format!(
            "{} object does not have the expected shape: {e}",
            event.event_type
        )
    })
}

/// The update withdrew a scheduled cancellation (the processor lists what
/// changed in `previous_attributes`).
fn was_scheduled(event: &stripe::Event) -> bool {
    event
        .data
        .previous_attributes
        .as_ref()
        .and_then(|p| p.get("cancel_at_period_end"))
        .and_then(|v| v.as_bool())
        == Some(true)
}

/// An update that moved the subscription to another price: the processor
/// names the old `items` (or the legacy `plan`) in `previous_attributes`.
fn plan_changed(
    event: &stripe::Event,
    s: &Subscription,
    when: DateTime<Utc>,
) -> Result<Option<ProcessorFact>, String> {
    let Some(previous) = event.data.previous_attributes.as_ref() else {
        return Ok(None);
    };
    if previous.get("items").is_none() && previous.get("plan").is_none() {
        return Ok(None);
    }
    let previous_price_id = previous
        .pointer("/items/data/0/price/id")
        .or_else(|| previous.pointer("/plan/id"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let Some(price_id) = s.price_id().map(str::to_string) else {
        return Err("a subscription update changed its items but names no price".into());
    };
    if previous_price_id.as_deref() == Some(price_id.as_str()) {
        return Ok(None);
    }
    check_id("price id", &price_id)?;
    Ok(Some(in_stream(
        &s.id,
        format!("{}:{price_id}:{}", s.id, when.timestamp()),
        SubscriptionPlanChanged {
            subscription_id: s.id.clone(),
            price_id,
            previous_price_id,
            changed_at: when,
        }
        .into(),
    )))
}

fn in_stream(
    subscription_id: &str,
    object_id: String,
    event: payledger_events::DomainEvent,
) -> ProcessorFact {
    ProcessorFact {
        stream: StreamId::subscription(subscription_id),
        object_id,
        event,
    }
}

/// What a subscription object states. `undone_at`-style facts need the
/// callback's own time (`observed_at`): the object keeps no trace of an
/// undo.
pub fn facts_of_subscription(
    s: &Subscription,
    observed_at: DateTime<Utc>,
    undone: bool,
) -> Result<Vec<ProcessorFact>, String> {
    check_id("subscription id", &s.id)?;
    let started_at = at(s.start_date.unwrap_or(s.created))?;
    let mut facts = vec![in_stream(
        &s.id,
        s.id.clone(),
        SubscriptionStarted {
            subscription_id: s.id.clone(),
            customer_id: s.customer_id().map(str::to_string),
            checkout_reference: s
                .metadata
                .as_ref()
                .and_then(|m| m.get(CHECKOUT_REFERENCE_KEY))
                .cloned(),
            price_id: s.price_id().map(str::to_string),
            started_at,
        }
        .into(),
    )];
    let ended = s.status == "canceled" || s.ended_at.is_some();
    if ended {
        let ended_at = at(s
            .ended_at
            .or(s.canceled_at)
            .unwrap_or(observed_at.timestamp()))?;
        facts.push(in_stream(
            &s.id,
            s.id.clone(),
            SubscriptionEnded {
                subscription_id: s.id.clone(),
                ended_at,
                reason: s
                    .cancellation_details
                    .as_ref()
                    .and_then(|d| d.reason.clone()),
            }
            .into(),
        ));
    } else if s.cancel_at_period_end || s.cancel_at.is_some() {
        let cancel_at = s
            .cancel_at
            .or_else(|| s.current_period().map(|(_, end)| end))
            .ok_or("a subscription scheduled to cancel names no date")?;
        // `canceled_at` is when the cancellation was asked for.
        let requested_at = at(s.canceled_at.unwrap_or(observed_at.timestamp()))?;
        facts.push(in_stream(
            &s.id,
            format!("{}:{}", s.id, requested_at.timestamp()),
            SubscriptionCancellationScheduled {
                subscription_id: s.id.clone(),
                cancel_at: at(cancel_at)?,
                requested_at,
            }
            .into(),
        ));
    } else if undone {
        facts.push(in_stream(
            &s.id,
            format!("{}:{}", s.id, observed_at.timestamp()),
            SubscriptionCancellationUndone {
                subscription_id: s.id.clone(),
                undone_at: observed_at,
            }
            .into(),
        ));
    }
    Ok(facts)
}

/// A paid invoice of a subscription as one period of access; `None` for an
/// invoice of no subscription, or one not paid.
pub fn invoice_paid(i: &Invoice, source: ChargeSource) -> Result<Option<ProcessorFact>, String> {
    let Some(subscription_id) = i.subscription_id() else {
        return Ok(None);
    };
    if !i.is_paid() {
        return Ok(None);
    }
    check_id("invoice id", &i.id)?;
    check_id("subscription id", subscription_id)?;
    if i.amount_paid < 0 || i.amount_paid > crate::mapping::MAX_AMOUNT {
        return Err(format!("amount_paid {} is not an amount", i.amount_paid));
    }
    let (start, end) = i
        .paid_period()
        .ok_or("a paid invoice names no period it pays for")?;
    let paid_at = i.paid_at().unwrap_or(i.created);
    Ok(Some(in_stream(
        subscription_id,
        i.id.clone(),
        InvoicePaid {
            invoice_id: i.id.clone(),
            subscription_id: subscription_id.to_string(),
            payment_id: i.payment_id().map(str::to_string),
            billing_reason: i.billing_reason.clone().unwrap_or_default(),
            checkout_reference: i
                .subscription_metadata()
                .and_then(|m| m.get(CHECKOUT_REFERENCE_KEY))
                .cloned(),
            customer_email: i.customer_email.clone(),
            amount: i.amount_paid,
            currency: crate::mapping::iso_currency(&i.currency)?,
            period_start: at(start)?,
            period_end: at(end)?,
            paid_at: at(paid_at)?,
            source,
        }
        .into(),
    )))
}

/// A failed attempt to collect an invoice of a subscription.
pub fn payment_failed(i: &Invoice, when: DateTime<Utc>) -> Result<Option<ProcessorFact>, String> {
    let Some(subscription_id) = i.subscription_id() else {
        return Ok(None);
    };
    check_id("invoice id", &i.id)?;
    let attempt = i.attempt_count.max(1);
    Ok(Some(in_stream(
        subscription_id,
        format!("{}:{attempt}", i.id),
        InvoicePaymentFailed {
            invoice_id: i.id.clone(),
            subscription_id: subscription_id.to_string(),
            attempt,
            next_attempt: i.next_payment_attempt.map(at).transpose()?,
            customer_email: i.customer_email.clone(),
            amount: i.amount_due.max(0),
            currency: crate::mapping::iso_currency(&i.currency)?,
            failed_at: when,
        }
        .into(),
    )))
}
