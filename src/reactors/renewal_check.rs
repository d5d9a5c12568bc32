//! Before any access ends, payledger asks the processor (spec §12): a
//! renewing plan whose paid period is about to end — or ended while the
//! processor still bills it — is looked up at the processor (the
//! subscription and its paid invoices), and whatever the ledger missed is
//! appended with the same ids the webhook would have used. A renewal whose
//! webhook was lost never locks out a customer who paid.

use super::renewal_disagreement::{self, ProcessorAnswer};
use crate::processor::client::{ListFilter, ProcessorClient, ProcessorError};
use crate::store::{EventStore, ExpectedVersion, PgEventStore, StoreError, StreamAppend};
use payledger_events::{Actor, ChargeSource, EventData, Metadata};
use payledger_projections::read::{subscriptions, ReadModels};
use payledger_stripe::lifecycle::{facts_of_subscription, invoice_paid};
use payledger_stripe::mapping::ProcessorFact;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum RenewalCheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Processor(#[from] ProcessorError),
    #[error("the processor's answer about {subscription} cannot be recorded: {reason}")]
    Unreadable {
        subscription: String,
        reason: String,
    },
}

impl From<serde_json::Error> for RenewalCheckError {
    fn from(e: serde_json::Error) -> Self {
        RenewalCheckError::Unreadable {
            subscription: String::new(),
            reason: e.to_string(),
        }
    }
}

/// What one pass asked and found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub asked: Vec<String>,
    /// Facts the ledger lacked, appended (`<event type> <object id>`).
    pub appended: Vec<String>,
    /// Subscriptions the processor could not answer for this time.
    pub unanswered: Vec<String>,
}

/// Remembers which ending was already asked about, so a subscription is
/// asked once before its period end and once after it (again after
/// `again`), not every pass.
#[derive(Default)]
pub struct Asked(HashMap<(String, i64, bool), chrono::DateTime<chrono::Utc>>);

/// One pass: every renewing access ending within `lead` of now (or already
/// past its paid end while the subscription still bills).
pub async fn ask_before_access_ends(
    store: &PgEventStore,
    processor: &ProcessorClient,
    lead: chrono::Duration,
    asked: &mut Asked,
    again: chrono::Duration,
) -> Result<CheckReport, RenewalCheckError> {
    let now = store.clock().now();
    let read = ReadModels::of(store);
    let ending = subscriptions::renewing_access_ending_before(&read, now + lead).await?;
    let mut report = CheckReport::default();
    for access in ending {
        let key = (
            access.subscription_id.clone(),
            access.period_end.timestamp(),
            access.period_end <= now,
        );
        if asked.0.get(&key).is_some_and(|at| *at + again > now) {
            continue;
        }
        report.asked.push(access.subscription_id.clone());
        // One subscription the processor cannot answer for must not keep
        // the others from being asked.
        let (facts, answer) = match what_the_processor_says(processor, &access.subscription_id, now)
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(subscription = %access.subscription_id, error = %e, "could not ask the processor about this subscription; asking again later");
                report.unanswered.push(access.subscription_id.clone());
                asked.0.insert(key, now);
                continue;
            }
        };
        for fact in facts {
            let label = format!("{} {}", fact.event.event_type(), fact.object_id);
            let stored = record(store, fact.stream, &fact.event, &fact.object_id).await?;
            if stored {
                tracing::warn!(subscription = %access.subscription_id, fact = %label, "the ledger missed this; appended before access ended");
                report.appended.push(label);
            }
        }
        if let Some(found) = renewal_disagreement::disagreement(&access, &answer, now) {
            let object = format!(
                "{}:{}:{}",
                found.subscription_id,
                found.kind,
                found.ledger_period_end.timestamp()
            );
            let label = format!("SubscriptionDisagreement {object}");
            let stream = payledger_events::StreamId::subscription(&found.subscription_id);
            if record(store, stream, &found.into(), &object).await? {
                tracing::warn!(subscription = %access.subscription_id, fact = %label, "the processor's answer does not fit the ledger");
                report.appended.push(label);
            }
        }
        asked.0.insert(key, now);
    }
    Ok(report)
}

