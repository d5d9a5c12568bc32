//! `support find`: who this is and everything about their money, on one
//! screen — the ledger beside the processor's live view.

use super::SupportError;
use crate::processor::client::{ListFilter, ProcessorClient};
use crate::situation::{self, Situation};
use crate::store::PgEventStore;
use chrono::{DateTime, Utc};
use payledger_events::Money;
use payledger_projections::read::{self, ReadModels};
use payledger_projections::states::{
    DiscrepancyKind, DiscrepancyStatus, EmailStatus, PaymentState, SubscriptionStatus,
};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Customer {
    pub email: Option<String>,
    pub subscription: Option<Subscription>,
    pub payments: Vec<Payment>,
    pub emails: Vec<Email>,
    pub open_discrepancies: Vec<Discrepancy>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Serialize)]
pub struct Subscription {
    pub plan: String,
    pub status: SubscriptionStatus,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub activation: String,
    pub payment_id: Option<String>,
    /// A renewing plan: the processor's subscription and its history.
    pub subscription_id: Option<String>,
    pub renews_at: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    /// Its invoices, failed attempts, cancellations, in the log's order.
    pub history: Vec<String>,
}

/// One line per lifecycle fact of a subscription, for a person to read,
/// with the processor's time of it (the webhooks of one day arrive in any
/// order; the history reads in the order things happened).
fn lifecycle_line(event: &payledger_events::DomainEvent) -> Option<(DateTime<Utc>, String)> {
    use payledger_events::{ChargeSource, DomainEvent as E, Money};
    let day = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
    let line = match event {
        E::SubscriptionStarted(s) => (s.started_at, format!("started {}", day(s.started_at))),
        E::InvoicePaid(i) => {
            let late = if i.source == ChargeSource::Webhook {
                ""
            } else {
                ", found by asking the processor"
            };
            let text = format!(
                "invoice {} paid {} ({}) for {} .. {}{late}",
                i.invoice_id,
                Money::new(i.amount, i.currency.clone()),
                i.billing_reason,
                day(i.period_start),
                day(i.period_end),
            );
            (i.paid_at, text)
        }
        E::InvoicePaymentFailed(f) => {
            let next = f.next_attempt.map_or("none (the last)".into(), day);
            let text = format!(
                "invoice {} attempt {} failed {}; next try {next}",
                f.invoice_id,
                f.attempt,
                day(f.failed_at)
            );
            (f.failed_at, text)
        }
        E::SubscriptionCancellationScheduled(c) => {
            let text = format!(
                "cancellation asked {}: ends {}",
                day(c.requested_at),
                day(c.cancel_at)
            );
            (c.requested_at, text)
        }
        E::SubscriptionCancellationUndone(u) => (
            u.undone_at,
            format!("cancellation undone {}", day(u.undone_at)),
        ),
        E::SubscriptionEnded(e) => {
            let why = e.reason.as_deref().unwrap_or("no reason given");
            (e.ended_at, format!("ended {} ({why})", day(e.ended_at)))
        }
        E::SubscriptionDisagreement(d) => (
            d.ledger_period_end,
            format!("the processor, asked, disagreed ({}): {}", d.kind, d.detail),
        ),
        E::RenewalReminderDue(r) => (
            r.renews_at,
            format!("reminder owed for the renewal of {}", day(r.renews_at)),
        ),
        _ => return None,
    };
    Some(line)
}

