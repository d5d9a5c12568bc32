//! Rebuilding read models from the log. The fresh generation's tables are
//! empty, so a projection's rows need no lookups: the log is read once,
//! each event decoded once, and every projection folds it in memory in its
//! own task; each then writes its rows with binary `COPY` on its own
//! connection. Only the swap — catch up what arrived meanwhile, repoint the
//! views, move the checkpoint — takes the projection's lock, one at a time.

use crate::feed;
use crate::projection::{Projection, ProjectionRows};
use crate::runner::{
    apply_batch, create_generation, lock_key, point_views, schema_name, RunnerError,
};
use crate::states::ProjectionState;
use deadpool_postgres::{Object, Pool};
use payledger_events::{Checkpoint, DomainEvent, RecordedEvent};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events read per page while folding the log in memory.
const REBUILD_PAGE: i64 = 5_000;

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

/// [`rebuild_many`], telling `progress` after each page it reads.
pub async fn rebuild_many_reporting(
    pool: &Pool,
    projections: &[&dyn Projection],
    batch: i64,
    progress: &RebuildProgress<'_>,
) -> Result<u64, RunnerError> {
    let mut client = pool.get().await?;
    let mut schemas = vec![];
    for projection in projections {
        let tx = client.transaction().await?;
        let current: Option<i32> = tx
            .query_opt(
                "SELECT generation FROM projection_state WHERE name = $1",
                &[&projection.name()],
            )
            .await?
            .map(|r| r.get(0));
        let next = current.unwrap_or(0) + 1;
        create_generation(&tx, *projection, next).await?;
        tx.commit().await?;
        schemas.push((next, schema_name(projection.name(), next)));
    }
    let started = std::time::Instant::now();
    let mut pages = vec![];
    let mut tasks = vec![];
    for (projection, (_, schema)) in projections.iter().zip(&schemas) {
        let (send, receive) = mpsc::channel::<(Arc<Page>, Vec<usize>)>(2);
        pages.push(send);
        tasks.push(tokio::spawn(fold_and_write(
            pool.clone(),
            projection.name(),
            {
                let mut rows = projection.rows();
                rows.in_memory_only();
                rows
            },
            receive,
            schema.clone(),
        )));
    }
    let (checkpoint, mut read) = read_into(&mut client, projections, &pages, progress).await?;
    drop(pages);
    for task in tasks {
        task.await.map_err(|e| RunnerError::RebuildStopped {
            projection: "rebuild".into(),
            position: checkpoint.position,
            reason: e.to_string(),
        })??;
    }
    tracing::info!(
        events = read,
        seconds = started.elapsed().as_secs_f64(),
        "rebuild: log folded and rows written"
    );
    for (projection, (generation, _)) in projections.iter().zip(schemas) {
        read += swap_in(&mut client, *projection, generation, checkpoint, batch).await?;
    }
    Ok(read)
}

/// Reads the log to its readable end, decoding each event once, and hands
/// every page to each fold task with the indexes of the events it handles.
/// Returns where it stopped and how many events it read.
async fn read_into(
    client: &mut Object,
    projections: &[&dyn Projection],
    pages: &[mpsc::Sender<(Arc<Page>, Vec<usize>)>],
    progress: &RebuildProgress<'_>,
) -> Result<(Checkpoint, u64), RunnerError> {
    let mut checkpoint = Checkpoint::START;
    let mut read = 0u64;
    loop {
        let events = {
            let tx = client.transaction().await?;
            let events = feed::read_after(&tx, checkpoint, REBUILD_PAGE).await?;
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
        if (n as i64) < REBUILD_PAGE {
            break;
        }
    }
    Ok((checkpoint, read))
}

/// One projection's share of a rebuild: folds the pages in memory, then
/// writes every row into the new generation and analyzes it.
async fn fold_and_write(
    pool: Pool,
    name: &'static str,
    mut rows: Box<dyn ProjectionRows>,
    mut pages: mpsc::Receiver<(Arc<Page>, Vec<usize>)>,
    schema: String,
) -> Result<(), RunnerError> {
    while let Some((page, handled)) = pages.recv().await {
        for i in handled {
            let (event, decoded) = &page[i];
            let stopped = |reason: String| RunnerError::RebuildStopped {
                projection: name.into(),
                position: event.position,
                reason,
            };
            match decoded {
                Some(Ok(decoded)) => crate::runner::caught(rows.apply(None, event, decoded))
                    .await
                    .map_err(&stopped)?
                    .map_err(|e| stopped(e.to_string()))?,
                Some(Err(reason)) => return Err(stopped(reason.clone())),
                None => {}
            }
        }
    }
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
    tx.batch_execute(&rebuild_indexes).await?;
    tx.commit().await?;
    // Fresh statistics, so the live lookups' plans use the indexes.
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
        drop.push_str(&format!("DROP INDEX {name};"));
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
    let old: Option<i32> = tx
        .query_opt(
            "INSERT INTO projection_state (name, version, generation, checkpoint_tx, checkpoint_pos)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET version = $2, generation = $3, checkpoint_tx = $4, checkpoint_pos = $5,
                 status = $6, last_error = NULL, error_position = NULL, error_event_type = NULL, updated_at = now()
             RETURNING (SELECT generation FROM projection_state WHERE name = $1)",
            &[&projection.name(), &projection.version(), &generation, &checkpoint.transaction_id, &checkpoint.position, &ProjectionState::Running.as_str()],
        )
        .await?
        .and_then(|r| r.get(0));
    tx.commit().await?;
    if let Some(old) = old.filter(|g| *g != generation) {
        let schema = schema_name(projection.name(), old);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await?;
    }
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
    let events = feed::read_after(tx, checkpoint, batch).await?;
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
