//! Rebuilding read models from the log. The fresh generation's tables are
//! empty, so a projection's rows need no lookups: the log is read once,
//! each event decoded once, and every projection folds it in memory in its
//! own task; each then writes its rows with binary `COPY` on its own
//! connection. Only the swap — catch up what arrived meanwhile, repoint the
//! views, move the checkpoint — takes the projection's lock, one at a time.

use crate::feed;
use crate::group::{sharing, GroupRows, SharedLedger, SHARED_LEDGER};
use crate::lockstep::{advance_group, apply_group_batch, group_lock};
use crate::projection::{Projection, ProjectionRows};
use crate::runner::{
    apply_batch, create_generation, lock_key, point_views, schema_name, RunnerError,
};
use crate::states::ProjectionState;
use crate::table::Db;
use deadpool_postgres::{Object, Pool};
use payledger_events::{Checkpoint, DomainEvent, RecordedEvent};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The most events read per page while folding the log in memory.
const REBUILD_PAGE: i64 = 5_000;
/// About what one read and decoded event takes, and how many pages can be
/// alive at once (the reader's, and two queued per fold task — shared).
const EVENT_BYTES: usize = 2_048;
const PAGES_IN_MEMORY: usize = 4;

/// The part of what is left for rows that the rows' *estimated* bytes may
/// take: the estimate counts the rows, keys and index entries, not the
/// hash tables' spare room or what the allocator keeps after an eviction.
/// Measured over 1,037,171 events in 512 MB: peak RSS 835 MB with the
/// estimate given all of it (the bound is the budget + 200 MB).
const ROWS_ESTIMATE_SHARE: (usize, usize) = (2, 3);

/// Pages get smaller with the budget, so that at most half of it goes to
/// pages and the rest to rows.
fn page_events(budget: usize) -> i64 {
    let fits = budget / (2 * PAGES_IN_MEMORY * EVENT_BYTES);
    i64::try_from(fits)
        .unwrap_or(REBUILD_PAGE)
        .clamp(100, REBUILD_PAGE)
}

/// A page of the log as every fold task sees it: each event with its
/// decoded form (or why it does not decode) when some projection handles it.
type Page = Vec<(RecordedEvent, Option<Result<DomainEvent, String>>)>;

/// Rebuilds a projection from position 0 into a fresh generation while the
/// live one keeps serving, then swaps the views and the checkpoint in one
/// transaction. Returns the number of events read.
pub async fn rebuild(
    pool: &Pool,
    projection: &dyn Projection,
    batch: i64,
) -> Result<u64, RunnerError> {
    rebuild_many(pool, &[projection], batch).await
}

/// Rebuilds several projections from one read of the log.
pub async fn rebuild_many(
    pool: &Pool,
    projections: &[&dyn Projection],
    batch: i64,
) -> Result<u64, RunnerError> {
    rebuild_many_reporting(pool, projections, batch, &|_| {}).await
}

/// How far a rebuild has read: the position of the last event read, after
/// each page (a terminal shows it as a progress bar).
pub type RebuildProgress<'a> = dyn Fn(Checkpoint) + Send + Sync + 'a;

/// What a rebuild may hold in memory unless told otherwise
/// (`PAYLEDGER_REBUILD_MEMORY`).
pub const DEFAULT_MEMORY_BUDGET: usize = 512 * 1024 * 1024;

static MEMORY_BUDGET: AtomicUsize = AtomicUsize::new(DEFAULT_MEMORY_BUDGET);

/// Sets the budget of every later rebuild in this process (start-up reads
/// `PAYLEDGER_REBUILD_MEMORY`; `work` rebuilds when a version changes).
pub fn set_memory_budget(bytes: usize) {
    MEMORY_BUDGET.store(bytes, Ordering::Relaxed);
}

pub fn memory_budget() -> usize {
    MEMORY_BUDGET.load(Ordering::Relaxed)
}

