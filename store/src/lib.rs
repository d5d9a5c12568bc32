//! The event store: one append-only log that everything else reads from.
//! This crate is the only code that touches the `events` and `event_chain`
//! tables; everything else appends and reads through it.
#![warn(missing_docs)]

mod chain;
/// Where "now" comes from, so tests can set it.
pub mod clock;
mod error;
pub mod feed;
mod group_commit;
mod memory;
mod notify;
mod postgres;

pub use chain::{
    canonical_bytes, chain_length, seal_pending, verify_chain, verify_chain_reporting, ChainBreak,
    ChainReport,
};
pub use error::StoreError;
pub use group_commit::{GroupCommitConfig, GroupCommitStats};
pub use memory::InMemoryEventStore;
pub use notify::{AppendListener, AppendNotifier, Subscription, EVENTS_CHANNEL};
pub use postgres::{event_with, read_all_with, PgEventStore};

use payledger_events::{Checkpoint, EventData, RecordedEvent, StreamId};
use std::fmt;
use std::future::Future;
use uuid::Uuid;

/// What the writer believes about the stream it appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last version must be exactly this (versions start at 1).
    Exact(i64),
}

impl ExpectedVersion {
    /// The version the stream must be at, `None` for `Any`.
    pub(crate) fn required(self) -> Option<i64> {
        match self {
            ExpectedVersion::Any => None,
            ExpectedVersion::NoStream => Some(0),
            ExpectedVersion::Exact(n) => Some(n),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(n) => write!(f, "version {n}"),
        }
    }
}

/// Events for one stream within an append; an append may carry several, all
/// committed in one transaction.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    /// The stream the events go to.
    pub stream: StreamId,
    /// Where the writer believes the stream is.
    pub expected: ExpectedVersion,
    /// The events, in the order they get versions.
    pub events: Vec<EventData>,
}

impl StreamAppend {
    /// Events for `stream`, expected at `expected`.
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<EventData>) -> Self {
        StreamAppend {
            stream,
            expected,
            events,
        }
    }
}

/// What became of one event of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Written now, at this place in the log and its stream.
    Stored {
        /// The event's id.
        event_id: Uuid,
        /// Its global position.
        position: i64,
        /// Its version in its stream (from 1).
        stream_version: i64,
    },
    /// The event id was already in the log; nothing was written for it.
    Duplicate {
        /// The event's id.
        event_id: Uuid,
    },
}

/// What an append did, event by event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// One outcome per event, in the order given.
    pub events: Vec<EventOutcome>,
}

impl AppendOutcome {
    /// How many events were written now.
    pub fn stored(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, EventOutcome::Stored { .. }))
            .count()
    }

    /// How many were already in the log.
    pub fn duplicates(&self) -> usize {
        self.events.len() - self.stored()
    }
}

/// The store contract every backend implements; `tests/it/store_contract.rs`
/// runs the same suite against each ([`PgEventStore`], [`InMemoryEventStore`]).
pub trait EventStore: Send + Sync {
    /// Appends atomically: either every new event of every stream is stored,
    /// or none is. Events whose id is already stored are reported as
    /// duplicates and skipped.
    fn append(
        &self,
        batch: Vec<StreamAppend>,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

    /// [`EventStore::append`] to one stream.
    fn append_to_stream(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send {
        self.append(vec![StreamAppend::new(stream, expected, events)])
    }

    /// Events of one stream with a version above `after_version`, in order.
    fn read_stream(
        &self,
        stream: &StreamId,
        after_version: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The next events of the gap-safe global order after `after`. An event
    /// that is not returned now will never appear before `after` later.
    fn read_all(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;
}
