//! Keeps projections current: reads the gap-safe order from each
//! projection's checkpoint, applies a batch and stores the checkpoint in the
//! same transaction. One process at a time per projection and batch (a
//! transaction-scoped advisory lock), so a second worker simply finds the
//! lock taken, and takes over the moment the first one dies.

use crate::feed::{self, FeedError};
use crate::projection::{Projection, ProjectionRows};
pub use crate::rebuild::{
    memory_budget, rebuild, rebuild_many, rebuild_many_reporting, rebuild_many_within,
    set_memory_budget, RebuildReport, DEFAULT_MEMORY_BUDGET,
};
use crate::states::ProjectionState;
use deadpool_postgres::{Object, Pool};
use payledger_events::{Checkpoint, DomainEvent, RecordedEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error("projection {0} is not installed")]
    NotInstalled(String),
    #[error("writing a batch's rows failed: {0}")]
    BatchRejected(String),
    #[error("rebuilding {projection} stopped at position {position}: {reason}")]
    RebuildStopped {
        projection: String,
        position: i64,
        reason: String,
    },
}

/// What one step of a projection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Applied a batch of this many events (handled or not).
    Applied(usize),
    /// Caught up with the readable head.
    Idle,
    /// Another worker holds this projection right now.
    Busy,
    /// Stopped on a poison event; see `projections status`.
    Stopped,
}

pub(crate) fn lock_key(name: &str) -> i64 {
    // A stable 63-bit key per projection name (FNV-1a).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 1) as i64
}

pub fn schema_name(name: &str, generation: i32) -> String {
    format!("pl_{name}_g{generation}")
}

/// Creates the projection's first generation and its public views, or, if
/// the stored version differs from the code's, rebuilds it.
pub async fn install(
    pool: &Pool,
    projection: &dyn Projection,
    batch: i64,
) -> Result<(), RunnerError> {
    if projection.shares_ledger() {
        Box::pin(install_one(pool, &crate::group::SharedLedger, batch)).await?;
        if group_left_alone(pool).await? {
            // An upgrade from before the group: one fold of the group
            // instead of one rebuild per member, the first of which would
            // walk the ledger through the whole log live.
            tracing::info!(
                "no projection runs at the shared ledger's checkpoint; rebuilding the group once"
            );
            match Box::pin(rebuild(pool, &crate::group::SharedLedger, batch)).await {
                Ok(_) => {}
                // Each member then rejoins alone and stops where it must.
                Err(RunnerError::RebuildStopped {
                    position, reason, ..
                }) => {
                    tracing::error!(position, %reason, "rebuilding the group stopped; its members rejoin one by one")
                }
                Err(e) => return Err(e),
            }
        }
        install_one(pool, projection, batch).await?;
        // New beside a ledger that has moved on, or from before the group
        // (an upgrade): it joins by a rebuild.
        // (A stopped one rejoins when `resume_stopped` retries it.)
        if !in_lockstep(pool, projection.name()).await? && !is_stopped(pool, projection).await? {
            rejoin(pool, projection, batch).await?;
        }
        return Ok(());
    }
    install_one(pool, projection, batch).await
}

/// Whether the running shared ledger is behind the log's head while every
/// installed member is elsewhere (a database from before the group): no
/// one would fold it live, and each member's rejoin would walk it first.
async fn group_left_alone(pool: &Pool) -> Result<bool, RunnerError> {
    let client = pool.get().await?;
    let head = feed::head(&client).await?;
    let members: Vec<&str> = crate::group::sharing().iter().map(|p| p.name()).collect();
    let row = client
        .query_opt(
            "SELECT EXISTS (SELECT 1 FROM projection_state m WHERE m.name = ANY($2))
                    AND NOT EXISTS (SELECT 1 FROM projection_state m
                                WHERE m.name = ANY($2)
                                  AND (m.checkpoint_tx, m.checkpoint_pos) = (l.checkpoint_tx, l.checkpoint_pos))
                    AND (l.checkpoint_tx, l.checkpoint_pos) < ($3, $4)
             FROM projection_state l WHERE l.name = $1 AND l.status = $5",
            &[
                &crate::group::SHARED_LEDGER,
                &members,
                &head.transaction_id,
                &head.position,
                &ProjectionState::Running.as_str(),
            ],
        )
        .await?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// Whether `name` runs at the shared ledger's checkpoint (stopped or not).
async fn in_lockstep(pool: &Pool, name: &str) -> Result<bool, RunnerError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT (m.checkpoint_tx, m.checkpoint_pos) = (l.checkpoint_tx, l.checkpoint_pos)
             FROM projection_state m, projection_state l WHERE m.name = $1 AND l.name = $2",
            &[&name, &crate::group::SHARED_LEDGER],
        )
        .await?;
    Ok(row.is_some_and(|r| r.get(0)))
}

