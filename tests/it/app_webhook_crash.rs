//! `work` killed with SIGKILL at random moments while 3,000 messages to the
//! product's application are due: every message arrives (each webhook-id
//! at least once), and a duplicate is only the one message in flight when
//! a kill landed — duplicates never outnumber the kills.

use crate::common::ledger::*;
use crate::common::*;
use payledger::reactors::app_webhooks::signing;
use rand::Rng;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Enough that twenty lifetimes of `work` cannot deliver them all: with
/// 2,000, a run once delivered every one within 18 kills and the test's
/// own precondition (20 kills while messages were due) failed.
const MESSAGES: usize = 3000;

fn spawn_worker(t: &TestDb, url: &str, secret: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_payledger"))
        .arg("work")
        .env("DATABASE_URL", &t.url)
        .env("PAYLEDGER_APP_WEBHOOK_URL", url)
        .env("PAYLEDGER_APP_WEBHOOK_SECRET", secret)
        .env("PAYLEDGER_APP_WEBHOOK_LEASE", "2s")
        .env("PAYLEDGER_RECONCILE_EVERY", "off")
        .env_remove("SMTP_URL")
        .env_remove("PAYLEDGER_MAIL_DIR")
        .env_remove("PAYLEDGER_PLANS")
        .env_remove("PAYLEDGER_ALERT_WEBHOOK")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn payledger work")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_killed_twenty_times_delivers_every_message_with_duplicates_only_from_kills() {
    let t = TestDb::new().await;
    t.db.install_read_models().await.unwrap();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hooks",
        // Reads the body as an application does: a server that answers
        // before reading it may reset the connection under the sender,
        // which then cannot know the message arrived (a retry, not a loss).
        axum::routing::post(move |headers: axum::http::HeaderMap, _body: String| {
            let g = g.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                g.lock().unwrap().push(id);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let secret = signing::new_secret();

    // The endpoint exists before the changes (the first start records it).
    let mut first = spawn_worker(&t, &url, &secret);
    let recorded = eventually(30, || async {
        count_events(&t, "AppWebhookEndpointAdded").await == 1
    })
    .await;
    let _ = first.kill();
    let _ = first.wait();
    assert!(recorded, "PAYLEDGER_APP_WEBHOOK_URL recorded an endpoint");
    let mut history = vec![];
    for i in 0..MESSAGES {
        let checkout = Uuid::new_v4();
        let email = format!("app{i}@example.com");
        history.push(checkout_started(checkout, &email, 24900));
        history.push(charge(
            &format!("pi_app_crash_{i}"),
            Some(checkout),
            Some(&email),
            24900,
            0,
        ));
    }
    append_batched(&t.store(), history, 200).await;
    project_everything(&t.db.pool).await;

    let distinct = |got: &Arc<Mutex<Vec<String>>>| {
        got.lock()
            .unwrap()
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let mut kills = 0;
    let mut kills_while_due = 0;
    let mut rng = rand::rng();
    while kills < 25 && distinct(&got) < MESSAGES {
        let mut worker = spawn_worker(&t, &url, &secret);
        tokio::time::sleep(std::time::Duration::from_millis(rng.random_range(150..600))).await;
        let due = distinct(&got) < MESSAGES;
        let _ = worker.kill();
        let _ = worker.wait();
        kills += 1;
        if due {
            kills_while_due += 1;
        }
    }
    let mut worker = spawn_worker(&t, &url, &secret);
    let done = eventually(120, || async { distinct(&got) >= MESSAGES }).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(
        done,
        "every message delivered ({} of {MESSAGES})",
        distinct(&got)
    );

    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for id in got.lock().unwrap().iter() {
        *per_id.entry(id.clone()).or_default() += 1;
    }
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    eprintln!(
        "app webhook crash test: {MESSAGES} messages, {kills} kills ({kills_while_due} while due), {} distinct delivered, {duplicates} duplicates",
        per_id.len()
    );
    assert!(
        kills_while_due >= 20,
        "only {kills_while_due} kills landed while messages were due"
    );
    assert_eq!(per_id.len(), MESSAGES);
    assert!(
        duplicates <= kills_while_due,
        "{duplicates} duplicates > {kills_while_due} kills"
    );
}
