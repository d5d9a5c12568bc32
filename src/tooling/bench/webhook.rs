//! `payledger bench webhook`: signed webhook ingestion over loopback HTTP
//! into the real server, beside a raw single-row INSERT of the same payload,
//! at the same concurrency, in the same run.

use super::{fresh_bench_database, measure, raw_insert_op, Measured};
use payledger::clock::{Clock, SystemClock};
use payledger::processor::signature;
use payledger::state::AppState;
use payledger::store::{GroupCommitConfig, PgEventStore};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const SECRET: &str = "whsec_bench";

#[derive(Debug, Serialize)]
pub struct WebhookBenchRow {
    pub clients: usize,
    pub raw_inserts_per_s: f64,
    /// Two rows per statement: the verbatim record and the fact, which is
    /// what one webhook stores.
    pub raw_pair_inserts_per_s: f64,
    /// One statement and one commit per webhook (group commit off).
    pub webhooks_alone_per_s: f64,
    /// With group commit (the default of `serve` and `run`).
    pub webhooks_per_s: f64,
    /// Appends per grouped statement during the grouped run.
    pub appends_per_group: f64,
    pub ratio: f64,
    pub ratio_alone: f64,
    pub ratio_to_pair: f64,
    pub webhook_p50_ms: f64,
    pub webhook_p99_ms: f64,
    pub raw_p50_ms: f64,
    pub raw_p99_ms: f64,
}

/// A `checkout.session.completed` for a new payment, as the processor sends it.
fn callback_body(i: u64) -> String {
    let n = Uuid::new_v4().simple().to_string();
    serde_json::json!({
        "id": format!("evt_{n}"), "object": "event", "api_version": "2025-09-30.clover",
        "created": chrono::Utc::now().timestamp(), "livemode": false, "pending_webhooks": 1,
        "type": "checkout.session.completed",
        "data": {"object": {
            "id": format!("cs_{n}"), "object": "checkout.session", "amount_total": 24900, "currency": "usd",
            "client_reference_id": Uuid::new_v4().to_string(),
            "customer_details": {"email": format!("customer{i}@example.com")},
            "payment_intent": format!("pi_{n}"), "payment_status": "paid", "status": "complete",
            "mode": "payment", "created": chrono::Utc::now().timestamp()
        }}
    })
    .to_string()
}

fn raw_sample(i: u64) -> Option<(Uuid, serde_json::Value, serde_json::Value)> {
    let body: serde_json::Value = serde_json::from_str(&callback_body(i)).ok()?;
    Some((
        Uuid::new_v4(),
        body,
        serde_json::json!({"actor": "system:webhook", "source": "webhook"}),
    ))
}

/// The baseline a webhook really competes with: the same two rows (the
/// verbatim body and a fact-sized payload) in one single statement.
fn raw_pair_op(
    pool: deadpool_postgres::Pool,
) -> impl Fn(usize, u64) -> Pin<Box<dyn Future<Output = u64> + Send>> + Send + Sync + Clone + 'static
{
    move |_, i| {
        let pool = pool.clone();
        Box::pin(async move {
            let Some((id, body, metadata)) = raw_sample(i) else {
                return 0;
            };
            let fact = serde_json::json!({"payment_id": format!("pi_{id}"), "amount": 24900, "currency": "usd",
                "customer_email": "c@example.com", "checkout_reference": id.to_string(), "source": "webhook"});
            let Ok(c) = pool.get().await else { return 0 };
            let Ok(st) = c
                .prepare_cached(
                    "INSERT INTO bench_raw_insert (stream_id, event_id, event_type, payload, metadata, recorded_at)
                     VALUES ($1, $2, 'ProcessorEventReceived', $3, $5, now()),
                            ($1, gen_random_uuid(), 'ChargeSucceeded', $4, $5, now())",
                )
                .await
            else {
                return 0;
            };
            let stream = format!("payment-{id}");
            c.execute(&st, &[&stream, &id, &body, &fact, &metadata])
                .await
                .map(|_| 1)
                .unwrap_or(0)
        })
    }
}

fn webhook_op(
    http: reqwest::Client,
    url: String,
) -> impl Fn(usize, u64) -> Pin<Box<dyn Future<Output = u64> + Send>> + Send + Sync + Clone + 'static
{
    move |_, i| {
        let (http, url) = (http.clone(), url.clone());
        Box::pin(async move {
            let body = callback_body(i);
            let header = signature::sign(body.as_bytes(), SECRET, chrono::Utc::now().timestamp());
            match http
                .post(&url)
                .header("Stripe-Signature", header)
                .body(body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => 1,
                _ => 0,
            }
        })
    }
}

/// A fresh bench database and the real server on it (with `serve`'s
/// default group commit), in this process; the database and the webhook URL.
pub async fn serve_fresh(
    database_url: &str,
    secret: &str,
) -> anyhow::Result<(payledger::db::Database, String)> {
    let db = fresh_bench_database(database_url).await?;
    let (url, _) = serve_on(&db, secret, Some(GroupCommitConfig::default())).await?;
    Ok((db, url))
}

