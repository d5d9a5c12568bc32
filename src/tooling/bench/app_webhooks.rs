//! `payledger bench app-webhooks` (spec §13): how promptly and how fast the
//! product's application is told.
//!
//! Latency: a worker runs (projections and the application-webhook sender,
//! as `work` does); purchases are appended at a steady rate, each one a
//! change of access; measured from the append's return to the local
//! receiver's verified 2xx of that customer's `subscription.activated`.
//!
//! Throughput: N purchases already projected, N messages and N
//! confirmation emails owed; the application-webhook sender alone delivers
//! its N to a receiver that answers at once, then the email sender alone
//! sends its N to a mail directory — the same process, the same run.

use crate::tooling::app_receiver::AppReceiver;
use payledger::clock::{Clock, SystemClock};
use payledger::reactors::app_webhooks::{endpoints, sender as app_sender};
use payledger::reactors::{mail, sender as email_sender, Reactors};
use payledger::store::{EventStore, ExpectedVersion, PgEventStore, StreamAppend};
use payledger_projections::runner;
use payledger_testkit::history::{charge, checkout_started, Fact};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long the bench waits for the last message before it gives up.
const LIMIT: Duration = Duration::from_secs(600);

#[derive(Debug, Serialize)]
pub struct AppWebhookBenchReport {
    pub rate_per_s: u64,
    pub latency_samples: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub throughput_messages: usize,
    pub app_webhooks_per_s: f64,
    pub emails_per_s: f64,
    /// `app_webhooks_per_s / emails_per_s`.
    pub ratio_to_email: f64,
}

fn purchase(n: u64) -> anyhow::Result<Vec<Fact>> {
    let email = format!("app{n}@bench.example");
    let checkout = Uuid::new_v4();
    Ok(vec![
        checkout_started(checkout, &email, 24900)?,
        charge(
            &format!("pi_app_{n}"),
            Some(checkout),
            Some(&email),
            24900,
            0,
        )?,
    ])
}

fn as_appends(facts: Vec<Fact>) -> Vec<StreamAppend> {
    facts
        .into_iter()
        .map(|(stream, e)| StreamAppend::new(stream, ExpectedVersion::Any, vec![e]))
        .collect()
}

fn email_of(told: &str) -> Option<u64> {
    told.strip_prefix("app")?
        .strip_suffix("@bench.example")?
        .parse()
        .ok()
}

async fn fresh_store(
    database_url: &str,
) -> anyhow::Result<(PgEventStore, payledger::db::Database)> {
    let db = super::fresh_bench_database(database_url).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Ok((PgEventStore::new(db.pool.clone(), clock), db))
}

