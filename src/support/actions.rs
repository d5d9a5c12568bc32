//! The support actions. Each checks first and refuses with one line naming
//! the problem; shows what it will do and asks (`confirm`) before changing
//! anything; appends with the person as actor; and, run again, says it is
//! already done and changes nothing.

pub use super::decide::RescueRequest;
use super::decide::{self, PaymentFacts, Refusal};
use super::SupportError;
use crate::plans::Plans;
use crate::processor::client::ProcessorClient;
use crate::processor::mapping;
use crate::store::{EventStore, ExpectedVersion, PgEventStore, StoreError};
use payledger_events::{Actor, ChargeSource, DomainEvent, EventData, Metadata, StreamId};
use payledger_projections::read::{self, ReadModels};
use payledger_projections::states::PaymentState;

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

/// How often a command re-decides after the payment changed under it
/// without changing what the person agreed to.
const MAX_REDECISIONS: usize = 3;

/// Everything the log says about one payment, decoded through the
/// upcasters.
pub async fn payment_facts(
    store: &PgEventStore,
    payment_id: &str,
) -> Result<PaymentFacts, SupportError> {
    let events = store.decoded_stream(&StreamId::payment(payment_id)).await?;
    Ok(PaymentFacts::fold(payment_id, events))
}

async fn activated(store: &PgEventStore, payment_id: &str) -> Result<bool, SupportError> {
    Ok(
        read::customer_status::by_payment(&ReadModels::of(store), payment_id)
            .await?
            .is_some_and(|s| s.state == PaymentState::Active),
    )
}

fn refused(r: Refusal) -> Result<Outcome, SupportError> {
    match r {
        Refusal::Done(message) => Ok(done(message)),
        Refusal::NotFound(m) => Err(SupportError::NotFound(m)),
        Refusal::Refused(m) => Err(SupportError::Refused(m)),
        Refusal::Invalid(m) => Err(SupportError::Invalid(m)),
    }
}

/// The payment moved on after the person agreed: say what it is now and
/// do nothing, since they agreed to something else.
fn changed_meanwhile(p: &str, now: Result<String, Refusal>) -> SupportError {
    let now = match now {
        Ok(what) => format!("it would now {what}"),
        Err(
            Refusal::Done(m) | Refusal::NotFound(m) | Refusal::Refused(m) | Refusal::Invalid(m),
        ) => m,
    };
    SupportError::Changed(format!(
        "payment {p} changed while you were deciding, so nothing was done: {now}"
    ))
}