async fn install_one(
    pool: &Pool,
    projection: &dyn Projection,
    batch: i64,
) -> Result<(), RunnerError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key(projection.name())],
    )
    .await?;
    let state = tx
        .query_opt(
            "SELECT version FROM projection_state WHERE name = $1",
            &[&projection.name()],
        )
        .await?;
    match state {
        None => {
            create_generation(&tx, projection, 1).await?;
            point_views(&tx, projection, 1).await?;
            tx.execute(
                "INSERT INTO projection_state (name, version, generation) VALUES ($1, $2, 1)",
                &[&projection.name(), &projection.version()],
            )
            .await?;
            tx.commit().await?;
        }
        Some(row) if row.get::<_, i32>(0) != projection.version() => {
            tx.commit().await?;
            drop(client);
            tracing::info!(
                projection = projection.name(),
                "version changed; rebuilding"
            );
            rebuild(pool, projection, batch).await?;
        }
        Some(_) => tx.commit().await?,
    }
    Ok(())
}

pub(crate) async fn create_generation(
    tx: &tokio_postgres::Transaction<'_>,
    projection: &dyn Projection,
    generation: i32,
) -> Result<(), RunnerError> {
    let schema = schema_name(projection.name(), generation);
    tx.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET LOCAL search_path = {schema};
         {ddl}
         SET LOCAL search_path = public;
         GRANT USAGE ON SCHEMA {schema} TO payledger_auditor;
         GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO payledger_auditor;",
        ddl = projection.schema_sql()
    ))
    .await?;
    Ok(())
}

pub(crate) async fn point_views(
    tx: &tokio_postgres::Transaction<'_>,
    projection: &dyn Projection,
    generation: i32,
) -> Result<(), RunnerError> {
    let schema = schema_name(projection.name(), generation);
    for table in projection.public_tables() {
        // Replacing keeps the view's identity, so a reader blocked on it
        // during the swap simply reads the new generation. Only when the
        // columns changed (a new version) must it be dropped and recreated.
        tx.batch_execute("SAVEPOINT point_view").await?;
        let replaced = tx
            .batch_execute(&format!(
                "CREATE OR REPLACE VIEW public.{table} AS SELECT * FROM {schema}.{table}"
            ))
            .await;
        if replaced.is_err() {
            tx.batch_execute(&format!(
                "ROLLBACK TO SAVEPOINT point_view;
                 DROP VIEW IF EXISTS public.{table} CASCADE; CREATE VIEW public.{table} AS SELECT * FROM {schema}.{table};"
            ))
            .await?;
        }
        tx.batch_execute(&format!(
            "RELEASE SAVEPOINT point_view; GRANT SELECT ON public.{table} TO payledger_auditor;"
        ))
        .await?;
    }
    // Views built on the public ones (a CASCADE above may have dropped them).
    if !projection.public_sql().is_empty() {
        tx.batch_execute(projection.public_sql()).await?;
    }
    Ok(())
}

/// The server's own words for a database error ("db error" says nothing).
fn why(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Runs a rule, turning a panic into the reason a projection stops: a rule
/// that panics on one event would panic again on every retry, and must stop
/// its projection visibly instead of killing the worker's task silently.
pub(crate) async fn caught<T>(rule: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(rule)
        .catch_unwind()
        .await
        .map_err(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            format!("the rule panicked: {message}")
        })
}

/// The events applied to `rehearsal` (empty rows that look nothing up)
/// with no database: what the rules look up first-hand (see
/// [`crate::table::Wanted`]). A rule that fails or panics on rows it cannot
/// see only makes the prefetch smaller: the real application decides. The
/// rehearsal's rows are forgotten after.
pub(crate) async fn rehearse(
    rehearsal: &mut dyn ProjectionRows,
    events: &[(&RecordedEvent, &DomainEvent)],
) -> crate::table::Wanted {
    for &(event, decoded) in events {
        if !matches!(
            caught(rehearsal.apply(None, event, decoded)).await,
            Ok(Ok(()))
        ) {
            break;
        }
    }
    let wanted = rehearsal.wanted();
    rehearsal.evict();
    wanted
}

