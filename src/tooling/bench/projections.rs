//! `payledger bench projections`: rebuild speed over a generated mixed
//! history beside a plain read of the same rows in the same order, and
//! end-to-end latency from an append to the read-model row being visible.

use super::{fresh_bench_database, peak_growth_mb, reset_peak};
use chrono::Utc;
use payledger::clock::{Clock, SystemClock};
use payledger::store::{EventStore, ExpectedVersion, PgEventStore, StreamAppend};
use payledger_events::*;
use payledger_projections::{feed, runner, Projection};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Serialize)]
pub struct ProjectionBenchReport {
    pub events: u64,
    pub plain_read_events_per_s: f64,
    pub rebuild_events_per_s: Vec<(String, f64)>,
    /// Every projection from one read of the log, as `projections rebuild
    /// --all` runs them.
    pub rebuild_all_events_per_s: f64,
    pub rebuild_all_seconds: f64,
    pub rebuild_all_peak_memory_growth_mb: f64,
    /// The process's peak resident memory during `rebuild --all`.
    pub rebuild_all_peak_rss_mb: f64,
    /// `PAYLEDGER_REBUILD_MEMORY`, and how often rows were written early to
    /// keep to it.
    pub rebuild_budget_mb: f64,
    pub rebuild_spills: u32,
    pub ratio: f64,
    pub latency_rate_per_s: u64,
    pub latency_samples: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
}

fn meta() -> Metadata {
    Metadata::new(Uuid::new_v4(), Actor::webhook(), "bench")
}

/// An orphan charge: opens an `unmatched_charge` discrepancy.
fn orphan(i: u64) -> anyhow::Result<Vec<StreamAppend>> {
    let payment = format!("pi_bench_{i}");
    let charge: DomainEvent = ChargeSucceeded {
        payment_id: payment.clone(),
        charge_id: None,
        session_id: None,
        checkout_reference: None,
        customer_email: Some(format!("c{i}@example.com")),
        amount: 24900,
        currency: Currency::new("usd")?,
        paid_at: Utc::now(),
        source: ChargeSource::Webhook,
        invoice_id: None,
    }
    .into();
    Ok(vec![StreamAppend::new(
        StreamId::payment(&payment),
        ExpectedVersion::Any,
        vec![EventData::for_processor_fact(&charge, &payment, meta())?],
    )])
}

/// Appends the mixed history of `customers`, in slices so that it is
/// never all in memory at once, telling `progress` the customers done.
pub(super) async fn generate_history(
    store: &PgEventStore,
    customers: u64,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let slice = 20_000u64;
    let mut from = 0;
    while from < customers {
        let n = slice.min(customers - from);
        let history = payledger_testkit::history::mixed_history_range(from, n)?;
        append_history(store, history, 500).await?;
        from += n;
        progress.set_position(from);
    }
    Ok(())
}

/// Reads the whole log in the gap-safe order, in the rebuild's pages.
pub(super) async fn read_whole_log(
    client: &mut deadpool_postgres::Object,
    mut each_page: impl FnMut(Vec<RecordedEvent>),
) -> anyhow::Result<()> {
    let mut checkpoint = Checkpoint::START;
    loop {
        let tx = client.transaction().await?;
        let page = feed::read_after(&tx, checkpoint, 5_000).await?;
        tx.commit().await?;
        let Some(last) = page.last() else { break };
        checkpoint = last.checkpoint();
        each_page(page);
    }
    Ok(())
}

/// Appends `history` in statements of about `chunk` events, in order.
async fn append_history(
    store: &PgEventStore,
    history: Vec<(StreamId, EventData)>,
    chunk: usize,
) -> anyhow::Result<()> {
    let mut batch: Vec<StreamAppend> = vec![];
    let mut count = 0;
    for (stream, e) in history {
        match batch.iter_mut().find(|p| p.stream == stream) {
            Some(part) => part.events.push(e),
            None => batch.push(StreamAppend::new(stream, ExpectedVersion::Any, vec![e])),
        }
        count += 1;
        if count >= chunk {
            store.append(std::mem::take(&mut batch)).await?;
            count = 0;
        }
    }
    if !batch.is_empty() {
        store.append(batch).await?;
    }
    Ok(())
}

