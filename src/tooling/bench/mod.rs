//! Benchmarks against the local PostgreSQL. Each runs its baseline in the
//! same process and the same run, and reports the ratio: the machine is
//! shared and noisy, so absolute numbers are context, the ratio is the figure.

pub mod app_webhooks;
pub mod append;
pub mod fold;
pub mod projections;
pub mod reconcile;
pub mod renewals;
pub mod webhook;

use deadpool_postgres::Pool;
use payledger::db::{create_database_if_missing, drop_database_if_exists, Database};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `op` on `workers` tasks for `run_for`; `op` returns how many units
/// it completed. Returns units per second and per-call latency percentiles.
pub async fn measure<F>(workers: usize, run_for: Duration, op: F) -> Measured
where
    F: Fn(usize, u64) -> Pin<Box<dyn Future<Output = u64> + Send>> + Send + Sync + Clone + 'static,
{
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let start = Instant::now();
    let mut tasks = vec![];
    for w in 0..workers {
        let (op, latencies) = (op.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let (mut done, mut mine, mut i) = (0u64, vec![], 0u64);
            while start.elapsed() < run_for {
                let t = Instant::now();
                done += op(w, i).await;
                mine.push(t.elapsed());
                i += 1;
            }
            latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(mine);
            done
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.unwrap_or(0);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut all = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Measured {
        per_second: done as f64 / elapsed,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    }
}

/// Drops and recreates `payledger_bench` on the server of `database_url`,
/// migrates it, and adds the raw baseline table.
pub async fn fresh_bench_database(database_url: &str) -> anyhow::Result<Database> {
    let mut config: tokio_postgres::Config = database_url.parse()?;
    config.dbname("payledger_bench");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let url = format!(
        "postgres://{}@{}:{}/payledger_bench",
        config.get_user().unwrap_or("postgres"),
        host,
        config.get_ports().first().copied().unwrap_or(5432)
    );
    drop_database_if_exists(&url).await?;
    create_database_if_missing(&url).await?;
    let db = Database::connect(&url, 48).await?;
    db.migrate().await?;
    let client = db.pool.get().await?;
    client
        .batch_execute(
            "CREATE TABLE bench_raw_insert (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                stream_id TEXT NOT NULL, event_id UUID NOT NULL, event_type TEXT NOT NULL,
                payload JSONB NOT NULL, metadata JSONB NOT NULL, recorded_at TIMESTAMPTZ NOT NULL)",
        )
        .await?;
    Ok(db)
}

/// The baseline: one single-row `INSERT` of the bytes `make` produces
/// (event id, payload, metadata), in autocommit.
pub fn raw_insert_op(
    pool: Pool,
    make: fn(u64) -> Option<(Uuid, serde_json::Value, serde_json::Value)>,
) -> impl Fn(usize, u64) -> Pin<Box<dyn Future<Output = u64> + Send>> + Send + Sync + Clone + 'static
{
    move |_, i| {
        let pool = pool.clone();
        Box::pin(async move {
            let Some((id, payload, metadata)) = make(i) else {
                return 0;
            };
            let Ok(c) = pool.get().await else { return 0 };
            let Ok(st) = c
                .prepare_cached(
                    "INSERT INTO bench_raw_insert (stream_id, event_id, event_type, payload, metadata, recorded_at)
                     VALUES ($1, $2, 'ChargeSucceeded', $3, $4, now())",
                )
                .await
            else {
                return 0;
            };
            let stream = format!("payment-{id}");
            c.execute(&st, &[&stream, &id, &payload, &metadata])
                .await
                .map(|_| 1)
                .unwrap_or(0)
        })
    }
}

fn proc_status_kb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Resets the peak-RSS mark (Linux `clear_refs` 5) and returns the current
/// resident size, so the next `peak_growth` is this run's alone.
pub(crate) fn reset_peak() -> f64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    proc_status_kb("VmRSS:")
}

pub(crate) fn peak_growth_mb(base_kb: f64) -> f64 {
    (proc_status_kb("VmHWM:") - base_kb).max(0.0) / 1024.0
}

/// The raw baseline batched the way group commit batches: an insert that
/// finds a writer free and nobody waiting goes alone; otherwise it queues,
/// and a free writer takes everything queued (up to 64) into one
/// multi-row `INSERT`. Every caller is answered after its statement.
pub fn raw_batched_insert_op(
    pool: Pool,
    make: fn(u64) -> Option<(Uuid, serde_json::Value, serde_json::Value)>,
) -> impl Fn(usize, u64) -> Pin<Box<dyn Future<Output = u64> + Send>> + Send + Sync + Clone + 'static
{
    type Row = (Uuid, serde_json::Value, serde_json::Value);
    type Waiting = (Row, tokio::sync::oneshot::Sender<bool>);
    let (queue, mut queued) = tokio::sync::mpsc::unbounded_channel::<Waiting>();
    let writers = Arc::new(tokio::sync::Semaphore::new(4));
    let (former_pool, former_writers) = (pool.clone(), writers.clone());
    tokio::spawn(async move {
        while let Some(first) = queued.recv().await {
            let Ok(slot) = former_writers.clone().acquire_owned().await else {
                return;
            };
            let mut group = vec![first];
            while group.len() < 64 {
                match queued.try_recv() {
                    Ok(w) => group.push(w),
                    Err(_) => break,
                }
            }
            let pool = former_pool.clone();
            tokio::spawn(async move {
                let ok = insert_rows(&pool, group.iter().map(|w| &w.0)).await;
                for (_, reply) in group {
                    let _ = reply.send(ok);
                }
                drop(slot);
            });
        }
    });
    move |_, i| {
        let (pool, queue, writers) = (pool.clone(), queue.clone(), writers.clone());
        Box::pin(async move {
            let Some(row) = make(i) else { return 0 };
            if let Ok(_slot) = writers.try_acquire() {
                return u64::from(insert_rows(&pool, std::iter::once(&row)).await);
            }
            let (reply, answer) = tokio::sync::oneshot::channel();
            if queue.send((row, reply)).is_err() {
                return 0;
            }
            u64::from(answer.await.unwrap_or(false))
        })
    }
}

async fn insert_rows<'a>(
    pool: &Pool,
    rows: impl Iterator<Item = &'a (Uuid, serde_json::Value, serde_json::Value)>,
) -> bool {
    let (mut streams, mut ids, mut payloads, mut metadata) = (vec![], vec![], vec![], vec![]);
    for (id, payload, meta) in rows {
        streams.push(format!("payment-{id}"));
        ids.push(*id);
        payloads.push(payload);
        metadata.push(meta);
    }
    let Ok(c) = pool.get().await else {
        return false;
    };
    let Ok(st) = c
        .prepare_cached(
            "INSERT INTO bench_raw_insert (stream_id, event_id, event_type, payload, metadata, recorded_at)
             SELECT s, e, 'ChargeSucceeded', p, m, now()
             FROM unnest($1::text[], $2::uuid[], $3::jsonb[], $4::jsonb[]) AS r(s, e, p, m)",
        )
        .await
    else {
        return false;
    };
    c.execute(&st, &[&streams, &ids, &payloads, &metadata])
        .await
        .is_ok()
}
