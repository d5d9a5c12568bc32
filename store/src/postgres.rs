use super::{AppendNotifier, AppendOutcome, EventOutcome, EventStore, StoreError, StreamAppend};
use crate::clock::Clock;
use crate::group_commit::{GroupCommitConfig, GroupCommitStats, GroupCommitter};
use deadpool_postgres::{GenericClient, Pool};
use payledger_events::{Checkpoint, DomainEvent, EventData, RecordedEvent, StreamId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio_postgres::Row;
use uuid::Uuid;

const APPEND_SQL: &str = include_str!("append.sql");
const APPEND_ONE_SQL: &str = include_str!("append_one.sql");
const APPEND_EACH_SQL: &str = include_str!("append_each.sql");
const READ_STREAM_SQL: &str = include_str!("read_stream.sql");
const READ_EVENT_SQL: &str = include_str!("read_event.sql");
const EVENTS_BY_ID_SQL: &str = include_str!("events_by_id.sql");
const STREAMS_HOLDING_SQL: &str = include_str!("streams_holding.sql");
const LAST_OF_TYPE_SQL: &str = include_str!("last_of_type.sql");

/// How often an append retries after losing a race on a unique index before
/// giving up; only `Any` appends to one hot stream get near it.
const MAX_RACE_RETRIES: usize = 50;

/// The PostgreSQL event store.
#[derive(Clone)]
pub struct PgEventStore {
    pool: Pool,
    clock: Arc<dyn Clock>,
    notifier: Option<AppendNotifier>,
    group: Option<GroupCommitter>,
}

impl PgEventStore {
    /// A store that rings the coalescing notifier after each commit (needs a
    /// tokio runtime).
    pub fn new(pool: Pool, clock: Arc<dyn Clock>) -> Self {
        let notifier = Some(AppendNotifier::spawn(pool.clone()));
        PgEventStore {
            pool,
            clock,
            notifier,
            group: None,
        }
    }

    /// This store with group commit: `append` and `append_unless_stored`
    /// from every clone are grouped (needs a tokio runtime). `append_in`
    /// stays single: its caller owns the transaction.
    pub fn with_group_commit(mut self, config: GroupCommitConfig) -> Self {
        self.group = None;
        let single = self.clone();
        self.group = Some(GroupCommitter::spawn(single, config));
        self
    }

    /// What group commit did so far (`None` without it).
    pub fn group_commit_stats(&self) -> Option<GroupCommitStats> {
        self.group.as_ref().map(GroupCommitter::stats)
    }

    /// A store that never sends `NOTIFY`; readers then find events by polling.
    pub fn without_notifications(pool: Pool, clock: Arc<dyn Clock>) -> Self {
        PgEventStore {
            pool,
            clock,
            notifier: None,
            group: None,
        }
    }

    /// The connection pool, for the projections crate (its runner and the
    /// read models' door, `ReadModels::of`) and for tests. The app never
    /// calls it: `tests/it/architecture.rs` checks.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The migration the database is at (0 before the first), for
    /// readiness: a build must not serve a schema older than it needs.
    pub async fn schema_version(&self) -> Result<i32, StoreError> {
        let client = self.pool.get().await?;
        let version: Option<i32> = client
            .query_one("SELECT max(version) FROM refinery_schema_history", &[])
            .await?
            .get(0);
        Ok(version.unwrap_or(0))
    }

    /// A connection for a reactor's own tables (email leases, schedules),
    /// so that their change commits in one transaction with an append
    /// ([`PgEventStore::append_in`]). Never for the log's tables or the
    /// read models: those have their own doors.
    pub async fn connection_for_own_tables(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// The clock appends are recorded with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// After committing an `append_in` transaction: wake the readers.
    pub fn appended(&self) {
        if let Some(n) = &self.notifier {
            n.ring();
        }
    }

    /// Appends on a connection or inside a transaction the caller owns (and
    /// commits). A `WriteRace` error means a concurrent writer stored the
    /// same id or version first; inside a caller's transaction that
    /// transaction is aborted and must be retried from the start.
    pub async fn append_in<C: GenericClient>(
        &self,
        client: &C,
        batch: &[StreamAppend],
    ) -> Result<AppendOutcome, StoreError> {
        self.append_guarded_in(client, batch, None).await
    }

    /// Like `append`, but stores nothing at all when the event `guard` (one
    /// of the batch) is already in the log: a processor callback's facts
    /// must come only from the body stored under its id, never from a second
    /// body that reuses the id. Race-free: a concurrent writer of the guard
    /// makes this statement fail on the unique index and be retried.
    pub async fn append_unless_stored(
        &self,
        guard: Uuid,
        batch: Vec<StreamAppend>,
    ) -> Result<AppendOutcome, StoreError> {
        self.append_with_retries(&batch, Some(guard)).await
    }

    async fn append_guarded_in<C: GenericClient>(
        &self,
        client: &C,
        batch: &[StreamAppend],
        guard: Option<Uuid>,
    ) -> Result<AppendOutcome, StoreError> {
        let recorded_at = self.clock.now();
        let merged = merge_parts_of_one_stream(batch)?;
        let batch = merged.as_slice();
        // The same id twice in one call is stored once, like any duplicate.
        let mut seen = HashSet::new();
        let mut fresh: Vec<(&StreamAppend, &EventData)> = vec![];
        for part in batch {
            for e in &part.events {
                if seen.insert(e.event_id) {
                    fresh.push((part, e));
                }
            }
        }
        let rows = match fresh.as_slice() {
            [(part, one)] if guard.is_none_or(|g| g == one.event_id) => {
                let statement = client.prepare_cached(APPEND_ONE_SQL).await?;
                let metadata = serde_json::to_value(&one.metadata)?;
                client
                    .query(
                        &statement,
                        &[
                            &part.stream.as_str(),
                            &part.expected.required(),
                            &one.event_id,
                            &one.event_type,
                            &one.payload,
                            &metadata,
                            &recorded_at,
                        ],
                    )
                    .await?
            }
            _ if batch.iter().all(|p| p.events.len() == 1) => {
                let statement = client.prepare_cached(APPEND_EACH_SQL).await?;
                let c = EventColumns::of(&fresh)?;
                let required: Vec<Option<i64>> =
                    fresh.iter().map(|(p, _)| p.expected.required()).collect();
                client
                    .query(
                        &statement,
                        &[
                            &c.streams,
                            &c.ids,
                            &c.types,
                            &c.payloads,
                            &c.metadata,
                            &required,
                            &recorded_at,
                            &guard,
                        ],
                    )
                    .await?
            }
            _ => {
                let statement = client.prepare_cached(APPEND_SQL).await?;
                let c = EventColumns::of(&fresh)?;
                let stream_ids: Vec<&str> = batch.iter().map(|p| p.stream.as_str()).collect();
                let required: Vec<Option<i64>> =
                    batch.iter().map(|p| p.expected.required()).collect();
                client
                    .query(
                        &statement,
                        &[
                            &c.streams,
                            &c.ids,
                            &c.types,
                            &c.payloads,
                            &c.metadata,
                            &stream_ids,
                            &required,
                            &recorded_at,
                            &guard,
                        ],
                    )
                    .await?
            }
        };
        let rows: Vec<&Row> = rows.iter().collect();
        outcome_from_rows(batch, &rows)
    }

    /// One stored event by its id, as stored (its position, stream and
    /// recorded time with it).
    pub async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(READ_EVENT_SQL).await?;
        client
            .query_opt(&statement, &[&event_id])
            .await?
            .as_ref()
            .map(recorded_event)
            .transpose()
    }

    /// One stored event by its id, decoded through the upcasters: how
    /// application code reads a fact (never the `payload` column).
    pub async fn event(&self, event_id: Uuid) -> Result<Option<DomainEvent>, StoreError> {
        let client = self.pool.get().await?;
        event_with(&client, event_id).await
    }

    /// The stored events among `ids`, decoded; ids not in the log are
    /// absent from the map.
    pub async fn events_by_id(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, DomainEvent>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(EVENTS_BY_ID_SQL).await?;
        let mut out = HashMap::new();
        for row in client.query(&statement, &[&ids]).await? {
            let e = recorded_event(&row)?;
            out.insert(e.event_id, decoded(&e)?);
        }
        Ok(out)
    }

    /// Which of `streams` hold at least one event of `event_type`.
    pub async fn streams_holding(
        &self,
        streams: &[StreamId],
        event_type: &str,
    ) -> Result<HashSet<StreamId>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(STREAMS_HOLDING_SQL).await?;
        let names: Vec<&str> = streams.iter().map(StreamId::as_str).collect();
        Ok(client
            .query(&statement, &[&names, &event_type])
            .await?
            .iter()
            .map(|r| StreamId::from_stored(r.get(0)))
            .collect())
    }

    /// The newest event of `event_type` in `stream`, decoded.
    pub async fn last_of_type(
        &self,
        stream: &StreamId,
        event_type: &str,
    ) -> Result<Option<DomainEvent>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(LAST_OF_TYPE_SQL).await?;
        match client
            .query_opt(&statement, &[&stream.as_str(), &event_type])
            .await?
        {
            Some(row) => Ok(Some(decoded(&recorded_event(&row)?)?)),
            None => Ok(None),
        }
    }

    /// A stream's events with their records (who wrote each, when, at which
    /// version), decoded through the upcasters; for small streams whose
    /// history a decision reads in full.
    pub async fn recorded_stream(
        &self,
        stream: &StreamId,
    ) -> Result<Vec<(RecordedEvent, DomainEvent)>, StoreError> {
        let mut out = vec![];
        let mut after = 0;
        loop {
            let page = self.read_stream(stream, after, 1_000).await?;
            let Some(last) = page.last().map(|e| e.stream_version) else {
                return Ok(out);
            };
            for e in page {
                let event = decoded(&e)?;
                out.push((e, event));
            }
            after = last;
        }
    }

    /// The events of one stream, decoded, in version order.
    pub async fn decoded_stream(
        &self,
        stream: &StreamId,
    ) -> Result<Vec<(i64, DomainEvent)>, StoreError> {
        Ok(self
            .recorded_stream(stream)
            .await?
            .into_iter()
            .map(|(r, e)| (r.stream_version, e))
            .collect())
    }

    async fn append_once(
        &self,
        batch: &[StreamAppend],
        guard: Option<Uuid>,
    ) -> Result<AppendOutcome, StoreError> {
        let client = self.pool.get().await?;
        // One statement in autocommit: one round trip, atomic, no BEGIN/COMMIT.
        self.append_guarded_in(&client, batch, guard).await
    }

    async fn append_with_retries(
        &self,
        batch: &[StreamAppend],
        guard: Option<Uuid>,
    ) -> Result<AppendOutcome, StoreError> {
        if batch.iter().all(|s| s.events.is_empty()) {
            return Err(StoreError::EmptyAppend);
        }
        match &self.group {
            Some(group) => {
                let merged = merge_parts_of_one_stream(batch)?;
                group.append(merged, guard).await
            }
            None => self.append_alone(batch, guard).await,
        }
    }

    /// One append in its own statement, retried after a lost race.
    pub(crate) async fn append_alone(
        &self,
        batch: &[StreamAppend],
        guard: Option<Uuid>,
    ) -> Result<AppendOutcome, StoreError> {
        let mut attempt = 0;
        let outcome = loop {
            match self.append_once(batch, guard).await {
                Err(StoreError::WriteRace) if attempt < MAX_RACE_RETRIES => {
                    attempt += 1;
                    // The retry re-reads: ids the winner stored become
                    // duplicates, and an exact version becomes a conflict.
                    tokio::task::yield_now().await;
                }
                other => break other?,
            }
        };
        if outcome.stored() > 0 {
            if let Some(n) = &self.notifier {
                n.ring();
            }
        }
        Ok(outcome)
    }
}

