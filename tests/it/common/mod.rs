//! A fresh PostgreSQL database per test, so tests run in parallel and never
//! see each other's rows. Dropped (with FORCE) when the test ends, also on
//! panic.
#![allow(dead_code)]

use payledger::clock::SystemClock;
use payledger::db::{create_database_if_missing, Database};
use payledger::store::PgEventStore;
use payledger_events::{Actor, DomainEvent, EventData, Metadata, StatusLinkRequested};
use std::sync::Arc;
use uuid::Uuid;

pub fn server_url() -> String {
    std::env::var("PAYLEDGER_TEST_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestDb {
    pub name: String,
    pub url: String,
    pub db: Database,
}

impl TestDb {
    pub async fn new() -> TestDb {
        Self::with_pool_size(16).await
    }

    pub async fn with_pool_size(size: usize) -> TestDb {
        let name = format!("payledger_test_{}", Uuid::new_v4().simple());
        let url = format!("{}/{}", server_url(), name);
        create_database_if_missing(&url)
            .await
            .expect("create test database");
        let db = Database::connect(&url, size)
            .await
            .expect("connect test database");
        db.migrate().await.expect("migrate test database");
        TestDb { name, url, db }
    }

    pub fn store(&self) -> PgEventStore {
        PgEventStore::new(self.db.pool.clone(), Arc::new(SystemClock))
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = self
            .db
            .config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a short-lived runtime on its own thread
        // does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(
                    &format!("{}/postgres", server_url()),
                    tokio_postgres::NoTls,
                )
                .await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A small event with a random id, for store tests that do not care what it says.
pub fn any_event() -> EventData {
    let event: DomainEvent = StatusLinkRequested {
        request_id: Uuid::new_v4(),
        email: "ann@example.com".into(),
    }
    .into();
    EventData::new(
        &event,
        Uuid::new_v4(),
        Metadata::new(
            Uuid::new_v4(),
            Actor::Customer("ann@example.com".into()),
            "test",
        ),
    )
    .expect("encode")
}

pub fn event_with_id(id: Uuid) -> EventData {
    EventData {
        event_id: id,
        ..any_event()
    }
}

/// Reads the global order from the start until `n` events are readable. The
/// gap-safe order holds back events while any older transaction in the
/// cluster (other tests' too) is still running, so readers wait.
pub async fn read_all_when_visible<S: payledger::store::EventStore>(
    store: &S,
    n: usize,
) -> Vec<payledger_events::RecordedEvent> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let all = store
            .read_all(payledger_events::Checkpoint::START, 1_000_000)
            .await
            .expect("read_all");
        if all.len() >= n || std::time::Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub const WEBHOOK_SECRET: &str = "whsec_test_secret";

/// `serve` in-process on a free port, against the test database.
pub async fn start_serve(t: &TestDb, secrets: &[&str]) -> String {
    start_serve_with_pool(t.db.pool.clone(), secrets).await
}

pub async fn start_serve_with_pool(pool: deadpool_postgres::Pool, secrets: &[&str]) -> String {
    let clock: Arc<dyn payledger::clock::Clock> = Arc::new(SystemClock);
    let state = payledger::http::AppState::new(
        PgEventStore::new(pool, clock.clone()),
        clock,
        secrets.iter().map(|s| s.to_string()).collect(),
    );
    serve_state(state).await
}

/// `serve` in-process with the given state (its site settings included).
pub async fn serve_state(state: payledger::http::AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(payledger::http::serve(
        listener,
        state,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

/// The processor simulator in-process on a free port.
pub async fn start_sim(
    webhook_url: Option<String>,
    seed: u64,
) -> (payledger_sim::Simulator, String) {
    start_sim_speaking(webhook_url, seed, None).await
}

/// [`start_sim`] sending the wire shapes of `api_version`.
pub async fn start_sim_speaking(
    webhook_url: Option<String>,
    seed: u64,
    api_version: Option<&str>,
) -> (payledger_sim::Simulator, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let sim = payledger_sim::Simulator::new(payledger_sim::SimConfig {
        webhook_url,
        webhook_secret: WEBHOOK_SECRET.into(),
        seed,
        public_url: base.clone(),
        retry: payledger_sim::RetryPolicy {
            first_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_millis(500),
            max_attempts: 200,
            request_timeout: std::time::Duration::from_secs(5),
            ..Default::default()
        },
        api_version: api_version.map(str::to_string),
        prices: vec![],
    });
    tokio::spawn(payledger_sim::serve(sim.clone(), listener));
    (sim, base)
}

pub fn processor_client(base: &str) -> payledger::processor::client::ProcessorClient {
    payledger::processor::client::ProcessorClient::new(
        url::Url::parse(base).expect("url"),
        "sk_test_123",
        payledger::processor::client::ClientRetry {
            max_attempts: 5,
            first_backoff: std::time::Duration::from_millis(20),
            max_backoff: std::time::Duration::from_millis(200),
            request_timeout: std::time::Duration::from_secs(10),
        },
    )
}

/// Counts rows of an event type in the log (committed, whatever the horizon).
pub async fn count_events(t: &TestDb, event_type: &str) -> i64 {
    t.client()
        .await
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = $1",
            &[&event_type],
        )
        .await
        .expect("count")
        .get(0)
}

/// Polls `check` until it holds or `secs` pass; returns whether it held.
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A TCP forwarder in front of PostgreSQL that a test can cut, to make the
/// store unreachable mid-run.
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    cut: Arc<tokio::sync::Notify>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: &str) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let cut = Arc::new(tokio::sync::Notify::new());
        let target = target.to_string();
        let cut_all = cut.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                let cut = cut_all.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        TcpProxy { addr, cut, accept }
    }

    /// Closes every connection and stops accepting new ones.
    pub fn cut(&self) {
        self.accept.abort();
        self.cut.notify_waiters();
    }
}

pub fn stripe_event(id: &str, kind: &str, object: serde_json::Value) -> String {
    serde_json::json!({
        "id": id, "object": "event", "api_version": "2025-09-30.clover",
        "created": chrono::Utc::now().timestamp(), "livemode": false, "pending_webhooks": 1,
        "type": kind, "data": { "object": object }
    })
    .to_string()
}

pub async fn post_signed(base: &str, body: &str, secret: &str) -> reqwest::Response {
    let header = payledger::processor::signature::sign(
        body.as_bytes(),
        secret,
        chrono::Utc::now().timestamp(),
    );
    reqwest::Client::new()
        .post(format!("{base}/webhooks/stripe"))
        .header("Stripe-Signature", header)
        .body(body.to_string())
        .send()
        .await
        .expect("post")
}

pub mod ledger;
pub mod renewals;
pub mod runner;
pub mod shop;
pub mod smtp;

/// Installs every projection and steps them until each has applied every
/// committed event (waiting out the gap-safe horizon if needed).
pub async fn project_everything(pool: &deadpool_postgres::Pool) {
    project_everything_in_batches(pool, 500).await
}

/// [`project_everything`], `batch` events a transaction.
pub async fn project_everything_in_batches(pool: &deadpool_postgres::Pool, batch: i64) {
    use payledger_projections::runner;
    for p in payledger_projections::all() {
        runner::install(pool, p.as_ref(), 100).await.unwrap();
    }
    // A guard against a projection that never catches up, not a timing:
    // fifty thousand events in a debug build on a loaded 2-core machine
    // took past two minutes once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let mut client = pool.get().await.unwrap();
        for p in payledger_projections::all() {
            while let runner::Step::Applied(_) =
                runner::step(&mut client, p.as_ref(), batch).await.unwrap()
            {}
        }
        let behind: i64 = client
            .query_one(
                "SELECT count(*) FROM projection_state s WHERE s.status = 'running' AND EXISTS (
                   SELECT 1 FROM events e WHERE (e.transaction_id, e.position) > (s.checkpoint_tx, s.checkpoint_pos))",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if behind == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "projections did not catch up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every read-model view, as sorted JSON rows.
pub async fn dump_read_models(pool: &deadpool_postgres::Pool) -> Vec<(String, Vec<String>)> {
    let client = pool.get().await.unwrap();
    let mut out = vec![];
    for table in [
        "subscriptions",
        "outgoing_emails",
        "discrepancies",
        "timeline",
    ] {
        let rows = client
            .query(
                &format!("SELECT row_to_json(t)::text FROM public.{table} t ORDER BY 1"),
                &[],
            )
            .await
            .unwrap();
        out.push((table.to_string(), rows.iter().map(|r| r.get(0)).collect()));
    }
    out
}

/// `POST /_sim/charges`: as if a customer had paid; the simulator's answer.
pub async fn sim_charge(sim_base: &str, body: serde_json::Value) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{sim_base}/_sim/charges"))
        .json(&body)
        .send()
        .await
        .expect("post /_sim/charges")
        .json()
        .await
        .expect("simulator answer")
}
