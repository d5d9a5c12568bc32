//! `payledger bench renewals`: a month-end burst. N customers bought the
//! renewing yearly plan at about the same moment; the simulator's clock
//! moves past their renewal in one step, so all N renewals fall due at one
//! instant and the simulator sends their callbacks as the processor would
//! (bounded concurrency, signed). Measured: the time until every renewal is
//! applied (the subscriptions read model), visible (`payledger_access`, and
//! a sample through `/api/access`) and emailed (renewal receipts sent),
//! beside the time the very same callbacks take through the webhook alone
//! (`bench webhook`'s path, a fresh database, 32 clients) in the same run;
//! and `payledger run`'s resident memory at two sizes.
//!
//! `run` stays on the machine's clock here: the check before access ends
//! and the reminders run on payledger's own schedule, not in the burst.

use crate::tooling::demo::stage::Stage;
use payledger::clock::SystemClock;
use payledger::processor::signature;
use payledger::store::{EventStore, ExpectedVersion, PgEventStore, StreamAppend};
use payledger_events::*;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const SECRET: &str = "whsec_demo";
const API_TOKEN: &str = "demo-token";
const PRICE: &str = "price_annual_249";
const CLIENTS: usize = 32;
/// How long any one milestone may take before the bench gives up.
const LIMIT: Duration = Duration::from_secs(3600);

#[derive(Debug, Serialize)]
pub struct RenewalBenchRow {
    pub renewals: usize,
    pub seed_seconds: f64,
    /// Callbacks the simulator sent for the burst.
    pub burst_callbacks: usize,
    /// Until the simulator had every burst callback answered 2xx: what
    /// `run` ingested while its projections and sender worked beside it.
    pub delivered_seconds: f64,
    /// Delivery attempts beyond one per callback (timeouts, non-2xx).
    pub redeliveries: u64,
    pub applied_seconds: f64,
    pub visible_seconds: f64,
    pub emailed_seconds: f64,
    /// The same callbacks through the webhook alone, 32 clients.
    pub webhook_only_seconds: f64,
    /// `webhook_only_seconds / emailed_seconds` (target ≥ 0.5).
    pub ratio: f64,
    pub api_sample_checked: usize,
    pub run_rss_after_seed_mb: f64,
    pub run_peak_rss_mb: f64,
}

fn proc_kb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

fn email(i: usize) -> String {
    format!("renewal{i}@bench.example")
}

/// The checkouts the customers started, recorded as the pay page records
/// them, in statements of 500.
async fn record_checkouts(store: &PgEventStore, n: usize) -> anyhow::Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    for chunk in ids.chunks(500).enumerate() {
        let (c, part) = chunk;
        let mut batch = vec![];
        for (k, id) in part.iter().enumerate() {
            let e: DomainEvent = CheckoutStarted {
                checkout_id: *id,
                email: email(c * 500 + k),
                plan: "annual".into(),
                amount: 24900,
                currency: Currency::new("usd")?,
                period: Period::Year,
                renews: true,
            }
            .into();
            let meta = Metadata::new(Uuid::new_v4(), Actor::Customer(email(c * 500 + k)), "bench");
            batch.push(StreamAppend::new(
                StreamId::checkout(*id),
                ExpectedVersion::NoStream,
                vec![EventData::new(&e, Uuid::new_v4(), meta)?],
            ));
        }
        store.append(batch).await?;
    }
    Ok(ids)
}

