//! Support alerts against a local HTTP receiver: one new discrepancy → one
//! alert; a burst → one grouped alert per interval; a receiver that is down
//! → retried, not lost.

use crate::common::ledger::*;
use crate::common::*;
use payledger::clock::ManualClock;
use payledger::reactors::alerts::{alert_due, AlertConfig};
use payledger::store::PgEventStore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Receiver {
    posts: Arc<Mutex<Vec<serde_json::Value>>>,
    fail_next: Arc<AtomicUsize>,
}

async fn start_receiver() -> (Receiver, url::Url) {
    let receiver = Receiver::default();
    let r = receiver.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let r = r.clone();
            async move {
                if r.fail_next.load(Ordering::SeqCst) > 0 {
                    r.fail_next.fetch_sub(1, Ordering::SeqCst);
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                r.posts.lock().unwrap().push(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

fn config(url: url::Url) -> AlertConfig {
    AlertConfig {
        webhook: Some(url),
        email: None,
        interval: chrono::Duration::minutes(1),
        tick: std::time::Duration::from_millis(100),
    }
}

fn at_offset(t: &TestDb, seconds: i64) -> PgEventStore {
    PgEventStore::new(
        t.db.pool.clone(),
        Arc::new(ManualClock::new(
            chrono::Utc::now() + chrono::Duration::seconds(seconds),
        )),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_new_discrepancy_is_one_alert_and_a_burst_is_one_grouped_alert() {
    let t = TestDb::new().await;
    let store = t.store();
    let (receiver, url) = start_receiver().await;
    append(
        &store,
        vec![charge("pi_alone", None, Some("a@example.com"), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        alert_due(&at_offset(&t, 0), &config(url.clone()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        alert_due(&at_offset(&t, 120), &config(url.clone()))
            .await
            .unwrap(),
        0,
        "told once"
    );
    {
        let posts = receiver.posts.lock().unwrap();
        assert_eq!(posts.len(), 1);
        let text = posts[0]["text"].as_str().unwrap();
        for needle in [
            "unmatched_charge",
            "249.00 USD",
            "a@example.com",
            "payledger support rescue pi_alone",
        ] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
    }

    let burst: Vec<_> = (0..50)
        .map(|i| {
            charge(
                &format!("pi_burst_{i}"),
                None,
                Some(&format!("b{i}@example.com")),
                24900,
                i,
            )
        })
        .collect();
    append(&store, burst).await;
    project_everything(&t.db.pool).await;
    // Within the minute of the last alert: held back, not lost.
    assert_eq!(
        alert_due(&at_offset(&t, 30), &config(url.clone()))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        alert_due(&at_offset(&t, 200), &config(url.clone()))
            .await
            .unwrap(),
        50
    );
    let posts = receiver.posts.lock().unwrap();
    assert_eq!(posts.len(), 2, "the burst is one message");
    assert!(posts[1]["text"]
        .as_str()
        .unwrap()
        .contains("50 new discrepancies"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_the_receiver_refuses_is_retried_until_delivered() {
    let t = TestDb::new().await;
    let store = t.store();
    let (receiver, url) = start_receiver().await;
    receiver.fail_next.store(3, Ordering::SeqCst);
    append(
        &store,
        vec![charge("pi_retry", None, Some("r@example.com"), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    for _ in 0..3 {
        assert!(alert_due(&store, &config(url.clone())).await.is_err());
    }
    assert_eq!(alert_due(&store, &config(url.clone())).await.unwrap(), 1);
    assert_eq!(receiver.posts.lock().unwrap().len(), 1);
    let recorded: i64 = t
        .client()
        .await
        .query_one("SELECT count(*) FROM alert_deliveries WHERE discrepancy_id = 'unmatched_charge:pi_retry'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_projection_is_alerted_once_per_stop_with_where_and_why() {
    let t = TestDb::new().await;
    let (receiver, url) = start_receiver().await;
    project_everything(&t.db.pool).await;
    t.client()
        .await
        .execute(
            "UPDATE projection_state SET status = 'stopped', error_position = 42,
                error_event_type = 'ChargeSucceeded', last_error = 'the rule panicked: overflow'
             WHERE name = 'subscriptions'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        alert_due(&at_offset(&t, 0), &config(url.clone()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        alert_due(&at_offset(&t, 120), &config(url.clone()))
            .await
            .unwrap(),
        0
    );
    let posts = receiver.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1);
    let text = posts[0].to_string();
    assert!(
        text.contains("PROJECTION STOPPED: subscriptions at position 42")
            && text.contains("the rule panicked: overflow"),
        "{text}"
    );
}

/// The alert email to support carries a Message-ID derived from what it
/// announces (a resend after a crash threads with the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_email_has_a_message_id_from_what_it_announces() {
    let t = TestDb::new().await;
    let sink = crate::common::smtp::SmtpSink::start().await;
    append(
        &t.store(),
        vec![charge("pi_mailed", None, Some("m@example.com"), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    let mailer = payledger::reactors::mail::Mailer::smtp(
        &sink.url(),
        "payments@shop.example".parse().unwrap(),
    )
    .unwrap();
    let config = AlertConfig {
        webhook: None,
        email: Some(("help@shop.example".parse().unwrap(), mailer)),
        interval: chrono::Duration::minutes(1),
        tick: std::time::Duration::from_millis(100),
    };
    assert_eq!(alert_due(&t.store(), &config).await.unwrap(), 1);
    let received = sink.received();
    assert_eq!(
        received[0].header("Subject").as_deref(),
        Some("payledger: 1 discrepancy needs a look")
    );
    let id = received[0].header("Message-ID").unwrap_or_default();
    assert!(
        id.starts_with("<alert.") && id.ends_with("@shop.example>"),
        "{id:?}"
    );
}