/// Every read of a projection's rules is by key or indexed column, but a
/// prefetch's `= ANY($1)` was planned as a scan of the whole table testing
/// each row against every key: while a burst grows a table faster than its
/// statistics (3 ms for 100 keys of 10,000 rows, 0.4 through the index),
/// and always on a generation being rebuilt, which has none (500 ms a
/// prefetch). The index it is.
pub(crate) const KEYED_READS: &str =
    "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off";

/// Where a batch failed for good: the event, its type and why.
type Poison = (i64, String, String);

/// Applies `events` to the schema of `generation` inside `tx`: the rows
/// come from the generation as needed and the changed ones are written
/// back before the caller moves the checkpoint. A database error with a SQL
/// state is deterministic (it would fail again): poison.
pub(crate) async fn apply_batch(
    tx: &deadpool_postgres::Transaction<'_>,
    projection: &dyn Projection,
    generation: i32,
    events: &[payledger_events::RecordedEvent],
) -> Result<Result<(), Poison>, RunnerError> {
    tx.batch_execute(&format!(
        "SET LOCAL search_path = {}, public; {KEYED_READS}",
        schema_name(projection.name(), generation)
    ))
    .await?;
    let mut decoded = Vec::with_capacity(events.len());
    for event in events {
        if !projection.handles(&event.event_type) {
            continue;
        }
        match event.decode() {
            Ok(d) => decoded.push((event, d)),
            Err(e) => {
                return Ok(Err((
                    event.position,
                    event.event_type.clone(),
                    e.to_string(),
                )))
            }
        }
    }
    let mut rehearsal = projection.rows();
    rehearsal.rehearse();
    let wanted = rehearse(
        rehearsal.as_mut(),
        &decoded.iter().map(|(e, d)| (*e, d)).collect::<Vec<_>>(),
    )
    .await;
    let mut rows = projection.rows();
    rows.prefetch(tx, &wanted).await?;
    for (event, decoded) in &decoded {
        let poison = |reason: String| Ok(Err((event.position, event.event_type.clone(), reason)));
        match caught(rows.apply(Some(tx), event, decoded)).await {
            Err(panic) => return poison(panic),
            Ok(Err(e)) if e.as_db_error().is_some() => return poison(why(&e)),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(())) => {}
        }
    }
    if let Err(e) = rows.flush(tx).await {
        if let (Some(last), Some(_)) = (events.last(), e.as_db_error()) {
            if events.len() == 1 {
                return Ok(Err((last.position, last.event_type.clone(), why(&e))));
            }
            return Err(RunnerError::BatchRejected(e.to_string()));
        }
        return Err(e.into());
    }
    Ok(Ok(()))
}

/// One batch of one projection. A projection that shares the ledger runs
/// in its group: this steps the group (unless that projection is stopped).
pub async fn step(
    client: &mut Object,
    projection: &dyn Projection,
    batch: i64,
) -> Result<Step, RunnerError> {
    if projection.shares_ledger() {
        let status: String = client
            .query_opt(
                "SELECT status FROM projection_state WHERE name = $1",
                &[&projection.name()],
            )
            .await?
            .ok_or_else(|| RunnerError::NotInstalled(projection.name().into()))?
            .get(0);
        if status == ProjectionState::Stopped.as_str() {
            return Ok(Step::Stopped);
        }
        return crate::lockstep::step_group(client, batch).await;
    }
    match step_once(client, projection, batch).await {
        // Writing the batch's rows failed for good: go one event at a time,
        // so the event that causes it is the one that stops the projection.
        Err(RunnerError::BatchRejected(reason)) => {
            tracing::warn!(projection = projection.name(), %reason, "batch rejected; retrying one event at a time");
            step_once(client, projection, 1).await
        }
        other => other,
    }
}