/// [`rebuild_many`], telling `progress` after each page it reads.
pub async fn rebuild_many_reporting(
    pool: &Pool,
    projections: &[&dyn Projection],
    batch: i64,
    progress: &RebuildProgress<'_>,
) -> Result<u64, RunnerError> {
    rebuild_many_within(pool, projections, batch, memory_budget(), progress)
        .await
        .map(|r| r.read)
}

/// What a rebuild did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    /// Events read.
    pub read: u64,
    /// Times a projection's rows were written early to stay in budget.
    pub spills: u32,
    /// The most bytes of rows one projection held at once (estimated).
    pub peak_rows_bytes: usize,
    /// What each projection may hold.
    pub share_bytes: usize,
}

/// [`rebuild_many_reporting`] holding about `budget` bytes of rows at most:
/// the pages being read take what the fold tasks may not (about four
/// pages), the rest is shared between the projections. A projection whose
/// rows outgrow its share writes them to its new tables and forgets them,
/// reading back the ones it needs again — slower, never larger.
pub async fn rebuild_many_within(
    pool: &Pool,
    projections: &[&dyn Projection],
    batch: i64,
    budget: usize,
    progress: &RebuildProgress<'_>,
) -> Result<RebuildReport, RunnerError> {
    let mut client = pool.get().await?;
    let jobs = plan_jobs(projections);
    let mut generations = vec![];
    for job in &jobs {
        let mut mine = vec![];
        for projection in job.projections() {
            let tx = client.transaction().await?;
            let current: Option<i32> = tx
                .query_opt(
                    "SELECT generation FROM projection_state WHERE name = $1",
                    &[&projection.name()],
                )
                .await?
                .map(|r| r.get(0));
            let next = current.unwrap_or(0) + 1;
            create_generation(&tx, projection, next).await?;
            tx.commit().await?;
            mine.push(next);
        }
        generations.push(mine);
    }
    let started = std::time::Instant::now();
    let page = page_events(budget);
    let pages_bytes = PAGES_IN_MEMORY * EVENT_BYTES * usize::try_from(page).unwrap_or(0);
    let share = budget.saturating_sub(pages_bytes) * ROWS_ESTIMATE_SHARE.0
        / ROWS_ESTIMATE_SHARE.1
        / jobs.len().max(1);
    let mut pages = vec![];
    let mut tasks = vec![];
    for (job, mine) in jobs.iter().zip(&generations) {
        let (send, receive) = mpsc::channel::<(Arc<Page>, Vec<usize>)>(2);
        pages.push(send);
        let schemas: Vec<String> = job
            .projections()
            .iter()
            .zip(mine)
            .map(|(p, g)| schema_name(p.name(), *g))
            .collect();
        let (rows, rehearsal) = job.rows(&schemas);
        tasks.push(tokio::spawn(fold_and_write(
            pool.clone(),
            job.reader().name(),
            rows,
            rehearsal,
            receive,
            schemas,
            share,
        )));
    }
    let readers: Vec<&dyn Projection> = jobs.iter().map(|j| j.reader()).collect();
    let (checkpoint, mut read) = read_into(&mut client, &readers, &pages, page, progress).await?;
    drop(pages);
    let mut report = RebuildReport {
        share_bytes: share,
        ..RebuildReport::default()
    };
    for task in tasks {
        let (spills, peak) = task.await.map_err(|e| RunnerError::RebuildStopped {
            projection: "rebuild".into(),
            position: checkpoint.position,
            reason: e.to_string(),
        })??;
        report.spills += spills;
        report.peak_rows_bytes = report.peak_rows_bytes.max(peak);
    }
    tracing::info!(
        events = read,
        seconds = started.elapsed().as_secs_f64(),
        "rebuild: log folded and rows written"
    );
    for (job, mine) in jobs.iter().zip(generations) {
        read += match job {
            Job::Alone(p) if p.shares_ledger() => {
                swap_member_in(&mut client, *p, mine[0], checkpoint, batch).await?
            }
            Job::Alone(p) => swap_in(&mut client, *p, mine[0], checkpoint, batch).await?,
            Job::Group(members) => {
                swap_group_in(&mut client, members, &mine, checkpoint, batch).await?
            }
        };
    }
    report.read = read;
    Ok(report)
}