#[derive(Debug, Serialize)]
pub struct Payment {
    pub reference: String,
    pub checkout_id: Option<String>,
    pub payment_id: Option<String>,
    pub state: PaymentState,
    pub plan: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    /// Minor units refunded so far.
    pub refunded_amount: i64,
    /// Where it stands for the customer (the page's and the reply's
    /// situation).
    #[serde(serialize_with = "situation_name")]
    pub situation: Option<Situation>,
    /// What the processor shows right now, when it could be asked.
    pub processor: Option<ProcessorView>,
    /// Where the two disagree.
    pub differences: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ProcessorView {
    pub charge_id: String,
    pub amount: i64,
    pub currency: String,
    pub amount_refunded: i64,
    pub disputed: bool,
    pub status: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Email {
    pub email_key: String,
    pub kind: String,
    pub status: EmailStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Discrepancy {
    pub id: String,
    pub kind: DiscrepancyKind,
    pub status: DiscrepancyStatus,
    pub suggested_action: String,
}

#[derive(Debug, Serialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub event_type: String,
    pub actor: String,
    pub summary: String,
}

/// The email and payments a key names: an email, a `PL-` reference, a
/// checkout id or a payment id.
async fn resolve(
    store: &PgEventStore,
    key: &str,
) -> Result<(Option<String>, Vec<String>), SupportError> {
    let key = key.trim();
    if key.starts_with("ERR-") {
        return Err(SupportError::NotFound(format!(
            "{key} is a log reference: it names a failed request, not a customer — search the server log for it, then find the customer by email"
        )));
    }
    if super::looks_like_email(key) {
        if !payledger_events::email::plausible_email(key) {
            return Err(SupportError::Invalid(format!(
                "{key:?} is not an email address"
            )));
        }
        return Ok((Some(key.to_lowercase()), vec![]));
    }
    let read = ReadModels::of(store);
    let is_reference = key.to_uppercase().starts_with("PL-");
    let is_checkout = uuid::Uuid::parse_str(key).is_ok();
    let found = if is_reference {
        read::customer_status::by_reference(&read, &key.to_uppercase()).await?
    } else if is_checkout {
        read::customer_status::by_checkout(&read, key).await?
    } else {
        read::customer_status::by_payment(&read, key).await?
    };
    if let Some(r) = found {
        return Ok((r.email, r.payment_id.into_iter().collect()));
    }
    if !is_reference && !is_checkout {
        // A dispute id (the queue names disputes by theirs): its payment.
        let dispute = payledger_events::deterministic_event_id("DisputeOpened", key);
        if let Some(payledger_events::DomainEvent::DisputeOpened(d)) = store.event(dispute).await? {
            let email = read::customer_status::by_payment(&read, &d.payment_id)
                .await?
                .and_then(|r| r.email);
            return Ok((email, vec![d.payment_id]));
        }
        let id = payledger_events::deterministic_event_id("ChargeSucceeded", key);
        if let Some(payledger_events::DomainEvent::ChargeSucceeded(c)) = store.event(id).await? {
            return Ok((c.customer_email, vec![key.to_string()]));
        }
    }
    Err(SupportError::NotFound(format!(
        "nothing matches {key:?}: not a known email, reference code, checkout id, payment id or dispute id"
    )))
}

pub async fn find(
    store: &PgEventStore,
    processor: Option<&ProcessorClient>,
    key: &str,
) -> Result<Customer, SupportError> {
    let (email, payment_ids) = resolve(store, key).await?;
    let read = ReadModels::of(store);
    let subscription = match &email {
        Some(e) => read::subscriptions::by_email(&read, e)
            .await?
            .map(|s| Subscription {
                plan: s.plan,
                status: s.status,
                period_start: s.period_start,
                period_end: s.period_end,
                activation: s.activation,
                payment_id: s.payment_id,
                subscription_id: s.subscription_id,
                renews_at: s.renews_at,
                cancel_at_period_end: s.cancel_at_period_end,
                history: vec![],
            }),
        None => None,
    };
    let subscription = match subscription {
        Some(mut s) => {
            if let Some(id) = &s.subscription_id {
                let stream = payledger_events::StreamId::subscription(id);
                let mut lines: Vec<(DateTime<Utc>, String)> = store
                    .decoded_stream(&stream)
                    .await?
                    .iter()
                    .filter_map(|(_, e)| lifecycle_line(e))
                    .collect();
                // At the same moment, the ending comes after what caused it.
                lines.sort_by_key(|(at, line)| (*at, line.starts_with("ended")));
                s.history = lines.into_iter().map(|(_, line)| line).collect();
            }
            Some(s)
        }
        None => None,
    };
    let rows = read::customer_status::of_customer(&read, email.as_deref(), &payment_ids).await?;
    let mut payments = vec![];
    let mut all_payment_ids = payment_ids.clone();
    let now = store.clock().now();
    let pending_window =
        crate::config::pending_window().map_err(|e| SupportError::Invalid(e.to_string()))?;
    for r in rows {
        all_payment_ids.extend(r.payment_id.clone());
        let situation =
            Some(situation::load::situation_only(&read, &r, now, pending_window).await?);
        let mut p = Payment {
            reference: r.reference,
            checkout_id: r.checkout_id,
            payment_id: r.payment_id,
            state: r.state,
            plan: r.plan,
            amount: r.amount,
            currency: r.currency,
            paid_at: r.paid_at,
            refunded_amount: r.refunded_amount,
            situation,
            processor: None,
            differences: vec![],
        };
        if let (Some(proc), Some(id)) = (processor, p.payment_id.clone()) {
            live_view(proc, &id, &mut p).await;
        }
        payments.push(p);
    }
    let emails = read::outgoing_emails::of_customer(&read, email.as_deref(), &all_payment_ids)
        .await?
        .into_iter()
        .map(|e| Email {
            email_key: e.email_key,
            kind: e.kind,
            status: e.status,
            attempts: e.attempts,
            last_error: e.last_error,
        })
        .collect();
    let open_discrepancies =
        read::discrepancies::unresolved_of_customer(&read, email.as_deref(), &all_payment_ids)
            .await?
            .into_iter()
            .map(|d| Discrepancy {
                id: d.id,
                kind: d.kind,
                status: d.status,
                suggested_action: d.suggested_action,
            })
            .collect();
    let mut timeline: Vec<TimelineEntry> = read::timeline::of_email(&read, email.as_deref())
        .await?
        .into_iter()
        .map(|t| TimelineEntry {
            at: t.at,
            event_type: t.event_type,
            actor: t.actor,
            summary: t.summary,
        })
        .collect();
    // No address, no timeline row: tell the payments' story from their
    // own streams.
    if email.is_none() {
        for id in &payment_ids {
            let stream = payledger_events::StreamId::payment(id);
            for (r, event) in store.recorded_stream(&stream).await? {
                if let Some(summary) = payledger_projections::timeline::payment_summary(&event) {
                    timeline.push(TimelineEntry {
                        at: r.recorded_at,
                        event_type: r.event_type,
                        actor: r.metadata.actor.to_string(),
                        summary,
                    });
                }
            }
        }
        timeline.sort_by_key(|t| t.at);
    }
    let customer = Customer {
        email,
        subscription,
        payments,
        emails,
        open_discrepancies,
        timeline,
    };
    if customer.subscription.is_none()
        && customer.payments.is_empty()
        && customer.timeline.is_empty()
        && customer.emails.is_empty()
    {
        return Err(SupportError::NotFound(format!(
            "nothing matches {:?}: no payment, checkout or email is known for it",
            key.trim()
        )));
    }
    Ok(customer)
}

async fn live_view(processor: &ProcessorClient, payment_id: &str, p: &mut Payment) {
    let filter = ListFilter {
        limit: Some(10),
        extra: vec![("payment_intent".into(), payment_id.to_string())],
        ..Default::default()
    };
    let charges = match processor.charges(filter).next_page().await {
        Ok(Some(c)) => c,
        Ok(None) => vec![],
        Err(e) => {
            p.differences
                .push(format!("the processor could not be asked: {e}"));
            return;
        }
    };
    let Some(c) = charges.into_iter().next() else {
        p.differences
            .push("the processor shows no charge for this payment".into());
        return;
    };
    if p.amount.is_some_and(|a| a != c.amount)
        || p.currency.as_deref().is_some_and(|cur| cur != c.currency)
    {
        p.differences.push(format!(
            "amount: ledger {:?} {:?}, processor {} {}",
            p.amount, p.currency, c.amount, c.currency
        ));
    }
    if c.amount_refunded != p.refunded_amount {
        p.differences.push(format!(
            "the processor shows {} refunded; the ledger has {}",
            Money::from_parts(Some(c.amount_refunded), Some(&c.currency))
                .map_or_else(|| c.amount_refunded.to_string(), |m| m.to_string()),
            Money::from_parts(Some(p.refunded_amount), p.currency.as_deref())
                .map_or_else(|| p.refunded_amount.to_string(), |m| m.to_string()),
        ));
    }
    // The processor's charge stays `disputed` after the dispute ends: a
    // difference only when the ledger knows of no dispute at all.
    let ledger_knows_dispute = matches!(
        p.situation,
        Some(Situation::DisputeOpen | Situation::DisputeWon | Situation::DisputeLost)
    );
    if c.disputed && p.state != PaymentState::Disputed && !ledger_knows_dispute {
        p.differences.push("the processor shows a dispute".into());
    }
    p.processor = Some(ProcessorView {
        charge_id: c.id,
        amount: c.amount,
        currency: c.currency,
        amount_refunded: c.amount_refunded,
        disputed: c.disputed,
        status: c.status,
    });
}

fn situation_name<S: serde::Serializer>(s: &Option<Situation>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(s.map_or("", Situation::name))
}