/// Appends a fact under the id its processor object gives it; whether it
/// was new (a webhook may have recorded it meanwhile).
async fn record(
    store: &PgEventStore,
    stream: payledger_events::StreamId,
    fact: &payledger_events::DomainEvent,
    object_id: &str,
) -> Result<bool, RenewalCheckError> {
    let data = EventData::for_processor_fact(
        fact,
        object_id,
        Metadata::new(
            uuid::Uuid::new_v4(),
            Actor::renewal_check(),
            "renewal-check",
        ),
    )?;
    let outcome = store
        .append(vec![StreamAppend::new(
            stream,
            ExpectedVersion::Any,
            vec![data],
        )])
        .await?;
    Ok(outcome.stored() > 0)
}

/// The subscription's state and its paid invoices, as facts, and what
/// the processor said in short.
async fn what_the_processor_says(
    processor: &ProcessorClient,
    subscription_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Vec<ProcessorFact>, ProcessorAnswer), RenewalCheckError> {
    let unreadable = |reason: String| RenewalCheckError::Unreadable {
        subscription: subscription_id.to_string(),
        reason,
    };
    let subscription = processor.retrieve_subscription(subscription_id).await?;
    let mut facts = facts_of_subscription(&subscription, now, false).map_err(unreadable)?;
    let paid = processor
        .invoices(ListFilter {
            extra: vec![
                ("subscription".into(), subscription_id.into()),
                ("status".into(), "paid".into()),
            ],
            ..ListFilter::default()
        })
        .collect_all()
        .await?;
    let mut answer = ProcessorAnswer {
        status: subscription.status.clone(),
        period_end: subscription
            .current_period()
            .and_then(|(_, end)| chrono::DateTime::from_timestamp(end, 0)),
        paid_until: None,
    };
    for invoice in &paid {
        if let Some(fact) =
            invoice_paid(invoice, ChargeSource::Reconciliation).map_err(unreadable)?
        {
            if let payledger_events::DomainEvent::InvoicePaid(i) = &fact.event {
                answer.paid_until = answer.paid_until.max(Some(i.period_end));
            }
            facts.push(fact);
        }
    }
    Ok((facts, answer))
}

/// The plans whose renewals are announced ahead (the yearly ones), with
/// what each renewal will charge.
#[derive(Debug, Clone, Default)]
pub struct Reminders {
    pub days: i64,
    pub yearly: HashMap<String, (i64, payledger_events::Currency)>,
}

impl Reminders {
    pub fn of(plans: &crate::plans::Plans, days: i64) -> Self {
        let yearly = plans
            .all()
            .iter()
            .filter(|p| p.renews && p.period == payledger_events::Period::Year)
            .map(|p| (p.id.clone(), (p.amount, p.currency.clone())))
            .collect();
        Reminders { days, yearly }
    }
}

/// Records that a yearly renewal within `days` is owed its reminder (once
/// per renewal: the fact's id is the subscription and the renewal date).
pub async fn remind_before_renewals(
    store: &PgEventStore,
    reminders: &Reminders,
) -> Result<Vec<String>, RenewalCheckError> {
    if reminders.yearly.is_empty() {
        return Ok(vec![]);
    }
    let now = store.clock().now();
    let read = ReadModels::of(store);
    let coming =
        subscriptions::renewing_before(&read, now, now + chrono::Duration::days(reminders.days))
            .await?;
    let mut announced = vec![];
    for renewal in coming {
        let Some((amount, currency)) = reminders.yearly.get(&renewal.plan) else {
            continue;
        };
        let fact: payledger_events::DomainEvent = payledger_events::RenewalReminderDue {
            subscription_id: renewal.subscription_id.clone(),
            renews_at: renewal.renews_at,
            amount: *amount,
            currency: currency.clone(),
        }
        .into();
        let object = format!(
            "{}:{}",
            renewal.subscription_id,
            renewal.renews_at.timestamp()
        );
        let stream = payledger_events::StreamId::subscription(&renewal.subscription_id);
        let stored = record(store, stream, &fact, &object).await?;
        if stored {
            announced.push(object);
        }
    }
    Ok(announced)
}