pub async fn rescue(
    store: &PgEventStore,
    plans: &Plans,
    req: RescueRequest<'_>,
    by: &Actor,
    confirm: &mut dyn FnMut(&str) -> bool,
) -> Result<Outcome, SupportError> {
    let p = req.payment_id;
    let mut agreed: Option<String> = None;
    for _ in 0..MAX_REDECISIONS {
        let facts = payment_facts(store, p).await?;
        let decided = decide::rescue(&facts, activated(store, p).await?, plans, &req, by);
        let rescue = match (decided, &agreed) {
            (Err(r), None) => return refused(r),
            (Err(r), Some(_)) => return Err(changed_meanwhile(p, Err(r))),
            (Ok(r), Some(what)) if r.what != *what => return Err(changed_meanwhile(p, Ok(r.what))),
            (Ok(r), _) => r,
        };
        if agreed.is_none() {
            if !confirm(&rescue.what) {
                return Ok(done("nothing done".into()));
            }
            agreed = Some(rescue.what.clone());
        }
        let data = EventData::for_processor_fact(
            &DomainEvent::from(rescue.matched),
            p,
            Metadata::new(uuid::Uuid::new_v4(), by.clone(), "support"),
        )?;
        match store
            .append_to_stream(
                StreamId::payment(p),
                ExpectedVersion::Exact(facts.version),
                vec![data],
            )
            .await
        {
            Ok(outcome) => {
                return Ok(Outcome {
                    changed: outcome.stored() > 0,
                    message: format!("done: {}", rescue.what),
                })
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(SupportError::Changed(format!(
        "payment {p} kept changing while this ran; nothing was done: run the command again"
    )))
}

/// Refunds `amount` (text in major units, e.g. "50.00"; `None`: all that is
/// left) of a payment, after the person agreed.
pub async fn refund(
    store: &PgEventStore,
    processor: &ProcessorClient,
    payment_id: &str,
    reason: &str,
    amount: Option<&str>,
    by: &Actor,
    confirm: &mut dyn FnMut(&str) -> bool,
) -> Result<Outcome, SupportError> {
    let p = payment_id;
    let facts = payment_facts(store, p).await?;
    let minor = match (amount, &facts.charge) {
        (Some(text), Some(c)) => Some(
            payledger_events::Money::parse(text, c.currency.clone())
                .map_err(|e| SupportError::Invalid(format!("--amount: {e}")))?
                .minor,
        ),
        _ => None,
    };
    let decided = match decide::refund(&facts, reason, minor) {
        Ok(decided) => decided,
        Err(r) => return refused(r),
    };
    if !confirm(&decided.what) {
        return Ok(done("nothing done".into()));
    }
    // The processor call cannot be taken back: decide again on what the
    // log says now, and refund only what the person agreed to.
    let now = payment_facts(store, p).await?;
    if now.version != facts.version {
        match decide::refund(&now, reason, minor) {
            Ok(again) if again == decided => {}
            other => return Err(changed_meanwhile(p, other.map(|d| d.what))),
        }
    }
    let stripe_reason = if reason.to_lowercase().contains("duplicate") {
        "duplicate"
    } else {
        "requested_by_customer"
    };
    let r = processor
        .create_refund(p, decided.amount, Some(stripe_reason), &decided.key)
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

/// A small stream (a discrepancy's, an email's) decoded with who wrote each
/// event and when, and the version to append after.
async fn history(
    store: &PgEventStore,
    stream: &StreamId,
) -> Result<(i64, Vec<decide::Written>), SupportError> {
    let recorded = store.recorded_stream(stream).await?;
    let version = recorded.last().map_or(0, |(r, _)| r.stream_version);
    let written = recorded
        .into_iter()
        .map(|(r, event)| decide::Written {
            event,
            by: r.metadata.actor.to_string(),
            at: r.recorded_at,
        })
        .collect();
    Ok((version, written))
}

fn after(version: i64) -> ExpectedVersion {
    if version == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(version)
    }
}

pub async fn resend_email(
    store: &PgEventStore,
    key: &str,
    by: &Actor,
) -> Result<Outcome, SupportError> {
    let read = ReadModels::of(store);
    for _ in 0..MAX_REDECISIONS {
        let row = if key.contains(':') {
            read::outgoing_emails::by_key(&read, key).await?
        } else {
            read::outgoing_emails::latest_for_payment(&read, key).await?
        };
        let receipt_now = match row.as_ref() {
            Some(r) if r.kind == "confirmation" || r.kind == "rescue_confirmation" => {
                match &r.payment_id {
                    Some(p) => read::customer_status::by_payment(&read, p)
                        .await?
                        .map(|s| s.state),
                    None => None,
                }
            }
            _ => None,
        };
        let row = row
            .as_ref()
            .map(|r| (r.email_key.as_str(), r.status, r.resends));
        let stream = StreamId::outbox(row.map_or(key, |(email_key, _, _)| email_key));
        let (version, written) = match row {
            Some(_) => history(store, &stream).await?,
            None => (0, vec![]),
        };
        let request = match decide::resend(row, receipt_now, &written, key, by) {
            Ok(decided) => decided,
            Err(r) => return refused(r),
        };
        let email_key = request.email_key.clone();
        // One request per version of the email's stream: two people who
        // decide on the same version make one request, not two.
        let data = EventData::for_processor_fact(
            &DomainEvent::from(request),
            &format!("{email_key}:after:{version}"),
            Metadata::new(uuid::Uuid::new_v4(), by.clone(), "support"),
        )?;
        match store
            .append_to_stream(stream, after(version), vec![data])
            .await
        {
            Ok(outcome) if outcome.stored() > 0 => {
                return Ok(Outcome {
                    changed: true,
                    message: format!("done: {email_key} will be sent again"),
                })
            }
            // Someone else's identical request landed first: decide again
            // and say who.
            Ok(_) | Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(SupportError::Changed(format!(
        "the email {key} kept changing while this ran; nothing was done: run the command again"
    )))
}

pub async fn resolve(
    store: &PgEventStore,
    id: &str,
    note: &str,
    by: &Actor,
) -> Result<Outcome, SupportError> {
    let stream = StreamId::discrepancy(id);
    for _ in 0..MAX_REDECISIONS {
        let status = read::discrepancies::by_id(&ReadModels::of(store), id)
            .await?
            .map(|d| d.status);
        let (version, written) = history(store, &stream).await?;
        let event = match decide::resolve(status, &written, id, note, by) {
            Ok(resolved) => DomainEvent::from(resolved),
            Err(r) => return refused(r),
        };
        let data = EventData::new(
            &event,
            uuid::Uuid::new_v4(),
            Metadata::new(uuid::Uuid::new_v4(), by.clone(), "support"),
        )?;
        match store
            .append_to_stream(stream.clone(), after(version), vec![data])
            .await
        {
            Ok(_) => {
                return Ok(Outcome {
                    changed: true,
                    message: format!("done: {id} resolved"),
                })
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(SupportError::Changed(format!(
        "discrepancy {id} kept changing while this ran; nothing was done: run the command again"
    )))
}

pub async fn grant(
    store: &PgEventStore,
    plans: &Plans,
    email: &str,
    plan: &str,
    reason: &str,
    by: &Actor,
) -> Result<Outcome, SupportError> {
    let address = email.trim().to_lowercase();
    let current = read::subscriptions::by_email(&ReadModels::of(store), &address)
        .await?
        .map(|s| decide::CurrentAccess {
            active: s.grants_access_at(store.clock().now()),
            plan: s.plan,
            activation: s.activation,
            until: s.period_end,
        });
    let stream = StreamId::account(&address);
    let (version, written) = history(store, &stream).await?;
    let granted = match decide::grant(plans, email, plan, reason, by, current.as_ref(), &written) {
        Ok(granted) => granted,
        Err(r) => return refused(r),
    };
    let email = granted.email.clone();
    let data = EventData::for_processor_fact(
        &DomainEvent::from(granted),
        &format!("{email}:{plan}"),
        Metadata::new(uuid::Uuid::new_v4(), by.clone(), "support"),
    )?;
    match store
        .append_to_stream(stream, after(version), vec![data])
        .await
    {
        Ok(outcome) if outcome.stored() > 0 => Ok(Outcome {
            changed: true,
            message: format!("done: {email} has {plan} as a grant (no charge)"),
        }),
        // Another grant of the same plan landed meanwhile.
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(done(format!(
            "{email} was just granted {plan} by someone else: nothing to do"
        ))),
        Err(e) => Err(e.into()),
    }
}