async fn step_once(
    client: &mut Object,
    projection: &dyn Projection,
    batch: i64,
) -> Result<Step, RunnerError> {
    let tx = client.transaction().await?;
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1)",
            &[&lock_key(projection.name())],
        )
        .await?
        .get(0);
    if !locked {
        return Ok(Step::Busy);
    }
    let state = tx
        .query_opt(
            "SELECT generation, checkpoint_tx, checkpoint_pos, status FROM projection_state WHERE name = $1",
            &[&projection.name()],
        )
        .await?
        .ok_or_else(|| RunnerError::NotInstalled(projection.name().into()))?;
    if state.get::<_, String>(3) == ProjectionState::Stopped.as_str() {
        return Ok(Step::Stopped);
    }
    let generation: i32 = state.get(0);
    let checkpoint = Checkpoint {
        transaction_id: state.get(1),
        position: state.get(2),
    };
    let unread = crate::projection::unread_types(&[projection]);
    let events = feed::read_after_without(&tx, checkpoint, batch, &unread).await?;
    let Some(last) = events.last().map(|e| e.checkpoint()) else {
        return Ok(Step::Idle);
    };
    // A read model is a function of the log, and its checkpoint commits
    // with its rows: if PostgreSQL crashes before this commit reaches the
    // disk, rows and checkpoint are lost together and the batch is applied
    // again from the log. Waiting for the flush would only cost a WAL sync
    // per batch per projection, the pace of a burst.
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    match apply_batch(&tx, projection, generation, &events).await? {
        Ok(()) => {
            tx.execute(
                "UPDATE projection_state SET checkpoint_tx = $2, checkpoint_pos = $3, updated_at = now() WHERE name = $1",
                &[&projection.name(), &last.transaction_id, &last.position],
            )
            .await?;
            tx.commit().await?;
            metrics_lag_hint(projection.name(), events.len());
            Ok(Step::Applied(events.len()))
        }
        Err((position, event_type, reason)) => {
            drop(tx);
            tracing::error!(projection = projection.name(), position, %event_type, %reason, "poison event: projection stopped");
            client
                .execute(
                    "UPDATE projection_state SET status = $5, last_error = $2, error_position = $3,
                         error_event_type = $4, updated_at = now() WHERE name = $1",
                    &[
                        &projection.name(),
                        &reason,
                        &position,
                        &event_type,
                        &ProjectionState::Stopped.as_str(),
                    ],
                )
                .await?;
            Ok(Step::Stopped)
        }
    }
}

fn metrics_lag_hint(name: &str, applied: usize) {
    tracing::debug!(projection = name, applied, "applied batch");
}

/// How a running projection paces its batches.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The most events per transaction.
    pub batch: i64,
    /// How often to look for events when no wake-up comes.
    pub poll: Duration,
    /// After a batch smaller than `batch`, how long to let more events
    /// gather before the next: each batch is a transaction per projection,
    /// and a trickle of single events would be one each.
    pub linger: Duration,
}

/// Runs every projection until `stop` turns true: one task each, so a
/// poison event stops only its own projection. `wake` ticks when events may
/// have arrived; `poll` is the fallback.
pub async fn run(
    pool: Pool,
    projections: Vec<Arc<dyn Projection>>,
    batch: i64,
    poll: Duration,
    wake: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) {
    let pace = Pace {
        batch,
        poll,
        linger: Duration::ZERO,
    };
    run_paced(pool, projections, pace, wake, stop).await
}