/// What one fold task rebuilds: a projection on its own, or the shared
/// ledger with every projection that shares it (one fold of the payment
/// rules, one copy of the ledger's rows).
enum Job<'a> {
    Alone(&'a dyn Projection),
    Group(Vec<Arc<dyn Projection>>),
}

impl Job<'_> {
    /// The projections it writes; a group's ledger first.
    fn projections(&self) -> Vec<&dyn Projection> {
        match self {
            Job::Alone(p) => vec![*p],
            Job::Group(members) => {
                let mut all: Vec<&dyn Projection> = vec![&SharedLedger];
                all.extend(members.iter().map(|m| m.as_ref()));
                all
            }
        }
    }

    /// Whose event types the task reads.
    fn reader(&self) -> &dyn Projection {
        match self {
            Job::Alone(p) => *p,
            Job::Group(_) => &SharedLedger,
        }
    }

    /// Empty rows to fold into, and a rehearsal of them, in `schemas`.
    fn rows(&self, schemas: &[String]) -> (Box<dyn ProjectionRows>, Box<dyn ProjectionRows>) {
        let make = || -> Box<dyn ProjectionRows> {
            match self {
                Job::Alone(p) => p.rows(),
                Job::Group(members) => {
                    Box::new(GroupRows::in_schemas(members, &schemas[0], &schemas[1..]))
                }
            }
        };
        let mut rows = make();
        rows.in_memory_only();
        let mut rehearsal = make();
        rehearsal.rehearse();
        (rows, rehearsal)
    }
}

/// Every projection that shares the ledger, rebuilt together, is one job
/// (so is the ledger asked for alone); any other projection is its own.
fn plan_jobs<'a>(projections: &[&'a dyn Projection]) -> Vec<Job<'a>> {
    let named = |name: &str| projections.iter().any(|p| p.name() == name);
    let sharing = sharing();
    let together = named(SHARED_LEDGER) || sharing.iter().all(|s| named(s.name()));
    let mut jobs = vec![];
    if together {
        jobs.push(Job::Group(sharing));
    }
    for p in projections {
        if p.name() == SHARED_LEDGER || (together && p.shares_ledger()) {
            continue;
        }
        jobs.push(Job::Alone(*p));
    }
    jobs
}

/// Reads the log to its readable end, decoding each event once, and hands
/// every page to each fold task with the indexes of the events it handles.
/// Returns where it stopped and how many events it read.
async fn read_into(
    client: &mut Object,
    projections: &[&dyn Projection],
    pages: &[mpsc::Sender<(Arc<Page>, Vec<usize>)>],
    page_events: i64,
    progress: &RebuildProgress<'_>,
) -> Result<(Checkpoint, u64), RunnerError> {
    let mut checkpoint = Checkpoint::START;
    let mut read = 0u64;
    let unread = crate::projection::unread_types(projections);
    loop {
        let events = {
            let tx = client.transaction().await?;
            let events = feed::read_after_without(&tx, checkpoint, page_events, &unread).await?;
            tx.commit().await?;
            events
        };
        let Some(last) = events.last().map(|e| e.checkpoint()) else {
            break;
        };
        let n = events.len();
        let mut handled = vec![vec![]; projections.len()];
        let page: Page = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| {
                let mut wanted = false;
                for (p, projection) in projections.iter().enumerate() {
                    if projection.handles(&event.event_type) {
                        handled[p].push(i);
                        wanted = true;
                    }
                }
                let decoded = wanted.then(|| event.decode().map_err(|e| e.to_string()));
                (event, decoded)
            })
            .collect();
        let page = Arc::new(page);
        for (send, handled) in pages.iter().zip(handled) {
            // A task that stopped has dropped its receiver; its error is
            // what the caller reports.
            if send.send((page.clone(), handled)).await.is_err() {
                return Ok((last, read));
            }
        }
        read += n as u64;
        checkpoint = last;
        progress(checkpoint);
        if (n as i64) < page_events {
            break;
        }
    }
    Ok((checkpoint, read))
}