/// What an append did, from the rows its statement returned (one per
/// stored event, at least one per stream): each event stored or a
/// duplicate, or the conflict that stopped the whole append.
pub(crate) fn outcome_from_rows(
    batch: &[StreamAppend],
    rows: &[&Row],
) -> Result<AppendOutcome, StoreError> {
    let mut stored = HashMap::new();
    for row in rows {
        if let Some(id) = row.get::<_, Option<Uuid>>("event_id") {
            stored.insert(
                id,
                (
                    row.get::<_, i64>("position"),
                    row.get::<_, i64>("stream_version"),
                ),
            );
        }
    }
    if stored.is_empty() {
        // Nothing stored although something was new: a stream was not at
        // its required version, so the statement inserted nothing at all.
        for row in rows {
            let head: i64 = row.get("head");
            let required: Option<i64> = row.get("required");
            let stream: &str = row.get("stream_id");
            if row.get::<_, bool>("has_fresh") && required.is_some_and(|r| r != head) {
                if let Some(part) = batch.iter().find(|p| p.stream.as_str() == stream) {
                    return Err(StoreError::Conflict {
                        stream: part.stream.clone(),
                        expected: part.expected,
                        actual: head,
                    });
                }
            }
        }
    }
    let mut outcome = AppendOutcome::default();
    for part in batch {
        for e in &part.events {
            outcome.events.push(match stored.remove(&e.event_id) {
                Some((position, stream_version)) => EventOutcome::Stored {
                    event_id: e.event_id,
                    position,
                    stream_version,
                },
                None => EventOutcome::Duplicate {
                    event_id: e.event_id,
                },
            });
        }
    }
    Ok(outcome)
}