/// [`run`], with the batches paced by `pace`.
pub async fn run_paced(
    pool: Pool,
    projections: Vec<Arc<dyn Projection>>,
    pace: Pace,
    wake: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) {
    let Pace {
        batch,
        poll,
        linger,
    } = pace;
    let mut tasks = vec![];
    // The members of the ledger's group are stepped together, by one task.
    let mut grouped = false;
    for projection in projections {
        if projection.shares_ledger() {
            if grouped {
                continue;
            }
            grouped = true;
        }
        let (pool, mut wake, mut stop) = (pool.clone(), wake.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                if *stop.borrow() {
                    return;
                }
                let outcome = match pool.get().await {
                    Ok(mut client) if projection.shares_ledger() => {
                        crate::lockstep::step_group(&mut client, batch).await
                    }
                    Ok(mut client) => step(&mut client, projection.as_ref(), batch).await,
                    Err(e) => Err(e.into()),
                };
                match outcome {
                    Ok(Step::Applied(n)) if (n as i64) < batch && !linger.is_zero() => {
                        tokio::select! {
                            _ = tokio::time::sleep(linger) => {}
                            _ = stop.changed() => {}
                        }
                        continue;
                    }
                    Ok(Step::Applied(_)) => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(projection = projection.name(), error = %e, "projection step failed; retrying"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = wake.changed() => {}
                    _ = stop.changed() => {}
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// On start, a projection stopped by a poison event gets another try: the
/// code may have been fixed. It resumes from the event it stopped on.
/// A member of the ledger's group that the group left behind rejoins by a
/// rebuild (docs/projections.md); if that stops at an event, the member
/// stays stopped there.
pub async fn resume_stopped(pool: &Pool) -> Result<u64, RunnerError> {
    let resumed = {
        let client = pool.get().await?;
        client
            .execute(
                "UPDATE projection_state SET status = $1, updated_at = now() WHERE status = $2",
                &[
                    &ProjectionState::Running.as_str(),
                    &ProjectionState::Stopped.as_str(),
                ],
            )
            .await?
    };
    for member in crate::group::sharing() {
        let installed = pool
            .get()
            .await?
            .query_opt(
                "SELECT 1 FROM projection_state WHERE name = $1",
                &[&member.name()],
            )
            .await?
            .is_some();
        if !installed || in_lockstep(pool, member.name()).await? {
            continue;
        }
        rejoin(pool, member.as_ref(), REJOIN_BATCH).await?;
    }
    Ok(resumed)
}

async fn is_stopped(pool: &Pool, projection: &dyn Projection) -> Result<bool, RunnerError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            "SELECT 1 FROM projection_state WHERE name = $1 AND status = $2",
            &[&projection.name(), &ProjectionState::Stopped.as_str()],
        )
        .await?
        .is_some())
}

/// A member the group left behind (or new beside it) rebuilds to join it;
/// if the rebuild stops at an event, the member stays stopped there, as a
/// live batch would have left it.
async fn rejoin(pool: &Pool, member: &dyn Projection, batch: i64) -> Result<(), RunnerError> {
    tracing::info!(
        projection = member.name(),
        "not at the shared ledger's checkpoint; rebuilding to join it"
    );
    match rebuild(pool, member, batch).await {
        Ok(_) => {
            tracing::info!(projection = member.name(), "joined the shared ledger");
            Ok(())
        }
        Err(RunnerError::RebuildStopped {
            position, reason, ..
        }) => {
            tracing::error!(projection = member.name(), position, %reason, "rebuilding to rejoin stopped: projection stays stopped");
            let client = pool.get().await?;
            client
                .execute(
                    "UPDATE projection_state SET status = $4, last_error = $2, error_position = $3,
                         error_event_type = (SELECT event_type FROM events WHERE position = $3),
                         updated_at = now()
                     WHERE name = $1",
                    &[
                        &member.name(),
                        &reason,
                        &position,
                        &ProjectionState::Stopped.as_str(),
                    ],
                )
                .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Events per batch while a member rebuilt to rejoin catches up.
const REJOIN_BATCH: i64 = 500;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub name: String,
    pub version: i32,
    pub generation: i32,
    pub checkpoint: Checkpoint,
    pub head: Checkpoint,
    /// Readable events after the checkpoint.
    pub lag: i64,
    pub state: ProjectionState,
    pub last_error: Option<String>,
    pub error_position: Option<i64>,
}

/// A projection that stopped at an event it could not apply.
#[derive(Debug, Clone)]
pub struct Stopped {
    pub name: String,
    pub position: Option<i64>,
    pub event_type: Option<String>,
    pub error: Option<String>,
}

/// The stopped projections, by name (cheap: no lag count).
pub async fn stopped(pool: &Pool) -> Result<Vec<Stopped>, RunnerError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT name, error_position, error_event_type, last_error FROM projection_state WHERE status = $1 ORDER BY name",
            &[&ProjectionState::Stopped.as_str()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Stopped {
            name: r.get(0),
            position: r.get(1),
            event_type: r.get(2),
            error: r.get(3),
        })
        .collect())
}

pub async fn status(pool: &Pool) -> Result<Vec<Status>, RunnerError> {
    let client = pool.get().await?;
    let head = feed::head(&client).await?;
    let rows = client
        .query(
            "SELECT s.name, s.version, s.generation, s.checkpoint_tx, s.checkpoint_pos, s.status, s.last_error, s.error_position,
                    (SELECT count(*) FROM events e
                      WHERE (e.transaction_id, e.position) > (s.checkpoint_tx, s.checkpoint_pos)
                        AND (e.transaction_id, e.position) <= ($1, $2)) AS lag
             FROM projection_state s ORDER BY s.name",
            &[&head.transaction_id, &head.position],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Status {
            name: r.get(0),
            version: r.get(1),
            generation: r.get(2),
            checkpoint: Checkpoint {
                transaction_id: r.get(3),
                position: r.get(4),
            },
            head,
            lag: r.get(8),
            // A status this code does not know is not one it runs.
            state: r
                .get::<_, String>(5)
                .parse()
                .unwrap_or(ProjectionState::Stopped),
            last_error: r.get(6),
            error_position: r.get(7),
        })
        .collect())
}