/// Applies the events of a page this projection handles; `db` is where
/// rows not in memory are (`None`: nowhere yet).
async fn fold_page(
    name: &'static str,
    rows: &mut Box<dyn ProjectionRows>,
    db: Db<'_>,
    page: &Page,
    handled: &[usize],
) -> Result<(), RunnerError> {
    for &i in handled {
        let (event, decoded) = &page[i];
        let stopped = |reason: String| RunnerError::RebuildStopped {
            projection: if name == SHARED_LEDGER {
                crate::group::concerned(&event.event_type)
            } else {
                name.into()
            },
            position: event.position,
            reason,
        };
        match decoded {
            Some(Ok(decoded)) => crate::runner::caught(rows.apply(db, event, decoded))
                .await
                .map_err(&stopped)?
                .map_err(|e| stopped(e.to_string()))?,
            Some(Err(reason)) => return Err(stopped(reason.clone())),
            None => {}
        }
    }
    Ok(())
}

/// One projection's share of a rebuild: folds the pages in memory, then
/// writes every row into the new generation and analyzes it. Rows that
/// outgrow `budget` are written early and forgotten; from then on the fold
/// reads back from the new tables what it no longer holds, as a live batch
/// does (the same rules over the same rows: guarantee 5 holds either way).
async fn fold_and_write(
    pool: Pool,
    name: &'static str,
    mut rows: Box<dyn ProjectionRows>,
    mut rehearsal: Box<dyn ProjectionRows>,
    mut pages: mpsc::Receiver<(Arc<Page>, Vec<usize>)>,
    schemas: Vec<String>,
    budget: usize,
) -> Result<(u32, usize), RunnerError> {
    // A group's statements name their schemas; one projection's use this.
    let schema = schemas.first().cloned().unwrap_or_default();
    let search_path = format!(
        "SET LOCAL search_path = {schema}, public; {}",
        crate::runner::KEYED_READS
    );
    let started = std::time::Instant::now();
    let mut spilled: Option<Object> = None;
    let (mut spills, mut peak) = (0u32, 0usize);
    while let Some((page, handled)) = pages.recv().await {
        match spilled.as_mut() {
            None => {
                fold_page(name, &mut rows, None, &page, &handled).await?;
                peak = peak.max(rows.resident_bytes());
                if rows.resident_bytes() > budget {
                    let mut client = pool.get().await?;
                    let tx = client.transaction().await?;
                    tx.batch_execute(&search_path).await?;
                    rows.copy_into(&tx).await?;
                    tx.commit().await?;
                    free_rows(&mut rows, budget);
                    rows.track_changes();
                    spilled = Some(client);
                    spills += 1;
                }
            }
            Some(client) => {
                let tx = client.transaction().await?;
                tx.batch_execute(&search_path).await?;
                let events: Vec<_> = handled
                    .iter()
                    .filter_map(|&i| match &page[i] {
                        (event, Some(Ok(decoded))) => Some((event, decoded)),
                        _ => None,
                    })
                    .collect();
                let wanted = crate::runner::rehearse(rehearsal.as_mut(), &events).await;
                rows.prefetch(&tx, &wanted).await?;
                fold_page(name, &mut rows, Some(&tx), &page, &handled).await?;
                peak = peak.max(rows.resident_bytes());
                if rows.resident_bytes() > budget {
                    rows.flush(&tx).await?;
                    free_rows(&mut rows, budget);
                    spills += 1;
                }
                tx.commit().await?;
            }
        }
    }
    if let Some(mut client) = spilled {
        let tx = client.transaction().await?;
        tx.batch_execute(&search_path).await?;
        rows.flush(&tx).await?;
        tx.commit().await?;
        drop(rows);
        tracing::info!(
            projection = name,
            spills,
            budget_mb = budget / (1024 * 1024),
            "rebuild: rows outgrew the memory budget and were written as it went"
        );
        for schema in &schemas {
            analyze(&client, schema).await?;
        }
        return Ok((spills, peak));
    }
    let fold_s = started.elapsed().as_secs_f64();
    // Each schema's rows on a connection of their own: the server builds
    // one's indexes while another's rows arrive.
    let writers = Arc::new(tokio::sync::Semaphore::new(WRITERS));
    let writes: Vec<_> = rows
        .into_parts()
        .into_iter()
        .zip(schemas)
        .map(|(part, schema)| tokio::spawn(write_part(pool.clone(), writers.clone(), part, schema)))
        .collect();
    let mut written = vec![];
    for write in writes {
        written.push(
            write
                .await
                .map_err(|e| RunnerError::BatchRejected(e.to_string()))??,
        );
    }
    tracing::info!(
        projection = name,
        fold_s,
        write_s = started.elapsed().as_secs_f64() - fold_s,
        copy_s = written.iter().map(|w| w.copy_s).sum::<f64>(),
        indexes_s = written.iter().map(|w| w.indexes_s).sum::<f64>(),
        analyze_s = written.iter().map(|w| w.analyze_s).sum::<f64>(),
        "rebuild: rows written (copy, indexes and analyze summed over the schemas)"
    );
    Ok((spills, peak))
}

