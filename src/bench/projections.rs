//! `payledger bench projections`: rebuild speed beside a plain read of the
//! same rows in the same order, and end-to-end latency from an append to the
//! read-model row being visible.

use super::fresh_bench_database;
use crate::clock::{Clock, SystemClock};
use crate::store::{EventStore, ExpectedVersion, PgEventStore, StreamAppend};
use chrono::Utc;
use payledger_events::*;
use payledger_projections::{feed, runner};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Serialize)]
pub struct ProjectionBenchReport {
    pub events: u64,
    pub plain_read_events_per_s: f64,
    pub rebuild_events_per_s: Vec<(String, f64)>,
    pub rebuild_one_after_another_events_per_s: f64,
    /// All four side by side, as `projections rebuild --all` runs them.
    pub rebuild_all_events_per_s: f64,
    pub ratio: f64,
    pub latency_rate_per_s: u64,
    pub latency_samples: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
}

fn meta() -> Metadata {
    Metadata::new(Uuid::new_v4(), Actor::webhook(), "bench")
}

/// A checkout and its charge, or (every fifth) an orphan charge.
fn purchase(i: u64) -> anyhow::Result<Vec<StreamAppend>> {
    let usd = Currency::new("usd")?;
    let email = format!("c{i}@example.com");
    let payment = format!("pi_bench_{i}");
    let checkout = Uuid::new_v4();
    let charge: DomainEvent = ChargeSucceeded {
        payment_id: payment.clone(),
        charge_id: None,
        session_id: None,
        checkout_reference: (!i.is_multiple_of(5)).then(|| checkout.to_string()),
        customer_email: Some(email.clone()),
        amount: 24900,
        currency: usd.clone(),
        paid_at: Utc::now(),
        source: ChargeSource::Webhook,
    }
    .into();
    let mut out = vec![];
    if !i.is_multiple_of(5) {
        let started: DomainEvent = CheckoutStarted {
            checkout_id: checkout,
            email,
            plan: "annual".into(),
            amount: 24900,
            currency: usd,
        }
        .into();
        out.push(StreamAppend::new(
            StreamId::checkout(checkout),
            ExpectedVersion::NoStream,
            vec![EventData::new(&started, Uuid::new_v4(), meta())?],
        ));
    }
    out.push(StreamAppend::new(
        StreamId::payment(&payment),
        ExpectedVersion::Any,
        vec![EventData::for_processor_fact(&charge, &payment, meta())?],
    ));
    Ok(out)
}

pub async fn run_projection_bench(
    database_url: &str,
    purchases: u64,
    rate: u64,
    latency_seconds: u64,
) -> anyhow::Result<ProjectionBenchReport> {
    let db = fresh_bench_database(database_url).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = PgEventStore::new(db.pool.clone(), clock);
    let mut i = 0;
    while i < purchases {
        let mut batch = vec![];
        for _ in 0..100.min(purchases - i) {
            batch.extend(purchase(i)?);
            i += 1;
        }
        store.append(batch).await?;
    }
    let client = db.pool.get().await?;
    client.batch_execute("ANALYZE events").await?;
    let events: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .get(0);

    let started = Instant::now();
    let mut checkpoint = Checkpoint::START;
    loop {
        let batch = feed::read_after(&client, checkpoint, 1000).await?;
        let Some(last) = batch.last() else { break };
        checkpoint = last.checkpoint();
    }
    let plain = events as f64 / started.elapsed().as_secs_f64();

    let mut per = vec![];
    let all_started = Instant::now();
    for p in payledger_projections::all() {
        runner::install(&db.pool, p.as_ref(), 1000).await?;
        let t = Instant::now();
        runner::rebuild(&db.pool, p.as_ref(), 1000).await?;
        per.push((
            p.name().to_string(),
            events as f64 / t.elapsed().as_secs_f64(),
        ));
    }
    let one_after_another = events as f64 / all_started.elapsed().as_secs_f64();
    // As `projections rebuild --all` does it: all four side by side.
    let together = Instant::now();
    let rebuilds = payledger_projections::all().into_iter().map(|p| {
        let pool = db.pool.clone();
        async move { runner::rebuild(&pool, p.as_ref(), 1000).await }
    });
    for r in futures_util::future::join_all(rebuilds).await {
        r?;
    }
    let all = events as f64 / together.elapsed().as_secs_f64();

    // Latency: a worker runs; orphan charges arrive at `rate`/s; each one's
    // discrepancy row is awaited.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(crate::worker::run(
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
        n += 5; // a multiple of 5: an orphan, which opens a discrepancy
        let batch = purchase(n)?;
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
    Ok(ProjectionBenchReport {
        events: events as u64,
        plain_read_events_per_s: plain,
        rebuild_events_per_s: per,
        rebuild_one_after_another_events_per_s: one_after_another,
        rebuild_all_events_per_s: all,
        ratio: all / plain.max(1e-9),
        latency_rate_per_s: rate,
        latency_samples: latencies.len(),
        latency_p50_ms: pick(0.5),
        latency_p99_ms: pick(0.99),
    })
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
        "rebuild all four in turn:  {:>10.0} events/s",
        r.rebuild_one_after_another_events_per_s
    );
    println!(
        "rebuild all four at once:  {:>10.0} events/s   ratio to plain read {:.3}",
        r.rebuild_all_events_per_s, r.ratio
    );
    println!(
        "append -> discrepancy row visible at {}/s: p50 {:.1} ms, p99 {:.1} ms ({} samples)",
        r.latency_rate_per_s, r.latency_p50_ms, r.latency_p99_ms, r.latency_samples
    );
}
