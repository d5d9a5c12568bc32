//! `payledger bench append`: appends/s of the store beside a raw single-row
//! INSERT of the same bytes, at the same concurrency, in the same run. The
//! ratio is the figure; absolute numbers depend on the machine's fsync.

use super::{fresh_bench_database, measure, raw_batched_insert_op, raw_insert_op};
use chrono::Utc;
use payledger::clock::SystemClock;
use payledger::db::DbError;
use payledger::store::{EventStore, ExpectedVersion, PgEventStore, StreamAppend};
use payledger_events::{
    Actor, ChargeSource, ChargeSucceeded, Currency, DomainEvent, EventData, Metadata, StreamId,
};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Serialize)]
pub struct AppendBenchRow {
    pub writers: usize,
    pub raw_inserts_per_s: f64,
    pub appends_per_s: f64,
    pub ratio: f64,
    pub appends_without_notify_per_s: f64,
    /// The same appends through group commit (its defaults).
    pub grouped_appends_per_s: f64,
    pub grouped_ratio: f64,
    /// Raw INSERTs batched the way group commit batches appends.
    pub raw_batched_per_s: f64,
    pub grouped_ratio_to_batched: f64,
}

#[derive(Debug, Serialize)]
pub struct AppendBenchReport {
    pub seconds_per_run: f64,
    pub single: Vec<AppendBenchRow>,
    pub batch_size: usize,
    pub batch_writers: usize,
    pub batched_events_per_s: f64,
}

fn sample_event(n: u64) -> anyhow::Result<EventData> {
    let payment = format!("pi_bench_{}", Uuid::new_v4().simple());
    let event: DomainEvent = ChargeSucceeded {
        payment_id: payment.clone(),
        charge_id: Some(format!("ch_bench_{n}")),
        session_id: Some(format!("cs_bench_{n}")),
        checkout_reference: Some(Uuid::new_v4().to_string()),
        customer_email: Some(format!("customer{n}@example.com")),
        amount: 24900,
        currency: Currency::new("usd")?,
        paid_at: Utc::now(),
        source: ChargeSource::Webhook,
        invoice_id: None,
    }
    .into();
    Ok(EventData::for_processor_fact(
        &event,
        &payment,
        Metadata::new(Uuid::new_v4(), Actor::webhook(), "webhook"),
    )?)
}

fn raw_sample(i: u64) -> Option<(Uuid, serde_json::Value, serde_json::Value)> {
    let e = sample_event(i).ok()?;
    let metadata = serde_json::to_value(&e.metadata).ok()?;
    Some((e.event_id, e.payload, metadata))
}

pub async fn run_append_bench(
    database_url: &str,
    seconds: f64,
) -> anyhow::Result<AppendBenchReport> {
    let db = fresh_bench_database(database_url).await?;
    let client = db.pool.get().await.map_err(|e| DbError::Unreachable {
        url: db.shown_url(),
        reason: e.to_string(),
    })?;
    let run_for = Duration::from_secs_f64(seconds);
    let with_notify = PgEventStore::new(db.pool.clone(), Arc::new(SystemClock));
    let without_notify =
        PgEventStore::without_notifications(db.pool.clone(), Arc::new(SystemClock));
    let grouped = PgEventStore::new(db.pool.clone(), Arc::new(SystemClock))
        .with_group_commit(payledger::config::group_commit()?.unwrap_or_default());

    // Measure the steady state: a live table has rows and statistics
    // (autovacuum analyzes it as it grows). Generic plans made against an
    // empty, never-analyzed table scan it instead of using its indexes.
    let warm_up = append_op(without_notify.clone(), 50);
    for i in 0..100 {
        warm_up(0, i).await;
    }
    client
        .batch_execute(
            "INSERT INTO bench_raw_insert (stream_id, event_id, event_type, payload, metadata, recorded_at)
             SELECT stream_id, event_id, event_type, payload, metadata, recorded_at FROM events;
             ANALYZE events; ANALYZE bench_raw_insert;",
        )
        .await?;
    drop(client);
    let mut single = vec![];
    for writers in [1usize, 8, 32] {
        let raw = measure(writers, run_for, raw_insert_op(db.pool.clone(), raw_sample))
            .await
            .per_second;
        let appends = measure(writers, run_for, append_op(with_notify.clone(), 1))
            .await
            .per_second;
        let quiet = measure(writers, run_for, append_op(without_notify.clone(), 1))
            .await
            .per_second;
        let grouped = measure(writers, run_for, append_op(grouped.clone(), 1))
            .await
            .per_second;
        let raw_batched = measure(
            writers,
            run_for,
            raw_batched_insert_op(db.pool.clone(), raw_sample),
        )
        .await
        .per_second;
        single.push(AppendBenchRow {
            writers,
            raw_inserts_per_s: raw,
            appends_per_s: appends,
            ratio: appends / raw.max(1e-9),
            appends_without_notify_per_s: quiet,
            grouped_appends_per_s: grouped,
            grouped_ratio: grouped / raw.max(1e-9),
            raw_batched_per_s: raw_batched,
            grouped_ratio_to_batched: grouped / raw_batched.max(1e-9),
        });
    }
    let (batch_size, batch_writers) = (50, 4);
    let batched = measure(batch_writers, run_for, append_op(with_notify, batch_size))
        .await
        .per_second
        * batch_size as f64;
    Ok(AppendBenchReport {
        seconds_per_run: seconds,
        single,
        batch_size,
        batch_writers,
        batched_events_per_s: batched,
    })
}

fn append_op(
    store: PgEventStore,
    events_per_append: usize,
) -> impl Fn(usize, u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    move |w, i| {
        let store = store.clone();
        Box::pin(async move {
            let events: Result<Vec<_>, _> = (0..events_per_append as u64)
                .map(|k| sample_event(i * 1000 + k))
                .collect();
            let Ok(events) = events else { return 0 };
            let stream = StreamId::payment(&format!("bench_{w}_{}", Uuid::new_v4().simple()));
            match store
                .append(vec![StreamAppend::new(
                    stream,
                    ExpectedVersion::NoStream,
                    events,
                )])
                .await
            {
                Ok(_) => 1,
                Err(e) => {
                    tracing::warn!(error = %e, "bench append failed");
                    0
                }
            }
        })
    }
}

pub fn print_append_report(r: &AppendBenchReport) {
    println!(
        "append benchmark ({}s per run, local PostgreSQL, synchronous_commit as configured)",
        r.seconds_per_run
    );
    println!(
        "{:>8} {:>14} {:>12} {:>7} {:>22} {:>11} {:>7} {:>15} {:>8}",
        "writers",
        "raw INSERT/s",
        "append/s",
        "ratio",
        "append/s (no NOTIFY)",
        "grouped/s",
        "ratio",
        "raw batched/s",
        "ratio"
    );
    for row in &r.single {
        println!(
            "{:>8} {:>14.0} {:>12.0} {:>7.2} {:>22.0} {:>11.0} {:>7.2} {:>15.0} {:>8.2}",
            row.writers,
            row.raw_inserts_per_s,
            row.appends_per_s,
            row.ratio,
            row.appends_without_notify_per_s,
            row.grouped_appends_per_s,
            row.grouped_ratio,
            row.raw_batched_per_s,
            row.grouped_ratio_to_batched
        );
    }
    println!(
        "batched: {} events per append, {} writers: {:.0} events/s",
        r.batch_size, r.batch_writers, r.batched_events_per_s
    );
}