/// Schemas of a rebuild written at once; each has a connection and may
/// sort with `maintenance_work_mem` while it builds its indexes.
const WRITERS: usize = 3;

/// Where a rebuild's time goes after the fold, for one schema (seconds).
struct PartWritten {
    copy_s: f64,
    indexes_s: f64,
    analyze_s: f64,
}

/// Writes a folded part into its bare schema with `COPY`, builds the
/// indexes after, and analyzes.
async fn write_part(
    pool: Pool,
    writers: Arc<tokio::sync::Semaphore>,
    mut rows: Box<dyn ProjectionRows>,
    schema: String,
) -> Result<PartWritten, RunnerError> {
    let _turn = writers
        .acquire()
        .await
        .map_err(|e| RunnerError::BatchRejected(e.to_string()))?;
    let started = std::time::Instant::now();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(&format!(
        "SET LOCAL search_path = {schema}, public; SET LOCAL maintenance_work_mem = '256MB'"
    ))
    .await?;
    // A bulk load is faster into bare tables, with the indexes built after.
    let rebuild_indexes = drop_indexes(&tx, &schema).await?;
    rows.copy_into(&tx).await?;
    drop(rows);
    let copy_s = started.elapsed().as_secs_f64();
    tx.batch_execute(&rebuild_indexes).await?;
    tx.commit().await?;
    let indexed = started.elapsed().as_secs_f64();
    analyze(&client, &schema).await?;
    Ok(PartWritten {
        copy_s,
        indexes_s: indexed - copy_s,
        analyze_s: started.elapsed().as_secs_f64() - indexed,
    })
}

/// Frees the rows not used since the last time (written already); all of
/// them when what was used lately alone takes most of the share.
fn free_rows(rows: &mut Box<dyn ProjectionRows>, budget: usize) {
    rows.evict_cold();
    if rows.resident_bytes() > budget / 2 {
        rows.evict();
    }
}

/// Fresh statistics, so the live lookups' plans use the indexes.
async fn analyze(client: &Object, schema: &str) -> Result<(), RunnerError> {
    client
        .batch_execute(&format!(
            "DO $$ DECLARE t text; BEGIN
               FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' LOOP
                 EXECUTE format('ANALYZE %I.%I', '{schema}', t);
               END LOOP; END $$"
        ))
        .await?;
    Ok(())
}

