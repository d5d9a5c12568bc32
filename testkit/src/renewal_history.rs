//! Histories of renewing subscriptions (spec §12): a checkout for a
//! renewing plan, its subscription, paid and failed invoices, cancellations
//! — each fact with the id the processor's objects give it.

use crate::history::{data, fact, usd, Fact};
use chrono::{DateTime, Utc};
use payledger_events::*;
use uuid::Uuid;

/// A checkout for the renewing `plan` (`annual` yearly, `monthly` monthly).
pub fn renewing_checkout(checkout: Uuid, email: &str, plan: &str) -> anyhow::Result<Fact> {
    let (amount, period) = match plan {
        "monthly" => (2500, Period::Month),
        _ => (24900, Period::Year),
    };
    let e = CheckoutStarted {
        checkout_id: checkout,
        email: email.into(),
        plan: plan.into(),
        amount,
        currency: usd()?,
        period,
        renews: true,
    };
    Ok((
        StreamId::checkout(checkout),
        data(e, Actor::Customer(email.into()))?,
    ))
}

pub fn started(sub: &str, checkout: Option<Uuid>, at: DateTime<Utc>) -> anyhow::Result<Fact> {
    let e = SubscriptionStarted {
        subscription_id: sub.into(),
        customer_id: Some("cus_1".into()),
        checkout_reference: checkout.map(|c| c.to_string()),
        price_id: Some("price_annual_249".into()),
        started_at: at,
    };
    Ok((StreamId::subscription(sub), fact(e, sub)?))
}

/// Invoice `n` (from 1) of a subscription anchored at `anchor`: the first
/// is `subscription_create`, paid by `pi_<sub>_<n>`.
pub fn paid(
    sub: &str,
    checkout: Option<Uuid>,
    anchor: DateTime<Utc>,
    period: Period,
    n: u32,
    amount: i64,
) -> anyhow::Result<Fact> {
    paid_as(
        sub,
        checkout,
        anchor,
        period,
        n,
        amount,
        "a@example.com",
        ChargeSource::Webhook,
    )
}

/// [`paid`], to `email`, learned through `source`.
#[allow(clippy::too_many_arguments)]
pub fn paid_as(
    sub: &str,
    checkout: Option<Uuid>,
    anchor: DateTime<Utc>,
    period: Period,
    n: u32,
    amount: i64,
    email: &str,
    source: ChargeSource,
) -> anyhow::Result<Fact> {
    let start = if n == 1 {
        anchor
    } else {
        period_end(anchor, period, n - 1)
    };
    let invoice = invoice_id(sub, n);
    let e = InvoicePaid {
        invoice_id: invoice.clone(),
        subscription_id: sub.into(),
        payment_id: Some(format!("pi_{sub}_{n}")),
        billing_reason: if n == 1 {
            "subscription_create"
        } else {
            "subscription_cycle"
        }
        .into(),
        checkout_reference: checkout.map(|c| c.to_string()),
        customer_email: Some(email.into()),
        amount,
        currency: usd()?,
        period_start: start,
        period_end: period_end(anchor, period, n),
        paid_at: start,
        source,
    };
    Ok((StreamId::subscription(sub), fact(e, &invoice)?))
}

pub fn invoice_id(sub: &str, n: u32) -> String {
    format!("in_{sub}_{n}")
}

pub fn failed(
    sub: &str,
    n: u32,
    attempt: u32,
    at: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
) -> anyhow::Result<Fact> {
    let invoice = invoice_id(sub, n);
    let e = InvoicePaymentFailed {
        invoice_id: invoice.clone(),
        subscription_id: sub.into(),
        attempt,
        next_attempt: next,
        customer_email: Some("a@example.com".into()),
        amount: 24900,
        currency: usd()?,
        failed_at: at,
    };
    Ok((
        StreamId::subscription(sub),
        fact(e, &format!("{invoice}:{attempt}"))?,
    ))
}

pub fn cancel_scheduled(
    sub: &str,
    requested_at: DateTime<Utc>,
    cancel_at: DateTime<Utc>,
) -> anyhow::Result<Fact> {
    let e = SubscriptionCancellationScheduled {
        subscription_id: sub.into(),
        cancel_at,
        requested_at,
    };
    Ok((
        StreamId::subscription(sub),
        fact(e, &format!("{sub}:{}", requested_at.timestamp()))?,
    ))
}

pub fn cancel_undone(sub: &str, undone_at: DateTime<Utc>) -> anyhow::Result<Fact> {
    let e = SubscriptionCancellationUndone {
        subscription_id: sub.into(),
        undone_at,
    };
    Ok((
        StreamId::subscription(sub),
        fact(e, &format!("{sub}:{}", undone_at.timestamp()))?,
    ))
}

pub fn ended(sub: &str, ended_at: DateTime<Utc>, reason: &str) -> anyhow::Result<Fact> {
    let e = SubscriptionEnded {
        subscription_id: sub.into(),
        ended_at,
        reason: Some(reason.into()),
    };
    Ok((StreamId::subscription(sub), fact(e, sub)?))
}

/// The plans file offers `plan` at `price` (as `serve` records at start-up).
pub fn offered(plan: &str, price: &str) -> anyhow::Result<Fact> {
    let (amount, period) = match plan {
        "monthly" => (2500, Period::Month),
        _ => (24900, Period::Year),
    };
    let e = PlanOffered {
        plan: plan.into(),
        price_id: price.into(),
        amount,
        currency: usd()?,
        period,
        renews: true,
    };
    let key = serde_json::to_string(&e)?;
    Ok((StreamId::plan(plan), fact(e, &key)?))
}

/// The subscription moved to `price` at `changed_at`.
pub fn plan_changed(sub: &str, price: &str, changed_at: DateTime<Utc>) -> anyhow::Result<Fact> {
    let e = SubscriptionPlanChanged {
        subscription_id: sub.into(),
        price_id: price.into(),
        previous_price_id: None,
        changed_at,
    };
    Ok((
        StreamId::subscription(sub),
        fact(e, &format!("{sub}:{price}:{}", changed_at.timestamp()))?,
    ))
}
