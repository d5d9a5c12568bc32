//! Building the events of payment stories, for projection tests.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use payledger::store::{EventStore, ExpectedVersion, PgEventStore, StreamAppend};
use payledger_events::*;
use payledger_testkit::history::{self as h, Fact};
use uuid::Uuid;

// The builders live in the library (the projection benchmark uses them too).

pub fn usd() -> Currency {
    h::usd().unwrap()
}

pub fn at(minute: i64) -> DateTime<Utc> {
    h::at(minute)
}

pub fn data(event: impl Into<DomainEvent>, actor: Actor) -> EventData {
    h::data(event, actor).unwrap()
}

pub fn fact(event: impl Into<DomainEvent>, object_id: &str) -> EventData {
    h::fact(event, object_id).unwrap()
}

pub fn checkout_started(checkout: Uuid, email: &str, amount: i64) -> Fact {
    h::checkout_started(checkout, email, amount).unwrap()
}

pub fn charge(
    payment: &str,
    reference: Option<Uuid>,
    email: Option<&str>,
    amount: i64,
    minute: i64,
) -> Fact {
    h::charge(payment, reference, email, amount, minute).unwrap()
}

pub fn matched(payment: &str, email: &str) -> Fact {
    h::matched(payment, email).unwrap()
}

pub fn refunded(payment: &str, refund: &str, amount: i64) -> Fact {
    h::refunded(payment, refund, amount).unwrap()
}

pub fn dispute_opened(payment: &str, dispute: &str) -> Fact {
    h::dispute_opened(payment, dispute).unwrap()
}

pub fn dispute_closed(payment: &str, dispute: &str, status: &str) -> Fact {
    h::dispute_closed(payment, dispute, status).unwrap()
}

pub fn email_result(key: &str, sent: bool, permanent: bool) -> Fact {
    h::email_result(key, sent, permanent).unwrap()
}

pub fn unparsed(evt: &str) -> Fact {
    h::unparsed(evt).unwrap()
}

pub fn resolved(discrepancy: &str) -> Fact {
    h::resolved(discrepancy).unwrap()
}

pub fn granted(email: &str) -> Fact {
    h::granted(email).unwrap()
}

/// Appends each event on its own (streams may repeat across calls).
pub async fn append(store: &PgEventStore, events: Vec<(StreamId, EventData)>) {
    for (stream, e) in events {
        store
            .append(vec![StreamAppend::new(
                stream,
                ExpectedVersion::Any,
                vec![e],
            )])
            .await
            .unwrap();
    }
}

/// A deterministic mixed history of about `3 * customers` events.
pub fn mixed_history(customers: usize) -> Vec<Fact> {
    h::mixed_history(customers).unwrap()
}

/// Appends in batches of about `chunk` events, one statement per batch, in
/// the given order.
pub async fn append_batched(
    store: &PgEventStore,
    events: Vec<(StreamId, EventData)>,
    chunk: usize,
) {
    let mut batch: Vec<StreamAppend> = vec![];
    let mut count = 0;
    for (stream, e) in events {
        match batch.iter_mut().find(|p| p.stream == stream) {
            Some(part) => part.events.push(e),
            None => batch.push(StreamAppend::new(stream, ExpectedVersion::Any, vec![e])),
        }
        count += 1;
        if count >= chunk {
            store.append(std::mem::take(&mut batch)).await.unwrap();
            count = 0;
        }
    }
    if !batch.is_empty() {
        store.append(batch).await.unwrap();
    }
}
