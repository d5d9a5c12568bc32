//! The support actions. Each checks first and refuses with one line naming
//! the problem; shows what it will do and asks (`confirm`) before changing
//! anything; appends with the person as actor; and, run again, says it is
//! already done and changes nothing.

use super::SupportError;
use crate::plans::Plans;
use crate::processor::client::ProcessorClient;
use crate::store::{EventStore, ExpectedVersion, PgEventStore};
use crate::webhook::mapping;
use payledger_events::{
    deterministic_event_id, Actor, ChargeMatched, ChargeSource, DiscrepancyResolved, DomainEvent,
    EmailResendRequested, EventData, Metadata, StreamId, SubscriptionGranted,
};
use serde_json::Value;

/// What a command did: `changed` false means it was already done.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub changed: bool,
    pub message: String,
}

fn done(message: String) -> Outcome {
    Outcome {
        changed: false,
        message,
    }
}

pub fn actor(name: &str) -> Result<Actor, SupportError> {
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.".contains(c))
    {
        return Err(SupportError::Invalid(format!(
            "--as {name:?}: give your name (letters, digits, - _ .), e.g. --as alice"
        )));
    }
    Ok(Actor::Support(name.to_string()))
}

async fn append(
    store: &PgEventStore,
    stream: StreamId,
    event: DomainEvent,
    object: &str,
    by: &Actor,
    source: &str,
) -> Result<bool, SupportError> {
    let data = EventData::for_processor_fact(
        &event,
        object,
        Metadata::new(uuid::Uuid::new_v4(), by.clone(), source),
    )?;
    let outcome = store
        .append_to_stream(stream, ExpectedVersion::Any, vec![data])
        .await?;
    Ok(outcome.stored() > 0)
}

/// The recorded `ChargeSucceeded` of a payment, if any.
async fn charge_of(store: &PgEventStore, payment_id: &str) -> Result<Option<Value>, SupportError> {
    let client = store.pool().get().await?;
    let id = deterministic_event_id("ChargeSucceeded", payment_id);
    Ok(client
        .query_opt("SELECT payload FROM events WHERE event_id = $1", &[&id])
        .await?
        .map(|r| r.get(0)))
}

async fn refunded(store: &PgEventStore, payment_id: &str) -> Result<bool, SupportError> {
    let client = store.pool().get().await?;
    Ok(client
        .query_opt(
            "SELECT 1 FROM events WHERE stream_id = $1 AND event_type = 'ChargeRefunded'",
            &[&StreamId::payment(payment_id).as_str()],
        )
        .await?
        .is_some())
}

pub struct RescueRequest<'a> {
    pub payment_id: &'a str,
    pub email: Option<&'a str>,
    pub plan: Option<&'a str>,
    pub force: Option<&'a str>,
}

