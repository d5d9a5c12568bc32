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
pub async fn read_all_when_visible(
    store: &payledger::store::PgEventStore,
    n: usize,
) -> Vec<payledger_events::RecordedEvent> {
    use payledger::store::EventStore;
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
