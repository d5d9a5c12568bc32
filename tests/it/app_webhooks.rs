//! Telling the product's application (spec §13): every change of access is
//! a signed message the Standard Webhooks reference library verifies,
//! delivered in order per customer, retried, and stopped by a 410.

use crate::common::ledger::*;
use crate::common::*;
use payledger::clock::{Clock, ManualClock};
use payledger::reactors::app_webhooks::{endpoints, sender};
use payledger::store::PgEventStore;
use payledger_events::Actor;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

#[derive(Clone, Debug, serde::Serialize)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// The application: records what it is sent, answers `status`.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

async fn receiver() -> Receiver {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let status = Arc::new(AtomicU16::new(200));
    let (g, s) = (got.clone(), status.clone());
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                g.lock().unwrap().push(Received {
                    id: h("webhook-id"),
                    timestamp: h("webhook-timestamp"),
                    signature: h("webhook-signature"),
                    body,
                });
                axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, got, status }
}

/// What the reference library says of each message under `secret`.
fn verified_by_the_reference_library(messages: &[Received], secret: &str) -> Vec<bool> {
    let input = serde_json::to_string(&serde_json::json!({"secret": secret, "messages": messages}))
        .unwrap();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
task = json.load(sys.stdin)
wh = Webhook(task["secret"])
out = []
for m in task["messages"]:
    try:
        wh.verify(m["body"], {"webhook-id": m["id"], "webhook-timestamp": m["timestamp"], "webhook-signature": m["signature"]})
        out.append(True)
    except Exception:
        out.append(False)
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with standardwebhooks (pip install standardwebhooks)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the verifying script failed (pip install standardwebhooks)"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn store_at(t: &TestDb, clock: &Arc<ManualClock>) -> PgEventStore {
    let c: Arc<dyn Clock> = clock.clone();
    PgEventStore::new(t.db.pool.clone(), c)
}

fn config() -> sender::AppWebhookConfig {
    sender::AppWebhookConfig {
        timeout: std::time::Duration::from_secs(5),
        ..Default::default()
    }
}

async fn deliver(store: &PgEventStore) -> sender::DeliveryReport {
    sender::deliver_due(store, &reqwest::Client::new(), &config())
        .await
        .unwrap()
}

fn body(m: &Received) -> serde_json::Value {
    serde_json::from_str(&m.body).unwrap()
}