/// Drops the primary keys, unique constraints and indexes of the tables in
/// `schema` (nobody reads a generation being rebuilt) and returns the
/// statements that create them again.
async fn drop_indexes(
    tx: &deadpool_postgres::Transaction<'_>,
    schema: &str,
) -> Result<String, RunnerError> {
    let constraints = tx
        .query(
            "SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid)
             FROM pg_constraint c
             WHERE c.connamespace = $1::text::regnamespace AND c.contype IN ('p', 'u')",
            &[&schema],
        )
        .await?;
    let indexes = tx
        .query(
            "SELECT quote_ident(i.indexname), i.indexdef FROM pg_indexes i
             WHERE i.schemaname = $1 AND NOT EXISTS (
               SELECT 1 FROM pg_constraint c
               WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)",
            &[&schema],
        )
        .await?;
    let (mut drop, mut create) = (String::new(), String::new());
    for r in &indexes {
        let (name, definition): (String, String) = (r.get(0), r.get(1));
        drop.push_str(&format!("DROP INDEX {schema}.{name};"));
        create.push_str(&format!("{definition};"));
    }
    for r in &constraints {
        let (table, name, definition): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        drop.push_str(&format!("ALTER TABLE {table} DROP CONSTRAINT {name};"));
        create.push_str(&format!(
            "ALTER TABLE {table} ADD CONSTRAINT {name} {definition};"
        ));
    }
    tx.batch_execute(&drop).await?;
    Ok(create)
}

/// Waits for the live worker's batch, applies what arrived since
/// `checkpoint`, points the views at the new generation and moves the
/// checkpoint — atomically — then drops the old generation. Returns the
/// number of events applied on the way.
async fn swap_in(
    client: &mut Object,
    projection: &dyn Projection,
    generation: i32,
    mut checkpoint: Checkpoint,
    batch: i64,
) -> Result<u64, RunnerError> {
    let mut read = 0u64;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key(projection.name())],
    )
    .await?;
    while let Some((last, n)) =
        rebuild_batch(&tx, projection, generation, checkpoint, batch).await?
    {
        read += n as u64;
        checkpoint = last;
    }
    tx.batch_execute("SET LOCAL search_path = public").await?;
    point_views(&tx, projection, generation).await?;
    let old = record_swap(&tx, projection, generation, checkpoint).await?;
    tx.commit().await?;
    drop_old(client, projection, old, generation).await?;
    Ok(read)
}

/// The projection now reads and writes `generation`, at `checkpoint`,
/// running; returns the generation it had.
async fn record_swap(
    tx: &deadpool_postgres::Transaction<'_>,
    projection: &dyn Projection,
    generation: i32,
    checkpoint: Checkpoint,
) -> Result<Option<i32>, RunnerError> {
    Ok(tx
        .query_opt(
            "INSERT INTO projection_state (name, version, generation, checkpoint_tx, checkpoint_pos)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET version = $2, generation = $3, checkpoint_tx = $4, checkpoint_pos = $5,
                 status = $6, last_error = NULL, error_position = NULL, error_event_type = NULL, updated_at = now()
             RETURNING (SELECT generation FROM projection_state WHERE name = $1)",
            &[&projection.name(), &projection.version(), &generation, &checkpoint.transaction_id, &checkpoint.position, &ProjectionState::Running.as_str()],
        )
        .await?
        .and_then(|r| r.get(0)))
}

async fn drop_old(
    client: &Object,
    projection: &dyn Projection,
    old: Option<i32>,
    generation: i32,
) -> Result<(), RunnerError> {
    if let Some(old) = old.filter(|g| *g != generation) {
        let schema = schema_name(projection.name(), old);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await?;
    }
    Ok(())
}

