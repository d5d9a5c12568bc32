use crate::{DecodeError, DomainEvent, Metadata, StreamId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event on its way into the store.
#[derive(Debug, Clone, PartialEq)]
pub struct EventData {
    /// The event's id: deterministic for processor facts, so a fact stored twice is one.
    pub event_id: Uuid,
    /// Its type name (`ChargeSucceeded`, …).
    pub event_type: String,
    /// Its payload, as JSON of its schema version.
    pub payload: serde_json::Value,
    /// Who caused it, why and through which door.
    pub metadata: Metadata,
}

impl EventData {
    /// Stamps the payload's current schema version into the metadata, so a
    /// later reader knows which shape it holds.
    pub fn new(
        event: &DomainEvent,
        event_id: Uuid,
        mut metadata: Metadata,
    ) -> Result<Self, serde_json::Error> {
        metadata.schema_version = crate::current_schema_version(event.event_type());
        Ok(EventData {
            event_id,
            event_type: event.event_type().to_string(),
            payload: event.to_payload()?,
            metadata,
        })
    }

    /// For an event that states a processor fact: the id is derived from the
    /// fact, so every path that learns of it produces the same event.
    pub fn for_processor_fact(
        event: &DomainEvent,
        processor_object_id: &str,
        metadata: Metadata,
    ) -> Result<Self, serde_json::Error> {
        let id = crate::deterministic_event_id(event.event_type(), processor_object_id);
        Self::new(event, id, metadata)
    }
}

/// A position in the gap-safe global order: (transaction id, position).
/// Readers resume strictly after a checkpoint.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Checkpoint {
    /// The appending transaction's id.
    pub transaction_id: i64,
    /// The event's position in the log.
    pub position: i64,
}

impl Checkpoint {
    /// Before the first event.
    pub const START: Checkpoint = Checkpoint {
        transaction_id: 0,
        position: 0,
    };
}

/// An event as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Its global position.
    pub position: i64,
    /// The transaction that appended it.
    pub transaction_id: i64,
    /// Its stream.
    pub stream: StreamId,
    /// Its version in its stream (from 1).
    pub stream_version: i64,
    /// Its id.
    pub event_id: Uuid,
    /// Its type name.
    pub event_type: String,
    /// Its payload, as stored.
    pub payload: serde_json::Value,
    /// Who caused it.
    pub metadata: Metadata,
    /// When the store recorded it (the store's clock).
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Where a reader stands after reading this event.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }

    /// The typed event, upcast from whatever schema version it was written in.
    pub fn decode(&self) -> Result<DomainEvent, DecodeError> {
        DomainEvent::decode(
            &self.event_type,
            self.metadata.schema_version,
            self.payload.clone(),
        )
    }
}