async fn latency(
    database_url: &str,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<(usize, f64, f64, f64)> {
    let (store, db) = fresh_store(database_url).await?;
    let receiver = AppReceiver::start(false).await?;
    endpoints::ensure_configured(&store, &receiver.url, &receiver.secret).await?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(payledger::worker::run(
        db.pool.clone(),
        db.config.clone(),
        payledger::worker::WorkerConfig {
            reactors: Reactors::default(),
            ..Default::default()
        },
        stop,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // On a fixed schedule (the n-th change at start + n/rate), so the
    // rate holds whatever one append costs.
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = tokio::time::Instant::now();
    let total = rate * seconds;
    let mut appended: HashMap<u64, Instant> = HashMap::new();
    for n in 0..total {
        tokio::time::sleep_until(start + interval * u32::try_from(n)?).await;
        store.append(as_appends(purchase(n)?)).await?;
        appended.insert(n, Instant::now());
    }
    let deadline = Instant::now() + LIMIT;
    while receiver.told().len() < appended.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let _ = worker.await;
    let told = receiver.told();
    if told.iter().any(|t| !t.verified) {
        anyhow::bail!("the receiver could not verify a message");
    }
    let mut latencies: Vec<Duration> = told
        .iter()
        .filter_map(|t| {
            let sent = appended.get(&email_of(&t.email)?)?;
            Some(t.at.saturating_duration_since(*sent))
        })
        .collect();
    if latencies.len() < appended.len() {
        anyhow::bail!(
            "only {} of {} messages arrived within {LIMIT:?}",
            latencies.len(),
            appended.len()
        );
    }
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len() - 1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok((latencies.len(), pick(0.5), pick(0.99), pick(1.0)))
}

/// Runs `task` until `done` says all `n` are through; the rate.
async fn rate_until<F>(
    n: usize,
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    done: F,
) -> anyhow::Result<f64>
where
    F: AsyncFn() -> anyhow::Result<usize>,
{
    let started = Instant::now();
    loop {
        let got = done().await?;
        if got >= n {
            break;
        }
        if started.elapsed() > LIMIT {
            anyhow::bail!("only {got} of {n} through within {LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = task.await;
    Ok(n as f64 / elapsed)
}

async fn throughput(database_url: &str, messages: usize) -> anyhow::Result<(f64, f64)> {
    let (store, db) = fresh_store(database_url).await?;
    let receiver = AppReceiver::start(false).await?;
    endpoints::ensure_configured(&store, &receiver.url, &receiver.secret).await?;
    for chunk in (0..messages as u64).collect::<Vec<_>>().chunks(250) {
        let mut batch = vec![];
        for n in chunk {
            batch.extend(as_appends(purchase(*n)?));
        }
        store.append(batch).await?;
    }
    let projections = payledger_projections::all();
    for p in &projections {
        runner::install(&db.pool, p.as_ref(), 1000).await?;
    }
    let refs: Vec<_> = projections.iter().map(|p| p.as_ref()).collect();
    runner::rebuild_many(&db.pool, &refs, 1000).await?;

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(app_sender::run(
        store.clone(),
        app_sender::AppWebhookConfig::default(),
        stop,
    ));
    let app_per_s = rate_until(messages, task, stop_tx, async || Ok(receiver.told().len())).await?;

    let dir = std::env::current_dir()?.join("target/payledger-bench-mail");
    let _ = std::fs::remove_dir_all(&dir);
    let mailer = mail::Mailer::files(dir.clone(), "payments@shop.example".parse()?)?;
    let config = email_sender::SenderConfig {
        plans: payledger::plans::Plans::parse(
            include_str!("../../../plans.example.toml"),
            "plans.example.toml",
        )?,
        ..Default::default()
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(email_sender::run(store.clone(), mailer, config, stop));
    let pool = db.pool.clone();
    let email_per_s = rate_until(messages, task, stop_tx, async || {
        let c = pool.get().await?;
        let sent: i64 = c
            .query_one(
                // Recorded in the log: the sender's last step for each email.
                "SELECT count(*) FROM events WHERE event_type = 'EmailSent'",
                &[],
            )
            .await?
            .get(0);
        Ok(usize::try_from(sent).unwrap_or(0))
    })
    .await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((app_per_s, email_per_s))
}

pub async fn run_app_webhook_bench(
    database_url: &str,
    rate: u64,
    seconds: u64,
    messages: usize,
) -> anyhow::Result<AppWebhookBenchReport> {
    let (latency_samples, p50, p99, max) = latency(database_url, rate, seconds).await?;
    let (app_webhooks_per_s, emails_per_s) = throughput(database_url, messages).await?;
    Ok(AppWebhookBenchReport {
        rate_per_s: rate,
        latency_samples,
        latency_p50_ms: p50,
        latency_p99_ms: p99,
        latency_max_ms: max,
        throughput_messages: messages,
        app_webhooks_per_s,
        emails_per_s,
        ratio_to_email: app_webhooks_per_s / emails_per_s.max(1e-9),
    })
}

pub fn print_app_webhook_report(r: &AppWebhookBenchReport) {
    println!("application webhook benchmark (local PostgreSQL, a receiver on loopback)");
    println!(
        "append -> application's 2xx at {}/s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} messages; target p99 < 1000 ms)",
        r.rate_per_s, r.latency_p50_ms, r.latency_p99_ms, r.latency_max_ms, r.latency_samples
    );
    println!(
        "{} owed at once: application webhooks {:.0}/s, confirmation emails (to a mail directory) {:.0}/s, ratio {:.2}",
        r.throughput_messages, r.app_webhooks_per_s, r.emails_per_s, r.ratio_to_email
    );
}