/// Each customer pays the first invoice at the simulator (its webhooks go
/// to `run`).
async fn pay_first_invoices(stage: &Stage, checkouts: &[Uuid]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let url = format!("{}/_sim/charges", stage.sim_base);
    let jobs = checkouts.iter().enumerate().map(|(i, id)| {
        let (http, url) = (http.clone(), url.clone());
        let body = serde_json::json!({"price": PRICE, "email": email(i), "client_reference_id": id.to_string()});
        async move {
            http.post(&url)
                .json(&body)
                .send()
                .await?
                .error_for_status()
                .map(|_| ())
        }
    });
    use futures_util::StreamExt;
    let results: Vec<Result<(), reqwest::Error>> = futures_util::stream::iter(jobs)
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

type At = chrono::DateTime<chrono::Utc>;

fn far_future() -> At {
    At::from_timestamp(253_402_300_799, 0).unwrap_or_default()
}

/// Polls `sql` (a count, `$1` = `at`) until it reaches `n`; the seconds
/// since `since`.
async fn until_count(
    stage: &Stage,
    bar: &indicatif::ProgressBar,
    what: &'static str,
    sql: &str,
    at: At,
    n: i64,
    since: Instant,
) -> anyhow::Result<f64> {
    let limit = LIMIT;
    loop {
        let got: i64 = {
            let c = stage.db.pool.get().await?;
            c.query_one(sql, &[&at]).await?.get(0)
        };
        bar.set_message(what);
        bar.set_length(u64::try_from(n).unwrap_or(0));
        bar.set_position(u64::try_from(got).unwrap_or(0));
        if got >= n {
            return Ok(since.elapsed().as_secs_f64());
        }
        if since.elapsed() > limit {
            anyhow::bail!("after {limit:?} only {got} of {n} reached by: {sql}");
        }
        // Each poll counts 100k rows: often enough to time a burst of
        // minutes, rarely enough not to slow what it measures.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    }
}

/// When the simulator had delivered every event recorded after `before`
/// (or given it up), and how many attempts it took beyond one each.
fn watch_deliveries(
    sim: payledger_sim::Simulator,
    before: usize,
    since: Instant,
) -> tokio::task::JoinHandle<(f64, u64)> {
    tokio::spawn(async move {
        loop {
            let (done, extra) = {
                let state = sim.lock();
                let burst = state.events.get(before..).unwrap_or_default();
                let done = burst.iter().all(|e| e.delivered || e.dropped);
                let extra = burst
                    .iter()
                    .map(|e| u64::from(e.attempts.saturating_sub(1)))
                    .sum();
                (done, extra)
            };
            if done || since.elapsed() > LIMIT {
                return (since.elapsed().as_secs_f64(), extra);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The burst's callbacks through the webhook alone: a fresh database, the
/// server in this process, 32 clients.
async fn webhook_only(database_url: &str, bodies: Vec<String>) -> anyhow::Result<f64> {
    let (_db, url) = super::webhook::serve_fresh(database_url, SECRET).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let started = Instant::now();
    let jobs = bodies.into_iter().map(|body| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let header = signature::sign(body.as_bytes(), SECRET, chrono::Utc::now().timestamp());
            http.post(&url)
                .header("Stripe-Signature", header)
                .body(body)
                .send()
                .await?
                .error_for_status()
                .map(|_| ())
        }
    });
    use futures_util::StreamExt;
    let results: Vec<Result<(), reqwest::Error>> = futures_util::stream::iter(jobs)
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(elapsed)
}

/// A sample of the customers through `/api/access`: each must show the
/// renewed period.
async fn api_sample(
    stage: &Stage,
    n: usize,
    beyond: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<usize> {
    let http = reqwest::Client::new();
    let step = (n / 200).max(1);
    let mut checked = 0;
    for i in (0..n).step_by(step) {
        let v: serde_json::Value = http
            .get(format!("{}/api/access", stage.base))
            .query(&[("email", email(i))])
            .bearer_auth(API_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        let end = v["period_end"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        if v["active"] != true || end.is_none_or(|e| e <= beyond) {
            anyhow::bail!(
                "/api/access for {} does not show the renewal: {v}",
                email(i)
            );
        }
        checked += 1;
    }
    Ok(checked)
}

async fn one_size(
    database_url: &str,
    n: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<RenewalBenchRow> {
    let mut stage = Stage::set_up(database_url, "payledger_bench_renewals", true, true, 11).await?;
    stage.follow_sim_clock = false;
    let _ = std::fs::remove_dir_all(&stage.mail_dir);
    std::fs::create_dir_all(&stage.mail_dir)?;
    stage.start_server(None).await?;
    let pid = stage.server_pid().unwrap_or(0);
    let store = PgEventStore::new(stage.db.pool.clone(), Arc::new(SystemClock));

    let seeding = Instant::now();
    let checkouts = record_checkouts(&store, n).await?;
    pay_first_invoices(&stage, &checkouts).await?;
    let n64 = i64::try_from(n)?;
    until_count(
        &stage,
        bar,
        "first invoices paid",
        "SELECT count(*) FROM subscriptions WHERE status = 'active' AND renews_at < $1",
        far_future(),
        n64,
        seeding,
    )
    .await?;
    until_count(
        &stage,
        bar,
        "confirmations sent",
        "SELECT count(*) FROM outgoing_emails WHERE kind = 'confirmation' AND status = 'sent' AND requested_at < $1",
        far_future(),
        n64,
        seeding,
    )
    .await?;
    let seed_seconds = seeding.elapsed().as_secs_f64();
    let rss_after_seed = proc_kb(pid, "VmRSS:") / 1024.0;
    let first_end: chrono::DateTime<chrono::Utc> = {
        let c = stage.db.pool.get().await?;
        c.query_one("SELECT max(period_end) FROM subscriptions", &[])
            .await?
            .get(0)
    };

    // Every renewal falls due at one instant of the processor's clock.
    let before = stage.sim.lock().events.len();
    let burst = Instant::now();
    stage
        .sim_post("/_sim/clock/advance", serde_json::json!({"days": 366}))
        .await?;
    let delivered = watch_deliveries(stage.sim.clone(), before, burst);
    let applied_seconds = until_count(
        &stage,
        bar,
        "renewals applied",
        "SELECT count(*) FROM subscriptions WHERE status = 'active' AND period_end > $1",
        first_end,
        n64,
        burst,
    )
    .await?;
    let visible_seconds = until_count(
        &stage,
        bar,
        "renewals visible",
        "SELECT count(*) FROM payledger_access WHERE active AND period_end > $1",
        first_end,
        n64,
        burst,
    )
    .await?;
    let emailed_seconds = until_count(
        &stage,
        bar,
        "receipts sent",
        "SELECT count(*) FROM outgoing_emails WHERE kind = 'renewal_receipt' AND status = 'sent' AND requested_at < $1",
        far_future(),
        n64,
        burst,
    )
    .await?;
    let (delivered_seconds, redeliveries) = delivered.await?;
    let api_sample_checked = api_sample(&stage, n, first_end).await?;
    let run_peak_rss_mb = proc_kb(pid, "VmHWM:") / 1024.0;
    let bodies: Vec<String> = stage.sim.lock().events[before..]
        .iter()
        .map(|e| e.body.to_string())
        .collect();
    stage.stop_server();
    let burst_callbacks = bodies.len();
    let webhook_only_seconds = webhook_only(database_url, bodies).await?;
    Ok(RenewalBenchRow {
        renewals: n,
        seed_seconds,
        burst_callbacks,
        delivered_seconds,
        redeliveries,
        applied_seconds,
        visible_seconds,
        emailed_seconds,
        webhook_only_seconds,
        ratio: webhook_only_seconds / emailed_seconds.max(1e-9),
        api_sample_checked,
        run_rss_after_seed_mb: rss_after_seed,
        run_peak_rss_mb,
    })
}

/// A tenth of the size first, then the size: memory flat in the number of
/// renewals shows as the same peak at both.
pub async fn run_renewal_bench(
    database_url: &str,
    renewals: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<RenewalBenchRow>> {
    let mut rows = vec![];
    for n in [(renewals / 10).max(1), renewals] {
        rows.push(one_size(database_url, n, bar).await?);
    }
    bar.finish_and_clear();
    Ok(rows)
}

pub fn print_renewal_report(rows: &[RenewalBenchRow]) {
    println!("renewal burst benchmark (every renewal due at one instant of the simulator's clock)");
    println!(
        "{:>9} {:>9} {:>10} {:>11} {:>9} {:>9} {:>9} {:>13} {:>6} {:>14}",
        "renewals",
        "callbacks",
        "seed s",
        "delivered s",
        "applied s",
        "visible s",
        "emailed s",
        "webhook-only s",
        "ratio",
        "run RSS/peak MB"
    );
    for r in rows {
        println!(
            "{:>9} {:>9} {:>10.1} {:>11.1} {:>9.1} {:>9.1} {:>9.1} {:>13.1} {:>6.2} {:>7.0}/{:<6.0}",
            r.renewals,
            r.burst_callbacks,
            r.seed_seconds,
            r.delivered_seconds,
            r.applied_seconds,
            r.visible_seconds,
            r.emailed_seconds,
            r.webhook_only_seconds,
            r.ratio,
            r.run_rss_after_seed_mb,
            r.run_peak_rss_mb
        );
    }
    println!("ratio = webhook-only time / time until every renewal was emailed (target ≥ 0.5)");
}