pub async fn rescue(
    store: &PgEventStore,
    plans: &Plans,
    req: RescueRequest<'_>,
    by: &Actor,
    confirm: &mut dyn FnMut(&str) -> bool,
) -> Result<Outcome, SupportError> {
    let p = req.payment_id;
    let Some(charge) = charge_of(store, p).await? else {
        return Err(SupportError::NotFound(format!("payment {p} is unknown: no ChargeSucceeded for it (run payledger reconcile if the processor shows it)")));
    };
    let matched_id = deterministic_event_id("ChargeMatched", p);
    let client = store.pool().get().await?;
    if let Some(r) = client
        .query_opt(
            "SELECT payload FROM events WHERE event_id = $1",
            &[&matched_id],
        )
        .await?
    {
        let m: Value = r.get(0);
        return Ok(done(format!(
            "payment {p} is already matched to {} on plan {} (by {}): nothing to do",
            m["email"].as_str().unwrap_or("?"),
            m["plan"].as_str().unwrap_or("?"),
            m["matched_by"].as_str().unwrap_or("?")
        )));
    }
    if let Some(r) = client
        .query_opt(
            "SELECT state FROM customer_status WHERE payment_id = $1",
            &[&p],
        )
        .await?
    {
        if r.get::<_, String>(0) == "active" {
            return Ok(done(format!(
                "payment {p} already activated its subscription: nothing to do"
            )));
        }
    }
    drop(client);
    if refunded(store, p).await? {
        return Err(SupportError::Refused(format!("payment {p} was refunded: rescuing it would give access without a charge (use support grant if that is what you want)")));
    }
    let email = match req.email.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) if !crate::pages::valid_email(e) => {
            return Err(SupportError::Invalid(format!(
                "--email {e:?} is not an email address"
            )))
        }
        Some(e) => e.to_lowercase(),
        None => charge["customer_email"]
            .as_str()
            .map(str::to_lowercase)
            .ok_or_else(|| {
                SupportError::Invalid(format!("payment {p} carries no email: give --email"))
            })?,
    };
    let amount = charge["amount"].as_i64().unwrap_or(0);
    let currency = charge["currency"].as_str().unwrap_or_default().to_string();
    let plan = match req.plan {
        Some(id) => plans.get(id).cloned().ok_or_else(|| {
            SupportError::Invalid(format!(
                "--plan {id:?} is not a plan (known: {})",
                plans
                    .all()
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?,
        None => match plans.priced(amount, &currency).as_slice() {
            [one] => (*one).clone(),
            _ => {
                return Err(SupportError::Invalid(format!(
                    "payment {p} ({amount} {currency}) fits no single plan: give --plan"
                )))
            }
        },
    };
    let fits = plan.amount == amount && plan.currency.as_str() == currency;
    if !fits && req.force.is_none() {
        return Err(SupportError::Refused(format!(
            "payment {p} is {amount} {currency} but plan {} costs {}: refund it, or use --force \"REASON\"",
            plan.id,
            plan.price()
        )));
    }
    let what = format!(
        "match payment {p} ({amount} {currency}) to {email} on plan {}, activate the subscription, and send the rescue email",
        plan.id
    );
    if !confirm(&what) {
        return Ok(done("nothing done".into()));
    }
    let reason = match req.force {
        Some(r) => format!("support rescue (forced: {r})"),
        None => "support rescue".into(),
    };
    let event: DomainEvent = ChargeMatched {
        payment_id: p.into(),
        email: email.clone(),
        plan: plan.id.clone(),
        reason,
        matched_by: by.clone(),
    }
    .into();
    let changed = append(store, StreamId::payment(p), event, p, by, "support").await?;
    Ok(Outcome {
        changed,
        message: format!("done: {what}"),
    })
}

pub async fn refund(
    store: &PgEventStore,
    processor: &ProcessorClient,
    payment_id: &str,
    reason: &str,
    by: &Actor,
    confirm: &mut dyn FnMut(&str) -> bool,
) -> Result<Outcome, SupportError> {
    let p = payment_id;
    if reason.trim().is_empty() {
        return Err(SupportError::Invalid(
            "--reason must say why (it is kept with the refund)".into(),
        ));
    }
    let Some(charge) = charge_of(store, p).await? else {
        return Err(SupportError::NotFound(format!(
            "payment {p} is unknown: no ChargeSucceeded for it"
        )));
    };
    if refunded(store, p).await? {
        return Ok(done(format!(
            "payment {p} is already refunded: nothing to do"
        )));
    }
    let what = format!(
        "refund payment {p} in full ({} {}) at the processor, record it, and send the refund email",
        charge["amount"],
        charge["currency"].as_str().unwrap_or_default()
    );
    if !confirm(&what) {
        return Ok(done("nothing done".into()));
    }
    let stripe_reason = if reason.to_lowercase().contains("duplicate") {
        "duplicate"
    } else {
        "requested_by_customer"
    };
    // Derived from the payment: a second run (or a second person) gets the
    // same refund back from the processor instead of a new one.
    let key = format!("payledger-refund-{p}");
    let r = processor
        .create_refund(p, None, Some(stripe_reason), &key)
        .await?;
    let mut fact =
        mapping::refund_fact(&r, p, ChargeSource::Support).map_err(SupportError::Invalid)?;
    if let DomainEvent::ChargeRefunded(c) = &mut fact.event {
        c.reason = Some(reason.to_string());
    }
    let changed = append(
        store,
        fact.stream,
        fact.event,
        &fact.object_id,
        by,
        "support",
    )
    .await?;
    Ok(Outcome {
        changed,
        message: format!("done: refunded {p} (refund {})", r.id),
    })
}

pub async fn resend_email(
    store: &PgEventStore,
    key: &str,
    by: &Actor,
) -> Result<Outcome, SupportError> {
    let client = store.pool().get().await?;
    let row = if key.contains(':') {
        client
            .query_opt(
                "SELECT email_key, status, resends FROM outgoing_emails WHERE email_key = $1",
                &[&key],
            )
            .await?
    } else {
        client
            .query_opt(
                "SELECT email_key, status, resends FROM outgoing_emails WHERE payment_id = $1 ORDER BY requested_at DESC LIMIT 1",
                &[&key],
            )
            .await?
    };
    let Some(row) = row else {
        return Err(SupportError::NotFound(format!("no email is known for {key:?} (give an email key like confirmation:pi_… or a payment id)")));
    };
    let email_key: String = row.get(0);
    let status: String = row.get(1);
    let resends: i32 = row.get(2);
    if status == "pending" {
        return Ok(done(format!(
            "{email_key} is already waiting to be sent: nothing to do"
        )));
    }
    let event: DomainEvent = EmailResendRequested {
        email_key: email_key.clone(),
        requested_by: by.clone(),
    }
    .into();
    let changed = append(
        store,
        StreamId::outbox(&email_key),
        event,
        &format!("{email_key}:{}", resends + 1),
        by,
        "support",
    )
    .await?;
    Ok(Outcome {
        changed,
        message: format!("done: {email_key} will be sent again"),
    })
}

pub async fn resolve(
    store: &PgEventStore,
    id: &str,
    note: &str,
    by: &Actor,
) -> Result<Outcome, SupportError> {
    if note.trim().is_empty() {
        return Err(SupportError::Invalid(
            "--note must say what was done".into(),
        ));
    }
    let client = store.pool().get().await?;
    let Some(r) = client
        .query_opt("SELECT status FROM discrepancies WHERE id = $1", &[&id])
        .await?
    else {
        return Err(SupportError::NotFound(format!(
            "no discrepancy {id:?} (see payledger support queue)"
        )));
    };
    if r.get::<_, String>(0) == "resolved" {
        return Err(SupportError::Refused(format!(
            "discrepancy {id} is already resolved"
        )));
    }
    let event: DomainEvent = DiscrepancyResolved {
        discrepancy_id: id.into(),
        resolution: "resolved by support".into(),
        note: note.into(),
        resolved_by: by.clone(),
    }
    .into();
    let data = EventData::new(
        &event,
        uuid::Uuid::new_v4(),
        Metadata::new(uuid::Uuid::new_v4(), by.clone(), "support"),
    )?;
    store
        .append_to_stream(StreamId::discrepancy(id), ExpectedVersion::Any, vec![data])
        .await?;
    Ok(Outcome {
        changed: true,
        message: format!("done: {id} resolved"),
    })
}

pub async fn grant(
    store: &PgEventStore,
    plans: &Plans,
    email: &str,
    plan: &str,
    reason: &str,
    by: &Actor,
) -> Result<Outcome, SupportError> {
    let email = email.trim().to_lowercase();
    if !crate::pages::valid_email(&email) {
        return Err(SupportError::Invalid(format!(
            "--email {email:?} is not an email address"
        )));
    }
    if plans.get(plan).is_none() {
        return Err(SupportError::Invalid(format!(
            "--plan {plan:?} is not a plan"
        )));
    }
    if reason.trim().is_empty() {
        return Err(SupportError::Invalid(
            "--reason must say why access is given without a charge".into(),
        ));
    }
    let event: DomainEvent = SubscriptionGranted {
        email: email.clone(),
        plan: plan.into(),
        reason: reason.into(),
        granted_by: by.clone(),
    }
    .into();
    let changed = append(
        store,
        StreamId::account(&email),
        event,
        &format!("{email}:{plan}"),
        by,
        "support",
    )
    .await?;
    Ok(if changed {
        Outcome {
            changed,
            message: format!("done: {email} has {plan} as a grant (no charge)"),
        }
    } else {
        done(format!(
            "{email} already has a grant of {plan}: nothing to do"
        ))
    })
}