/// Several parts for one stream become one part whose events get
/// consecutive versions (a callback may state two refunds of one payment).
/// Their expectations must agree: two different required versions for one
/// stream cannot both hold.
pub(crate) fn merge_parts_of_one_stream(
    batch: &[StreamAppend],
) -> Result<Vec<StreamAppend>, StoreError> {
    let mut merged: Vec<StreamAppend> = Vec::with_capacity(batch.len());
    for part in batch {
        match merged.iter_mut().find(|m| m.stream == part.stream) {
            None => merged.push(part.clone()),
            Some(m) => {
                if m.expected != part.expected {
                    return Err(StoreError::InvalidBatch(format!(
                        "stream {} appears twice in one append with different expected versions ({} and {})",
                        part.stream, m.expected, part.expected
                    )));
                }
                m.events.extend(part.events.iter().cloned());
            }
        }
    }
    Ok(merged)
}

/// The per-event arrays the batch statements take.
pub(crate) struct EventColumns<'a> {
    pub(crate) streams: Vec<&'a str>,
    pub(crate) ids: Vec<Uuid>,
    pub(crate) types: Vec<&'a str>,
    pub(crate) payloads: Vec<&'a serde_json::Value>,
    pub(crate) metadata: Vec<serde_json::Value>,
}

impl<'a> EventColumns<'a> {
    pub(crate) fn of(
        events: &[(&'a StreamAppend, &'a EventData)],
    ) -> Result<Self, serde_json::Error> {
        Ok(EventColumns {
            streams: events.iter().map(|(p, _)| p.stream.as_str()).collect(),
            ids: events.iter().map(|(_, e)| e.event_id).collect(),
            types: events.iter().map(|(_, e)| e.event_type.as_str()).collect(),
            payloads: events.iter().map(|(_, e)| &e.payload).collect(),
            metadata: events
                .iter()
                .map(|(_, e)| serde_json::to_value(&e.metadata))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl EventStore for PgEventStore {
    async fn append(&self, batch: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        self.append_with_retries(&batch, None).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(READ_STREAM_SQL).await?;
        let rows = client
            .query(&statement, &[&stream.as_str(), &after_version, &limit])
            .await?;
        rows.iter().map(recorded_event).collect()
    }

    async fn read_all(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        read_all_with(&client, after, limit).await
    }
}

/// `read_all` on a connection the caller holds.
/// An event through the upcasters; one that does not decode is corrupt.
fn decoded(e: &RecordedEvent) -> Result<DomainEvent, StoreError> {
    e.decode().map_err(|reason| StoreError::Corrupt {
        position: e.position,
        reason: reason.to_string(),
    })
}

/// [`PgEventStore::event`] on a connection the caller holds.
pub async fn event_with<C: GenericClient>(
    client: &C,
    event_id: Uuid,
) -> Result<Option<DomainEvent>, StoreError> {
    let statement = client.prepare_cached(READ_EVENT_SQL).await?;
    let Some(row) = client.query_opt(&statement, &[&event_id]).await? else {
        return Ok(None);
    };
    decoded(&recorded_event(&row)?).map(Some)
}

/// [`EventStore::read_all`] on a connection the caller holds.
pub async fn read_all_with<C: GenericClient>(
    client: &C,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    Ok(crate::feed::read_after(client, after, limit).await?)
}

fn recorded_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    Ok(crate::feed::recorded_event(row)?)
}