/// The group rebuilt together (`generations`: the ledger's, then each
/// member's): under the group's lock it catches up what arrived meanwhile,
/// then every view and checkpoint moves at once.
async fn swap_group_in(
    client: &mut Object,
    members: &[Arc<dyn Projection>],
    generations: &[i32],
    mut checkpoint: Checkpoint,
    batch: i64,
) -> Result<u64, RunnerError> {
    let ledger_generation = generations[0];
    let in_new: Vec<(Arc<dyn Projection>, i32)> = members
        .iter()
        .cloned()
        .zip(generations[1..].iter().copied())
        .collect();
    let mut read = 0u64;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&group_lock()])
        .await?;
    let unread = crate::projection::unread_types(&[&SharedLedger]);
    loop {
        let events = feed::read_after_without(&tx, checkpoint, batch, &unread).await?;
        let Some(last) = events.last().map(|e| e.checkpoint()) else {
            break;
        };
        if let Err(poison) = apply_group_batch(&tx, ledger_generation, &in_new, &events).await? {
            return Err(poison.into());
        }
        read += events.len() as u64;
        checkpoint = last;
    }
    tx.batch_execute("SET LOCAL search_path = public").await?;
    let mut olds = vec![];
    let mut all: Vec<(&dyn Projection, i32)> = vec![(&SharedLedger, ledger_generation)];
    all.extend(in_new.iter().map(|(p, g)| (p.as_ref(), *g)));
    for (projection, generation) in &all {
        point_views(&tx, *projection, *generation).await?;
        olds.push(record_swap(&tx, *projection, *generation, checkpoint).await?);
    }
    tx.commit().await?;
    for ((projection, generation), old) in all.into_iter().zip(olds) {
        drop_old(client, projection, old, generation).await?;
    }
    Ok(read)
}

/// A member rebuilt alone (on its private ledger) joins the group: under
/// the group's lock the group first goes as far as the log does, then the
/// member catches up to exactly the group's checkpoint, and runs at it from
/// then on. Its private ledger's rows are emptied: the group's serve it.
async fn swap_member_in(
    client: &mut Object,
    projection: &dyn Projection,
    generation: i32,
    mut checkpoint: Checkpoint,
    batch: i64,
) -> Result<u64, RunnerError> {
    let mut read = 0u64;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&group_lock()])
        .await?;
    let group = advance_group(&tx, batch).await?;
    if group < checkpoint {
        return Err(RunnerError::RebuildStopped {
            projection: projection.name().into(),
            position: group.position,
            reason: "the shared ledger is stopped behind the rebuilt rows; they cannot join it until it runs again".into(),
        });
    }
    let unread = crate::projection::unread_types(&[projection]);
    loop {
        let events = feed::read_after_without(&tx, checkpoint, batch, &unread).await?;
        let fetched = events.len();
        let mine: Vec<_> = events
            .into_iter()
            .filter(|e| e.checkpoint() <= group)
            .collect();
        let Some(last) = mine.last().map(|e| e.checkpoint()) else {
            break;
        };
        if let Err((position, _, reason)) = apply_batch(&tx, projection, generation, &mine).await? {
            return Err(RunnerError::RebuildStopped {
                projection: projection.name().into(),
                position,
                reason,
            });
        }
        read += mine.len() as u64;
        checkpoint = last;
        if mine.len() < fetched || (fetched as i64) < batch {
            break;
        }
    }
    let schema = schema_name(projection.name(), generation);
    tx.batch_execute(&format!(
        "SET LOCAL search_path = public;
         TRUNCATE {schema}.ledger_checkouts, {schema}.ledger_payments"
    ))
    .await?;
    point_views(&tx, projection, generation).await?;
    let old = record_swap(&tx, projection, generation, group).await?;
    tx.commit().await?;
    drop_old(client, projection, old, generation).await?;
    Ok(read)
}

/// Applies the next batch after `checkpoint` to a generation being rebuilt;
/// `None` when there is nothing left. A poison event aborts the rebuild (the
/// live generation keeps serving).
async fn rebuild_batch(
    tx: &deadpool_postgres::Transaction<'_>,
    projection: &dyn Projection,
    generation: i32,
    checkpoint: Checkpoint,
    batch: i64,
) -> Result<Option<(Checkpoint, usize)>, RunnerError> {
    let unread = crate::projection::unread_types(&[projection]);
    let events = feed::read_after_without(tx, checkpoint, batch, &unread).await?;
    let Some(last) = events.last().map(|e| e.checkpoint()) else {
        return Ok(None);
    };
    if let Err((position, _, reason)) = apply_batch(tx, projection, generation, &events).await? {
        return Err(RunnerError::RebuildStopped {
            projection: projection.name().into(),
            position,
            reason,
        });
    }
    Ok(Some((last, events.len())))
}