pub async fn run_projection_bench(
    database_url: &str,
    customers: u64,
    rate: u64,
    latency_seconds: u64,
    rebuild_all_only: bool,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<ProjectionBenchReport> {
    let budget = payledger::config::rebuild_memory()?;
    let db = fresh_bench_database(database_url).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = PgEventStore::new(db.pool.clone(), clock);
    generate_history(&store, customers, progress).await?;
    let mut client = db.pool.get().await?;
    client.batch_execute("ANALYZE events").await?;
    let (events, last): (i64, i64) = {
        let row = client
            .query_one(
                "SELECT count(*), coalesce(max(position), 0) FROM events",
                &[],
            )
            .await?;
        (row.get(0), row.get(1))
    };
    // From here the bar follows the log's position: a rebuild in a small
    // budget takes half an hour at a million events.
    progress.set_length(u64::try_from(last).unwrap_or(0));
    progress.set_position(0);
    progress.set_message("the plain read");
    let at = |c: Checkpoint| progress.set_position(u64::try_from(c.position).unwrap_or(0));

    // The baseline: the same rows in the same order, in the rebuild's pages.
    let started = Instant::now();
    read_whole_log(&mut client, |page| {
        if let Some(last) = page.last() {
            at(last.checkpoint());
        }
    })
    .await?;
    let plain = events as f64 / started.elapsed().as_secs_f64();
    drop(client);

    let mut per = vec![];
    for p in payledger_projections::all() {
        runner::install(&db.pool, p.as_ref(), 1000).await?;
        if rebuild_all_only {
            continue;
        }
        progress.set_message(format!("rebuild {}", p.name()));
        let t = Instant::now();
        runner::rebuild(&db.pool, p.as_ref(), 1000).await?;
        per.push((
            p.name().to_string(),
            events as f64 / t.elapsed().as_secs_f64(),
        ));
    }
    let projections = payledger_projections::all();
    let refs: Vec<&dyn Projection> = projections.iter().map(|p| p.as_ref()).collect();
    let base = reset_peak();
    let together = Instant::now();
    progress.set_message("rebuild --all");
    let rebuilt = runner::rebuild_many_within(&db.pool, &refs, 1000, budget, &at).await;
    // The measurements that follow print their own result.
    progress.finish_and_clear();
    let rebuilt = rebuilt?;
    let all_seconds = together.elapsed().as_secs_f64();
    let all_memory = peak_growth_mb(base);
    let all_peak_rss = peak_growth_mb(0.0);
    let all = events as f64 / all_seconds;
    let mut report = ProjectionBenchReport {
        events: events as u64,
        plain_read_events_per_s: plain,
        rebuild_events_per_s: per,
        rebuild_all_events_per_s: all,
        rebuild_all_seconds: all_seconds,
        rebuild_all_peak_memory_growth_mb: all_memory,
        rebuild_all_peak_rss_mb: all_peak_rss,
        rebuild_budget_mb: budget as f64 / (1024.0 * 1024.0),
        rebuild_spills: rebuilt.spills,
        ratio: all / plain.max(1e-9),
        latency_rate_per_s: rate,
        latency_samples: 0,
        latency_p50_ms: 0.0,
        latency_p99_ms: 0.0,
    };
    if rebuild_all_only {
        return Ok(report);
    }

    // Latency: a worker runs; orphan charges arrive at `rate`/s; each one's
    // discrepancy row is awaited.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(payledger::worker::run(
        db.pool.clone(),
        db.config.clone(),
        Default::default(),
        stop,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = vec![];
    let mut waiters = vec![];
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let until = Instant::now() + Duration::from_secs(latency_seconds);
    let mut n = 10_000_000u64;
    while Instant::now() < until {
        n += 1;
        let batch = orphan(n)?;
        let pool = db.pool.clone();
        let sent = Instant::now();
        store.append(batch).await?;
        let id = format!("unmatched_charge:pi_bench_{n}");
        waiters.push(tokio::spawn(async move {
            let client = pool.get().await.ok()?;
            loop {
                if client
                    .query_opt("SELECT 1 FROM discrepancies WHERE id = $1", &[&id])
                    .await
                    .ok()?
                    .is_some()
                {
                    return Some(sent.elapsed());
                }
                if sent.elapsed() > Duration::from_secs(30) {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
        tokio::time::sleep(interval.saturating_sub(sent.elapsed())).await;
    }
    for w in waiters {
        if let Ok(Some(d)) = w.await {
            latencies.push(d);
        }
    }
    let _ = stop_tx.send(true);
    let _ = worker.await;
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    report.latency_samples = latencies.len();
    report.latency_p50_ms = pick(0.5);
    report.latency_p99_ms = pick(0.99);
    Ok(report)
}

pub fn print_projection_report(r: &ProjectionBenchReport) {
    println!(
        "projection benchmark over {} events (local PostgreSQL)",
        r.events
    );
    println!(
        "plain ordered read:        {:>10.0} events/s",
        r.plain_read_events_per_s
    );
    for (name, rate) in &r.rebuild_events_per_s {
        println!("rebuild {name:<18} {rate:>10.0} events/s");
    }
    println!(
        "rebuild --all (one read):  {:>10.0} events/s   ratio to plain read {:.3}   {:.1} s, peak memory +{:.0} MB (peak RSS {:.0} MB; budget {:.0} MB, rows written early {} times)",
        r.rebuild_all_events_per_s, r.ratio, r.rebuild_all_seconds, r.rebuild_all_peak_memory_growth_mb,
        r.rebuild_all_peak_rss_mb, r.rebuild_budget_mb, r.rebuild_spills
    );
    if r.latency_samples == 0 {
        return;
    }
    println!(
        "append -> discrepancy row visible at {}/s: p50 {:.1} ms, p99 {:.1} ms ({} samples)",
        r.latency_rate_per_s, r.latency_p50_ms, r.latency_p99_ms, r.latency_samples
    );
}