/// The real server on `db`, in this process: its webhook URL and store.
async fn serve_on(
    db: &payledger::db::Database,
    secret: &str,
    group: Option<GroupCommitConfig>,
) -> anyhow::Result<(String, PgEventStore)> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut store = PgEventStore::new(db.pool.clone(), clock.clone());
    if let Some(g) = group {
        store = store.with_group_commit(g);
    }
    let state = AppState::new(store.clone(), clock, vec![secret.to_string()]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks/stripe", listener.local_addr()?);
    tokio::spawn(payledger::http::serve(
        listener,
        state,
        std::future::pending(),
    ));
    Ok((url, store))
}

pub async fn run_webhook_bench(
    database_url: &str,
    seconds: f64,
) -> anyhow::Result<Vec<WebhookBenchRow>> {
    let db = fresh_bench_database(database_url).await?;
    let (url, grouped) = serve_on(
        &db,
        SECRET,
        Some(payledger::config::group_commit()?.unwrap_or_default()),
    )
    .await?;
    let (alone_url, _) = serve_on(&db, SECRET, None).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    // Steady state: rows and statistics in both tables, as on a live system.
    let warm = webhook_op(http.clone(), url.clone());
    for i in 0..2_000 {
        warm(0, i).await;
    }
    let raw_warm = raw_insert_op(db.pool.clone(), raw_sample);
    for i in 0..2_000 {
        raw_warm(0, i).await;
    }
    db.pool
        .get()
        .await?
        .batch_execute("ANALYZE events; ANALYZE bench_raw_insert;")
        .await?;

    let run_for = Duration::from_secs_f64(seconds);
    let mut rows = vec![];
    for clients in [8usize, 32] {
        let raw: Measured =
            measure(clients, run_for, raw_insert_op(db.pool.clone(), raw_sample)).await;
        let pair: Measured = measure(clients, run_for, raw_pair_op(db.pool.clone())).await;
        let alone: Measured = measure(
            clients,
            run_for,
            webhook_op(http.clone(), alone_url.clone()),
        )
        .await;
        let before = grouped.group_commit_stats().unwrap_or_default();
        let hooks: Measured =
            measure(clients, run_for, webhook_op(http.clone(), url.clone())).await;
        let after = grouped.group_commit_stats().unwrap_or_default();
        let statements =
            (after.group_statements - before.group_statements) + (after.alone - before.alone);
        let appends =
            (after.grouped_appends - before.grouped_appends) + (after.alone - before.alone);
        rows.push(WebhookBenchRow {
            clients,
            raw_inserts_per_s: raw.per_second,
            raw_pair_inserts_per_s: pair.per_second,
            webhooks_alone_per_s: alone.per_second,
            webhooks_per_s: hooks.per_second,
            appends_per_group: appends as f64 / statements.max(1) as f64,
            ratio: hooks.per_second / raw.per_second.max(1e-9),
            ratio_alone: alone.per_second / raw.per_second.max(1e-9),
            ratio_to_pair: hooks.per_second / pair.per_second.max(1e-9),
            webhook_p50_ms: hooks.p50_ms,
            webhook_p99_ms: hooks.p99_ms,
            raw_p50_ms: raw.p50_ms,
            raw_p99_ms: raw.p99_ms,
        });
    }
    Ok(rows)
}

pub fn print_webhook_report(rows: &[WebhookBenchRow], seconds: f64) {
    println!("webhook ingestion benchmark ({seconds}s per run, loopback HTTP, local PostgreSQL)");
    println!(
        "{:>8} {:>12} {:>12} {:>11} {:>7} {:>10} {:>7} {:>6} {:>8} {:>18} {:>16}",
        "clients",
        "raw 1-row/s",
        "raw 2-row/s",
        "alone/s",
        "ratio",
        "grouped/s",
        "group",
        "ratio",
        "ratio/2",
        "grouped p50/p99 ms",
        "raw p50/p99 ms"
    );
    for r in rows {
        println!(
            "{:>8} {:>12.0} {:>12.0} {:>11.0} {:>7.2} {:>10.0} {:>7.1} {:>6.2} {:>8.2} {:>18} {:>16}",
            r.clients,
            r.raw_inserts_per_s,
            r.raw_pair_inserts_per_s,
            r.webhooks_alone_per_s,
            r.ratio_alone,
            r.webhooks_per_s,
            r.appends_per_group,
            r.ratio,
            r.ratio_to_pair,
            format!("{:.2} / {:.2}", r.webhook_p50_ms, r.webhook_p99_ms),
            format!("{:.2} / {:.2}", r.raw_p50_ms, r.raw_p99_ms)
        );
    }
}
