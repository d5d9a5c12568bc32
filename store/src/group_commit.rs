//! Group commit: appends that arrive together are written by one statement
//! and one commit (`append_group.sql`), each with its own outcome — one
//! append's conflict or duplicate never fails or delays another's answer.
//! If the combined statement fails as a whole, each append is retried on
//! its own. Every caller is answered only after the statement that wrote
//! its events has committed (guarantee 7).
//!
//! Batching needs no timer to pay off: a group is formed when a writer
//! slot is free, from everything that queued while the slots were busy;
//! `window` adds a wait for stragglers on top of that.

use super::{AppendOutcome, StoreError, StreamAppend};
use crate::postgres::{outcome_from_rows, EventColumns, PgEventStore};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

const APPEND_GROUP_SQL: &str = include_str!("append_group.sql");
const APPEND_GROUP_EACH_SQL: &str = include_str!("append_group_each.sql");

/// How appends are grouped.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitConfig {
    /// After the first append of a group, how long to wait for more (zero:
    /// take what is waiting and go).
    pub window: Duration,
    /// The most appends in one statement.
    pub max_appends: usize,
    /// Statements in flight at once (each on its own connection).
    pub writers: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig {
            window: Duration::ZERO,
            max_appends: 64,
            writers: 4,
        }
    }
}

/// What the grouped writers did since the store was made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Statements that wrote a group of two or more appends.
    pub group_statements: u64,
    /// The appends those statements carried.
    pub grouped_appends: u64,
    /// Appends written alone (nothing else was waiting).
    pub alone: u64,
    /// Groups whose statement failed as a whole and were written one by one.
    pub fallbacks: u64,
}

#[derive(Default)]
struct Counters {
    group_statements: AtomicU64,
    grouped_appends: AtomicU64,
    alone: AtomicU64,
    fallbacks: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> GroupCommitStats {
        GroupCommitStats {
            group_statements: self.group_statements.load(Ordering::Relaxed),
            grouped_appends: self.grouped_appends.load(Ordering::Relaxed),
            alone: self.alone.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }
}

struct Request {
    /// One part per stream (merged), as `append` would write it.
    batch: Vec<StreamAppend>,
    guard: Option<Uuid>,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    keys: Keys,
    /// Held from the moment it joins a group until it is answered: its
    /// keys stay in flight until its statement has committed.
    entered: Option<Entered>,
}

/// The streams an append writes and the event ids it stores or guards on.
#[derive(Clone, Default)]
struct Keys {
    streams: Vec<String>,
    ids: Vec<Uuid>,
}

impl Keys {
    fn of(batch: &[StreamAppend], guard: Option<Uuid>) -> Keys {
        Keys {
            streams: batch
                .iter()
                .map(|p| p.stream.as_str().to_string())
                .collect(),
            ids: batch
                .iter()
                .flat_map(|p| p.events.iter().map(|e| e.event_id))
                .chain(guard)
                .collect(),
        }
    }
}

/// A set of streams and event ids.
#[derive(Default)]
struct KeySet {
    streams: HashSet<String>,
    ids: HashSet<Uuid>,
}

impl KeySet {
    fn shares(&self, keys: &Keys) -> bool {
        keys.streams.iter().any(|s| self.streams.contains(s))
            || keys.ids.iter().any(|id| self.ids.contains(id))
    }

    fn add(&mut self, keys: &Keys) {
        self.streams.extend(keys.streams.iter().cloned());
        self.ids.extend(keys.ids.iter().copied());
    }

    fn remove(&mut self, keys: &Keys) {
        for s in &keys.streams {
            self.streams.remove(s);
        }
        for id in &keys.ids {
            self.ids.remove(id);
        }
    }
}

/// The keys of every statement being written. Two statements in flight
/// that share a stream or an event id race on the unique indexes: the
/// second waits for the first to commit and then fails as a whole (or the
/// two deadlock, a second's stall), and its group is written again one by
/// one. A month-end burst does that all the time — the processor sends
/// `invoice.paid` and `invoice.payment_succeeded` for one invoice at once,
/// and both carry the same fact. So an append that shares a key with a
/// statement in flight waits until that statement has committed, and then
/// finds the fact stored: a duplicate, answered as one, without an error.
#[derive(Default)]
struct InFlight {
    keys: std::sync::Mutex<KeySet>,
    /// Rung when a statement's keys leave.
    settled: tokio::sync::Notify,
}

impl InFlight {
    /// Takes `keys` in flight unless one of them is already.
    fn try_enter(self: &Arc<Self>, keys: &Keys) -> Option<Entered> {
        let mut held = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if held.shares(keys) {
            return None;
        }
        held.add(keys);
        Some(Entered {
            in_flight: self.clone(),
            keys: keys.clone(),
        })
    }
}

/// Keys in flight; they leave when this is dropped (answered, failed or
/// cancelled alike).
struct Entered {
    in_flight: Arc<InFlight>,
    keys: Keys,
}

impl Drop for Entered {
    fn drop(&mut self) {
        self.in_flight
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.keys);
        self.in_flight.settled.notify_one();
    }
}

