//! The store in memory: the same contract as PostgreSQL (the suite in
//! `tests/it/store_contract.rs` runs against both), for tests and tools
//! that need a log without a database.

use crate::clock::Clock;
use crate::postgres::merge_parts_of_one_stream;
use crate::{AppendOutcome, EventOutcome, EventStore, ExpectedVersion, StoreError, StreamAppend};
use payledger_events::{Checkpoint, RecordedEvent, StreamId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Everything appended, in order; one lock makes each append atomic and
/// every append visible at once, so the global order has no gaps.
pub struct InMemoryEventStore {
    clock: Arc<dyn Clock>,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    events: Vec<RecordedEvent>,
    ids: HashSet<Uuid>,
    heads: HashMap<StreamId, i64>,
    appends: i64,
}

impl InMemoryEventStore {
    /// An empty log whose events are recorded at `clock`'s time.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        InMemoryEventStore {
            clock,
            log: Mutex::new(Log::default()),
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append_now(&self, batch: &[StreamAppend]) -> Result<AppendOutcome, StoreError> {
        if batch.iter().all(|s| s.events.is_empty()) {
            return Err(StoreError::EmptyAppend);
        }
        let merged = merge_parts_of_one_stream(batch)?;
        let mut log = self.log();
        let mut seen = HashSet::new();
        let fresh: Vec<Vec<bool>> = merged
            .iter()
            .map(|part| {
                part.events
                    .iter()
                    .map(|e| !log.ids.contains(&e.event_id) && seen.insert(e.event_id))
                    .collect()
            })
            .collect();
        for (part, fresh) in merged.iter().zip(&fresh) {
            let head = log.heads.get(&part.stream).copied().unwrap_or(0);
            let required = match part.expected {
                ExpectedVersion::Any => None,
                ExpectedVersion::NoStream => Some(0),
                ExpectedVersion::Exact(n) => Some(n),
            };
            if fresh.iter().any(|f| *f) && required.is_some_and(|r| r != head) {
                return Err(StoreError::Conflict {
                    stream: part.stream.clone(),
                    expected: part.expected,
                    actual: head,
                });
            }
        }
        log.appends += 1;
        let transaction_id = log.appends;
        let recorded_at = self.clock.now();
        let mut outcome = AppendOutcome::default();
        for (part, fresh) in merged.iter().zip(fresh) {
            for (e, fresh) in part.events.iter().zip(fresh) {
                if !fresh {
                    outcome.events.push(EventOutcome::Duplicate {
                        event_id: e.event_id,
                    });
                    continue;
                }
                let stream_version = log.heads.get(&part.stream).copied().unwrap_or(0) + 1;
                let position = log.events.len() as i64 + 1;
                log.heads.insert(part.stream.clone(), stream_version);
                log.ids.insert(e.event_id);
                log.events.push(RecordedEvent {
                    position,
                    transaction_id,
                    stream: part.stream.clone(),
                    stream_version,
                    event_id: e.event_id,
                    event_type: e.event_type.clone(),
                    payload: e.payload.clone(),
                    metadata: e.metadata.clone(),
                    recorded_at,
                });
                outcome.events.push(EventOutcome::Stored {
                    event_id: e.event_id,
                    position,
                    stream_version,
                });
            }
        }
        Ok(outcome)
    }
}

impl EventStore for InMemoryEventStore {
    async fn append(&self, batch: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        self.append_now(&batch)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self
            .log()
            .events
            .iter()
            .filter(|e| e.stream == *stream && e.stream_version > after_version)
            .take(limit.max(0) as usize)
            .cloned()
            .collect())
    }

    async fn read_all(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let after = (after.transaction_id, after.position);
        Ok(self
            .log()
            .events
            .iter()
            .filter(|e| (e.transaction_id, e.position) > after)
            .take(limit.max(0) as usize)
            .cloned()
            .collect())
    }
}
