//! `payledger bench reconcile`: one reconciliation run over N paid checkouts
//! at an in-process simulator, with every charge already in the ledger and
//! with 1% missing — beside the baseline of walking the same pages without
//! looking anything up. Peak memory is measured per run (the kernel's
//! high-water mark, reset before each run) at N/10 and N, to show it stays
//! flat in the number of charges.

use super::fresh_bench_database;
use super::{peak_growth_mb, reset_peak};
use payledger::clock::SystemClock;
use payledger::processor::client::{ClientRetry, ListFilter, ProcessorClient};
use payledger::processor::mapping;
use payledger::reconcile::reconcile;
use payledger::store::{EventStore, ExpectedVersion, PgEventStore, StreamAppend};
use payledger_events::{Actor, ChargeSource, EventData, Metadata};
use payledger_sim::{NewSession, SimConfig, Simulator};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

#[derive(Debug, Serialize)]
pub struct ReconcileBenchRow {
    pub charges: usize,
    pub missing: usize,
    pub objects_seen: u64,
    pub appended: u64,
    pub seconds: f64,
    pub walk_only_seconds: f64,
    pub ratio_to_walk: f64,
    pub peak_memory_growth_mb: f64,
    pub walk_only_peak_memory_growth_mb: f64,
}

async fn start_sim() -> anyhow::Result<(Simulator, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let sim = Simulator::new(SimConfig {
        webhook_url: None,
        webhook_secret: "whsec_bench".into(),
        seed: 7,
        public_url: base.clone(),
        retry: Default::default(),
        api_version: None,
        prices: vec![],
    });
    let served = sim.clone();
    tokio::spawn(async move { payledger_sim::serve(served, listener).await });
    Ok((sim, base))
}

/// `n` paid checkouts at the simulator; the ledger gets the webhook's facts
/// for all but every hundredth when `with_missing`.
async fn seed(
    sim: &Simulator,
    store: &PgEventStore,
    n: usize,
    with_missing: bool,
) -> anyhow::Result<usize> {
    let now = chrono::Utc::now().timestamp();
    let mut missing = 0;
    let mut batch = vec![];
    for i in 0..n {
        let session = {
            let mut state = sim.lock();
            let new = NewSession {
                amount: 24900,
                currency: "usd".into(),
                client_reference_id: Some(Uuid::new_v4().to_string()),
                customer_email: Some(format!("bench{i}@example.com")),
                mode: "payment".into(),
                ..NewSession::default()
            };
            let id = state.open_session(new, "http://sim", now).id;
            state
                .pay_session(&id, None, now)
                .map_err(|e| anyhow::anyhow!(e))?;
            // Delivered long ago, as far as this run is concerned.
            state.events.clear();
            state
                .session_mut(&id)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("session vanished"))?
        };
        if with_missing && i % 100 == 0 {
            missing += 1;
            continue;
        }
        let paid_at = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
        if let Ok(Some(fact)) = mapping::charge_of_session(&session, paid_at, ChargeSource::Webhook)
        {
            let meta = Metadata::new(Uuid::new_v4(), Actor::webhook(), "webhook");
            let data = EventData::for_processor_fact(&fact.event, &fact.object_id, meta)?;
            batch.push(StreamAppend::new(
                fact.stream,
                ExpectedVersion::Any,
                vec![data],
            ));
        }
        if batch.len() == 1000 {
            store.append(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        store.append(batch).await?;
    }
    Ok(missing)
}

/// The same pages, fetched and decoded, nothing looked up.
async fn walk_only(processor: &ProcessorClient, filter: ListFilter) -> anyhow::Result<u64> {
    let mut seen = 0;
    let mut sessions = processor.checkout_sessions(filter.clone());
    while let Some(p) = sessions.next_page().await? {
        seen += p.len() as u64;
    }
    let mut charges = processor.charges(filter);
    while let Some(p) = charges.next_page().await? {
        seen += p.len() as u64;
    }
    Ok(seen)
}

pub async fn run_reconcile_bench(
    database_url: &str,
    charges: usize,
) -> anyhow::Result<Vec<ReconcileBenchRow>> {
    let mut rows = vec![];
    for n in [charges / 10, charges] {
        for with_missing in [false, true] {
            let db = fresh_bench_database(database_url).await?;
            let store = PgEventStore::without_notifications(db.pool.clone(), Arc::new(SystemClock));
            let (sim, base) = start_sim().await?;
            let missing = seed(&sim, &store, n, with_missing).await?;
            let processor =
                ProcessorClient::new(url::Url::parse(&base)?, "sk_bench", ClientRetry::default());
            let from = chrono::Utc::now() - chrono::Duration::hours(1);
            let to = chrono::Utc::now() + chrono::Duration::hours(1);
            let filter = ListFilter {
                created_gte: Some(from.timestamp()),
                created_lte: Some(to.timestamp()),
                limit: Some(100),
                extra: vec![],
            };

            let base_kb = reset_peak();
            let started = Instant::now();
            walk_only(&processor, filter).await?;
            let walk_only_seconds = started.elapsed().as_secs_f64();
            let walk_mem = peak_growth_mb(base_kb);

            let base_kb = reset_peak();
            let started = Instant::now();
            let report = reconcile(&store, &processor, from, to, false)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let seconds = started.elapsed().as_secs_f64();
            let mem = peak_growth_mb(base_kb);
            rows.push(ReconcileBenchRow {
                charges: n,
                missing,
                objects_seen: report.objects_seen,
                appended: report.missing_appended,
                seconds,
                walk_only_seconds,
                ratio_to_walk: seconds / walk_only_seconds.max(1e-9),
                peak_memory_growth_mb: mem,
                walk_only_peak_memory_growth_mb: walk_mem,
            });
            db.pool.close();
        }
    }
    Ok(rows)
}

pub fn print_reconcile_report(rows: &[ReconcileBenchRow]) {
    println!(
        "{:>8} {:>7} {:>8} {:>8} {:>9} {:>9} {:>7} {:>10} {:>10}",
        "charges", "missing", "seen", "appended", "run s", "walk s", "ratio", "peak MB", "walk MB"
    );
    for r in rows {
        println!(
            "{:>8} {:>7} {:>8} {:>8} {:>9.2} {:>9.2} {:>7.2} {:>10.1} {:>10.1}",
            r.charges,
            r.missing,
            r.objects_seen,
            r.appended,
            r.seconds,
            r.walk_only_seconds,
            r.ratio_to_walk,
            r.peak_memory_growth_mb,
            r.walk_only_peak_memory_growth_mb
        );
    }
}