/// The queue in front of the grouped writers; cloned with the store.
#[derive(Clone)]
pub(crate) struct GroupCommitter {
    queue: mpsc::UnboundedSender<Request>,
    counters: Arc<Counters>,
    /// One permit per statement in flight, shared by the group former and
    /// the callers that write alone.
    writers: Arc<Semaphore>,
    /// Appends in the queue or being formed into a group.
    waiting: Arc<AtomicU64>,
    in_flight: Arc<InFlight>,
    single: Arc<PgEventStore>,
    window: Duration,
}

impl GroupCommitter {
    /// Spawns the task that forms groups; `single` writes an append alone
    /// (a group of one, and the fallback).
    pub(crate) fn spawn(single: PgEventStore, config: GroupCommitConfig) -> Self {
        let (queue, requests) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let writers = Arc::new(Semaphore::new(config.writers.max(1)));
        let waiting = Arc::new(AtomicU64::new(0));
        let in_flight = Arc::new(InFlight::default());
        tokio::spawn(form_groups(
            single.clone(),
            config,
            requests,
            Shared {
                counters: counters.clone(),
                writers: writers.clone(),
                waiting: waiting.clone(),
                in_flight: in_flight.clone(),
            },
        ));
        GroupCommitter {
            queue,
            counters,
            writers,
            waiting,
            in_flight,
            single: Arc::new(single),
            window: config.window,
        }
    }

    pub(crate) fn stats(&self) -> GroupCommitStats {
        self.counters.snapshot()
    }

    pub(crate) async fn append(
        &self,
        batch: Vec<StreamAppend>,
        guard: Option<Uuid>,
    ) -> Result<AppendOutcome, StoreError> {
        // Nobody waiting and a writer free: there is nothing to group with,
        // so write now, without the hop through the group former — unless
        // a window asks to wait for company.
        let keys = Keys::of(&batch, guard);
        if self.window.is_zero() && self.waiting.load(Ordering::SeqCst) == 0 {
            if let Ok(_slot) = self.writers.try_acquire() {
                if let Some(_entered) = self.in_flight.try_enter(&keys) {
                    self.counters.alone.fetch_add(1, Ordering::Relaxed);
                    return self.single.append_alone(&batch, guard).await;
                }
            }
        }
        let (reply, answer) = oneshot::channel();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.queue
            .send(Request {
                batch,
                guard,
                reply,
                keys,
                entered: None,
            })
            .map_err(|_| StoreError::Unavailable("the group-commit writer has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the group-commit writer stopped before answering".into())
        })?
    }
}

/// A group in the making: no stream and no event id twice, and none in
/// flight in another statement (its requests hold their keys), so each
/// append's checks in the statement see only what was committed before it.
#[derive(Default)]
struct Group {
    requests: Vec<Request>,
    /// The keys of the appends given back while it formed: a later append
    /// that shares one waits with them, so appends to one stream keep
    /// their order of arrival.
    passed_over: KeySet,
}

impl Group {
    /// Takes `r` if the group has room, no earlier append sharing a key
    /// was given back, and no key of `r` is in flight; otherwise gives it
    /// back.
    fn try_push(
        &mut self,
        mut r: Request,
        max: usize,
        in_flight: &Arc<InFlight>,
    ) -> Option<Request> {
        let entered = (self.requests.len() < max && !self.passed_over.shares(&r.keys))
            .then(|| in_flight.try_enter(&r.keys))
            .flatten();
        match entered {
            Some(entered) => {
                r.entered = Some(entered);
                self.requests.push(r);
                None
            }
            None => {
                self.passed_over.add(&r.keys);
                Some(r)
            }
        }
    }
}

struct Shared {
    counters: Arc<Counters>,
    writers: Arc<Semaphore>,
    waiting: Arc<AtomicU64>,
    in_flight: Arc<InFlight>,
}

async fn form_groups(
    single: PgEventStore,
    config: GroupCommitConfig,
    mut requests: mpsc::UnboundedReceiver<Request>,
    shared: Shared,
) {
    let Shared {
        counters,
        writers,
        waiting,
        in_flight,
    } = shared;
    let max = config.max_appends.max(1);
    // Appends not yet in a group, in arrival order: those that shared a key
    // with a statement in flight wait here for it to commit.
    let mut held: VecDeque<Request> = VecDeque::new();
    loop {
        if held.is_empty() {
            match requests.recv().await {
                Some(r) => held.push_back(r),
                None => return,
            }
        }
        let started = tokio::time::Instant::now();
        let Ok(slot) = writers.clone().acquire_owned().await else {
            return;
        };
        while let Ok(r) = requests.try_recv() {
            held.push_back(r);
        }
        let mut group = Group::default();
        let mut again = VecDeque::new();
        while let Some(r) = held.pop_front() {
            if let Some(r) = group.try_push(r, max, &in_flight) {
                again.push_back(r);
            }
        }
        held = again;
        if group.requests.is_empty() {
            // Everything waiting shares a key with a statement in flight.
            drop(slot);
            tokio::select! {
                _ = in_flight.settled.notified() => {}
                r = requests.recv() => match r {
                    Some(r) => held.push_back(r),
                    None => return,
                },
            }
            continue;
        }
        let deadline = started + config.window;
        while group.requests.len() < max && !config.window.is_zero() {
            let next = tokio::select! {
                r = requests.recv() => r,
                _ = tokio::time::sleep_until(deadline) => None,
            };
            let Some(r) = next else { break };
            if let Some(r) = group.try_push(r, max, &in_flight) {
                held.push_back(r);
            }
        }
        waiting.fetch_sub(group.requests.len() as u64, Ordering::SeqCst);
        let (single, counters) = (single.clone(), counters.clone());
        tokio::spawn(async move {
            write_group(&single, group.requests, &counters).await;
            drop(slot);
        });
    }
}