async fn bought(t: &TestDb, email: &str, payment: &str) {
    let checkout = Uuid::new_v4();
    append_batched(
        &t.store(),
        vec![
            checkout_started(checkout, email, 24900),
            charge(payment, Some(checkout), Some(email), 24900, 0),
        ],
        10,
    )
    .await;
    project_everything(&t.db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_verifies_with_the_standard_webhooks_library_and_a_tampered_one_does_not() {
    let t = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let store = store_at(&t, &clock);
    let app = receiver().await;
    let added = endpoints::add(&store, &app.url, vec![], &Actor::Support("ann".into()))
        .await
        .unwrap();
    bought(&t, "ann@example.com", "pi_app_1").await;
    append_batched(
        &t.store(),
        vec![refunded("pi_app_1", "re_app_1", 24900)],
        10,
    )
    .await;
    project_everything(&t.db.pool).await;
    deliver(&store).await;
    deliver(&store).await;
    let got = app.got.lock().unwrap().clone();
    let types: Vec<String> = got
        .iter()
        .map(|m| body(m)["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["subscription.activated", "subscription.refunded"]);
    let versions: Vec<i64> = got
        .iter()
        .map(|m| body(m)["data"]["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2], "version counts the customer's changes");
    let first = body(&got[0]);
    assert_eq!(first["data"]["email"], "ann@example.com");
    assert_eq!(first["data"]["active"], true);
    assert_eq!(first["data"]["status"], "active");

    assert_eq!(
        verified_by_the_reference_library(&got, &added.secret),
        [true, true]
    );
    // The sanity of the check: a changed body, or another secret, fails.
    let mut tampered = got[0].clone();
    tampered.body = tampered.body.replace("ann@example.com", "eve@example.com");
    let other = payledger::reactors::app_webhooks::signing::new_secret();
    assert_eq!(
        verified_by_the_reference_library(&[tampered], &added.secret),
        [false]
    );
    assert_eq!(
        verified_by_the_reference_library(&got[..1], &other),
        [false]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_application_gets_each_customers_messages_in_order_after_its_retries() {
    let t = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let store = store_at(&t, &clock);
    let app = receiver().await;
    endpoints::add(&store, &app.url, vec![], &Actor::Support("ann".into()))
        .await
        .unwrap();
    app.status.store(500, Ordering::SeqCst);
    bought(&t, "ann@example.com", "pi_app_2").await;
    append_batched(
        &t.store(),
        vec![refunded("pi_app_2", "re_app_2", 24900)],
        10,
    )
    .await;
    project_everything(&t.db.pool).await;

    let report = deliver(&store).await;
    assert_eq!(
        report.retrying, 1,
        "only the first of the customer's messages is tried"
    );
    let again = deliver(&store).await;
    assert_eq!(again.retrying + again.sent, 0, "the retry waits 5 s");
    app.status.store(200, Ordering::SeqCst);
    clock.advance(chrono::Duration::seconds(6));
    deliver(&store).await;
    deliver(&store).await;
    let got = app.got.lock().unwrap().clone();
    let seen: Vec<(String, i64)> = got
        .iter()
        .map(|m| (m.id.clone(), body(m)["data"]["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0], seen[1], "the retry carries the same webhook-id");
    assert_eq!((seen[1].1, seen[2].1), (1, 2), "version 2 only after 1");
    let attempts = endpoints::deliveries(
        &store,
        &endpoints::list(&store).await.unwrap()[0].endpoint_id,
        true,
    )
    .await
    .unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_the_old_and_the_new_secret_both_verify() {
    let t = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let store = store_at(&t, &clock);
    let app = receiver().await;
    let ann = Actor::Support("ann".into());
    let added = endpoints::add(&store, &app.url, vec![], &ann)
        .await
        .unwrap();
    let new = endpoints::rotate_secret(&store, &added.endpoint_id, &ann)
        .await
        .unwrap();
    bought(&t, "bob@example.com", "pi_app_3").await;
    deliver(&store).await;
    let got = app.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].signature.split(' ').count(),
        2,
        "{}",
        got[0].signature
    );
    assert_eq!(
        verified_by_the_reference_library(&got, &added.secret),
        [true]
    );
    assert_eq!(verified_by_the_reference_library(&got, &new), [true]);

    // After the overlap only the new one signs.
    clock.advance(chrono::Duration::hours(25));
    append_batched(
        &t.store(),
        vec![refunded("pi_app_3", "re_app_3", 24900)],
        10,
    )
    .await;
    project_everything(&t.db.pool).await;
    deliver(&store).await;
    let last = app.got.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.signature.split(' ').count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_disables_the_endpoint_and_replay_resends_with_the_original_ids() {
    let t = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let store = store_at(&t, &clock);
    let app = receiver().await;
    let ann = Actor::Support("ann".into());
    let added = endpoints::add(&store, &app.url, vec![], &ann)
        .await
        .unwrap();
    let start = clock.now();
    bought(&t, "cid@example.com", "pi_app_4").await;
    deliver(&store).await;
    let first = app.got.lock().unwrap()[0].clone();

    let n = endpoints::replay(&store, &added.endpoint_id, start, &ann)
        .await
        .unwrap();
    assert_eq!(n, 1);
    deliver(&store).await;
    let again = app.got.lock().unwrap()[1].clone();
    assert_eq!(again.id, first.id, "a replay keeps the message's id");
    assert_eq!(again.body, first.body);

    app.status.store(410, Ordering::SeqCst);
    endpoints::replay(&store, &added.endpoint_id, start, &ann)
        .await
        .unwrap();
    deliver(&store).await;
    let list = endpoints::list(&store).await.unwrap();
    assert!(!list[0].enabled, "{list:?}");
    assert_eq!(count_events(&t, "AppWebhookEndpointDisabled").await, 1);
    let before = app.got.lock().unwrap().len();
    append_batched(
        &t.store(),
        vec![refunded("pi_app_4", "re_app_4", 24900)],
        10,
    )
    .await;
    project_everything(&t.db.pool).await;
    deliver(&store).await;
    assert_eq!(
        app.got.lock().unwrap().len(),
        before,
        "nothing more goes to a disabled endpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_day_gets_every_message_afterwards_in_order_per_customer() {
    let t = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let store = store_at(&t, &clock);
    let app = receiver().await;
    endpoints::add(&store, &app.url, vec![], &Actor::Support("ann".into()))
        .await
        .unwrap();
    app.status.store(503, Ordering::SeqCst);
    const CUSTOMERS: usize = 20;
    let mut history = vec![];
    for i in 0..CUSTOMERS {
        let checkout = Uuid::new_v4();
        let email = format!("down{i}@example.com");
        let payment = format!("pi_down_{i}");
        history.push(checkout_started(checkout, &email, 24900));
        history.push(charge(&payment, Some(checkout), Some(&email), 24900, 0));
        history.push(refunded(&payment, &format!("re_down_{i}"), 24900));
    }
    append_batched(&t.store(), history, 50).await;
    project_everything(&t.db.pool).await;

    // A day of the schedule passes with the receiver down.
    let mut passes = 0;
    let day_later = clock.now() + chrono::Duration::hours(24);
    while clock.now() < day_later {
        deliver(&store).await;
        clock.advance(chrono::Duration::minutes(20));
        passes += 1;
    }
    let tried_while_down = app.got.lock().unwrap().len();
    assert!(
        tried_while_down >= CUSTOMERS,
        "every customer's first message was tried"
    );
    app.status.store(200, Ordering::SeqCst);
    // The last retries of the schedule (10 h apart) come within a day more.
    for _ in 0..30 {
        deliver(&store).await;
        clock.advance(chrono::Duration::hours(1));
    }
    let got = app.got.lock().unwrap().clone();
    let ok: Vec<&Received> = got[tried_while_down..].iter().collect();
    let mut by_customer: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for m in &ok {
        let b = body(m);
        by_customer
            .entry(b["data"]["email"].as_str().unwrap().to_string())
            .or_default()
            .push(b["data"]["version"].as_i64().unwrap());
    }
    assert_eq!(by_customer.len(), CUSTOMERS, "{passes} passes");
    for (email, versions) in &by_customer {
        assert_eq!(
            versions,
            &vec![1, 2],
            "{email}: every message once it is up, in order"
        );
    }
    let ids: std::collections::BTreeSet<&str> = ok.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 2 * CUSTOMERS, "each webhook-id delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_uses_every_retry_opens_app_webhook_undeliverable_and_the_next_goes_on() {
    let t = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let store = store_at(&t, &clock);
    let app = receiver().await;
    endpoints::add(&store, &app.url, vec![], &Actor::Support("ann".into()))
        .await
        .unwrap();
    app.status.store(500, Ordering::SeqCst);
    bought(&t, "dan@example.com", "pi_app_5").await;
    for _ in 0..40 {
        deliver(&store).await;
        clock.advance(chrono::Duration::hours(1));
    }
    assert_eq!(
        app.got.lock().unwrap().len(),
        8,
        "the first try and seven retries"
    );
    assert_eq!(count_events(&t, "AppWebhookMessageFailed").await, 1);
    project_everything(&t.db.pool).await;
    let c = t.db.pool.get().await.unwrap();
    let open: i64 = c
        .query_one(
            "SELECT count(*) FROM discrepancies WHERE kind = 'app_webhook_undeliverable' AND status = 'open' AND customer_email = 'dan@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 1);
    // A failed message does not hold the customer's next one back.
    app.status.store(200, Ordering::SeqCst);
    append_batched(
        &t.store(),
        vec![refunded("pi_app_5", "re_app_5", 24900)],
        10,
    )
    .await;
    project_everything(&t.db.pool).await;
    deliver(&store).await;
    let last = app.got.lock().unwrap().last().cloned().unwrap();
    assert_eq!(body(&last)["type"], "subscription.refunded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_five_days_is_disabled() {
    let t = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let store = store_at(&t, &clock);
    let app = receiver().await;
    endpoints::add(&store, &app.url, vec![], &Actor::Support("ann".into()))
        .await
        .unwrap();
    app.status.store(502, Ordering::SeqCst);
    let started = clock.now();
    for day in 0..7 {
        // Something to say every day, so attempts go on past the schedule
        // of any one message.
        bought(
            &t,
            &format!("day{day}@example.com"),
            &format!("pi_day_{day}"),
        )
        .await;
        for _ in 0..24 {
            deliver(&store).await;
            clock.advance(chrono::Duration::hours(1));
        }
        let enabled = endpoints::list(&store).await.unwrap()[0].enabled;
        let failing_for = clock.now() - started;
        if failing_for < chrono::Duration::days(5) {
            assert!(enabled, "still enabled after {failing_for}");
        }
    }
    let list = endpoints::list(&store).await.unwrap();
    assert!(!list[0].enabled, "disabled after five days of failures");
    assert!(
        list[0]
            .disabled_reason
            .as_deref()
            .unwrap_or_default()
            .contains("5 days"),
        "{list:?}"
    );
    assert_eq!(count_events(&t, "AppWebhookEndpointDisabled").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_resends_exactly_the_messages_since_its_timestamp_and_disable_stops_delivery() {
    let t = TestDb::new().await;
    let store = t.store();
    let app = receiver().await;
    let ann = Actor::Support("ann".into());
    let added = endpoints::add(&store, &app.url, vec![], &ann)
        .await
        .unwrap();
    bought(&t, "early@example.com", "pi_app_early").await;
    // Message timestamps are whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let since = chrono::Utc::now();
    bought(&t, "late1@example.com", "pi_app_late1").await;
    bought(&t, "late2@example.com", "pi_app_late2").await;
    deliver(&store).await;
    let first: Vec<Received> = app.got.lock().unwrap().clone();
    assert_eq!(first.len(), 3);

    let n = endpoints::replay(&store, &added.endpoint_id, since, &ann)
        .await
        .unwrap();
    assert_eq!(
        n, 2,
        "the two changes since the timestamp, not the one before"
    );
    deliver(&store).await;
    let replayed: Vec<Received> = app.got.lock().unwrap()[3..].to_vec();
    let emails: Vec<String> = replayed
        .iter()
        .map(|m| body(m)["data"]["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(emails, ["late1@example.com", "late2@example.com"]);
    for m in &replayed {
        let original = first.iter().find(|f| f.body == m.body).unwrap();
        assert_eq!(m.id, original.id, "a replay keeps each message's id");
    }

    assert!(endpoints::disable(&store, &added.endpoint_id, "test", &ann)
        .await
        .unwrap());
    bought(&t, "after@example.com", "pi_app_after").await;
    deliver(&store).await;
    assert_eq!(
        app.got.lock().unwrap().len(),
        5,
        "nothing goes to an endpoint disabled with `disable`"
    );
}