async fn write_group(single: &PgEventStore, requests: Vec<Request>, counters: &Counters) {
    if requests.len() == 1 {
        counters.alone.fetch_add(1, Ordering::Relaxed);
        for r in requests {
            let outcome = single.append_alone(&r.batch, r.guard).await;
            let _ = r.reply.send(outcome);
        }
        return;
    }
    match append_group(single, &requests).await {
        Ok(outcomes) => {
            counters.group_statements.fetch_add(1, Ordering::Relaxed);
            counters
                .grouped_appends
                .fetch_add(outcomes.len() as u64, Ordering::Relaxed);
            if outcomes
                .iter()
                .any(|o| o.as_ref().is_ok_and(|o| o.stored() > 0))
            {
                single.appended();
            }
            for (r, outcome) in requests.into_iter().zip(outcomes) {
                let _ = r.reply.send(outcome);
            }
        }
        Err(e) => {
            counters.fallbacks.fetch_add(1, Ordering::Relaxed);
            // One by one: an append the failed statement did write is a
            // duplicate now, and is answered as stored-before.
            tracing::debug!(error = %e, appends = requests.len(), "a grouped append failed as a whole; writing each alone");
            let answers = requests.into_iter().map(|r| async move {
                let outcome = single.append_alone(&r.batch, r.guard).await;
                let _ = r.reply.send(outcome);
            });
            futures_util::future::join_all(answers).await;
        }
    }
}

/// One statement for the group; an outcome per append (a conflict is that
/// append's alone).
async fn append_group(
    store: &PgEventStore,
    requests: &[Request],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
    let recorded_at = store.clock().now();
    let mut groups: Vec<i32> = vec![];
    let mut fresh = vec![];
    let (mut part_groups, mut part_streams, mut part_required) = (vec![], vec![], vec![]);
    let (mut guard_groups, mut guards) = (vec![], vec![]);
    for (n, r) in requests.iter().enumerate() {
        let g = i32::try_from(n).unwrap_or(i32::MAX);
        // The same id twice in one append is stored once, like any duplicate.
        let mut seen = HashSet::new();
        for part in &r.batch {
            for e in &part.events {
                if seen.insert(e.event_id) {
                    groups.push(g);
                    fresh.push((part, e));
                }
            }
            part_groups.push(g);
            part_streams.push(part.stream.as_str());
            part_required.push(part.expected.required());
        }
        guard_groups.push(g);
        guards.push(r.guard);
    }
    let c = EventColumns::of(&fresh)?;
    let client = store.pool().get().await?;
    let one_event_per_stream = requests
        .iter()
        .all(|r| r.batch.iter().all(|p| p.events.len() == 1));
    let required: Vec<Option<i64>> = fresh.iter().map(|(p, _)| p.expected.required()).collect();
    // Both statements take the events first and the guards last; between
    // them, the one-event-per-stream shape takes each event's required
    // version, the general one its streams with theirs.
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
        &groups,
        &c.streams,
        &c.ids,
        &c.types,
        &c.payloads,
        &c.metadata,
    ];
    let sql = if one_event_per_stream {
        params.push(&required);
        APPEND_GROUP_EACH_SQL
    } else {
        params.extend([
            &part_groups as &(dyn tokio_postgres::types::ToSql + Sync),
            &part_streams,
            &part_required,
        ]);
        APPEND_GROUP_SQL
    };
    params.extend([
        &guard_groups as &(dyn tokio_postgres::types::ToSql + Sync),
        &guards,
        &recorded_at,
    ]);
    let statement = client.prepare_cached(sql).await?;
    let rows = client.query(&statement, &params).await?;
    Ok(requests
        .iter()
        .enumerate()
        .map(|(n, r)| {
            let g = i32::try_from(n).unwrap_or(i32::MAX);
            let mine: Vec<&tokio_postgres::Row> = rows
                .iter()
                .filter(|row| row.get::<_, i32>("grp") == g)
                .collect();
            outcome_from_rows(&r.batch, &mine)
        })
        .collect())
}
