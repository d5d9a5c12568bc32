//! What only the PostgreSQL store can get wrong: races between
//! connections, migrations, an unreachable server. The contract both
//! backends share is `store_contract.rs`.

use crate::common::{any_event, event_with_id, read_all_when_visible, TestDb};
use payledger::store::{EventStore, ExpectedVersion, StoreError};
use payledger_events::StreamId;
use uuid::Uuid;

#[tokio::test]
async fn sixteen_racers_for_the_next_version_one_wins() {
    let t = TestDb::new().await;
    let store = t.store();
    let s = StreamId::payment("pi_race");
    store
        .append_to_stream(s.clone(), ExpectedVersion::NoStream, vec![any_event()])
        .await
        .unwrap();

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = vec![];
    for _ in 0..16 {
        let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .append_to_stream(s, ExpectedVersion::Exact(1), vec![any_event()])
                .await
        }));
    }
    let (mut won, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(out) => {
                assert_eq!(out.stored(), 1);
                won += 1
            }
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((won, conflicts), (1, 15));
    assert_eq!(store.read_stream(&s, 0, 100).await.unwrap().len(), 2);
}

#[tokio::test]
async fn thirty_two_concurrent_appends_of_one_event_id_store_one_row() {
    let t = TestDb::with_pool_size(40).await;
    let store = t.store();
    let id = Uuid::new_v4();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = vec![];
    for i in 0..32 {
        let (store, barrier) = (store.clone(), barrier.clone());
        // Half append with Any, half claim the stream is new: a duplicate is
        // reported as such either way.
        let expected = if i % 2 == 0 {
            ExpectedVersion::Any
        } else {
            ExpectedVersion::NoStream
        };
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .append_to_stream(
                    StreamId::payment("pi_dup"),
                    expected,
                    vec![event_with_id(id)],
                )
                .await
        }));
    }
    let (mut stored, mut duplicates) = (0, 0);
    for t in tasks {
        let out = t.await.unwrap().expect("a duplicate is not an error");
        stored += out.stored();
        duplicates += out.duplicates();
    }
    assert_eq!((stored, duplicates), (1, 31));
    let rows: i64 = t
        .client()
        .await
        .query_one("SELECT count(*) FROM events WHERE event_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn an_unreachable_database_is_named_without_its_password() {
    let err = payledger::db::Database::connect("postgres://app:topsecret@127.0.0.1:1/nowhere", 1)
        .await
        .err()
        .expect("port 1 does not answer");
    let text = err.to_string();
    assert!(
        text.contains("postgres://app:***@127.0.0.1:1/nowhere"),
        "{text}"
    );
    assert!(!text.contains("topsecret"), "{text}");
}

#[tokio::test]
async fn a_database_that_does_not_exist_is_named_with_the_servers_words() {
    let err = payledger::db::Database::connect(
        "postgres://postgres@127.0.0.1:5432/payledger_no_such_database",
        1,
    )
    .await
    .err()
    .expect("no such database");
    let text = err.to_string();
    assert!(
        text.contains("database \"payledger_no_such_database\" does not exist"),
        "{text}"
    );
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let t = TestDb::new().await;
    assert!(t.db.migrate().await.unwrap().is_empty());
}

/// Projections skip the processor's verbatim callbacks, the log's biggest
/// rows: they read them without their bodies, in the same order, with
/// everything else whole.
#[tokio::test]
async fn a_feed_without_a_types_payloads_keeps_the_order_and_every_other_payload() {
    use payledger::store::feed;
    use payledger_events::Checkpoint;
    let t = TestDb::new().await;
    let store = t.store();
    let body = serde_json::json!({"raw_body": "x".repeat(4_000)});
    let callback = payledger_events::EventData {
        event_type: "ProcessorEventReceived".into(),
        payload: body,
        ..any_event()
    };
    let other = any_event();
    let kept = other.payload.clone();
    store
        .append_to_stream(
            StreamId::payment("pi_feed"),
            ExpectedVersion::Any,
            vec![callback, other],
        )
        .await
        .unwrap();
    // The gap-safe order holds both back while an older transaction in
    // the cluster (another test's) still runs.
    read_all_when_visible(&store, 2).await;
    let client = t.db.pool.get().await.unwrap();
    let whole = feed::read_after(&client, Checkpoint::START, 10)
        .await
        .unwrap();
    let without =
        feed::read_after_without(&client, Checkpoint::START, 10, &["ProcessorEventReceived"])
            .await
            .unwrap();
    let order = |events: &[payledger_events::RecordedEvent]| -> Vec<i64> {
        events.iter().map(|e| e.position).collect()
    };
    assert_eq!(order(&whole), order(&without));
    assert_eq!(without.len(), 2);
    assert_eq!(without[0].payload, serde_json::Value::Null);
    assert_eq!(without[0].event_type, "ProcessorEventReceived");
    assert_eq!(without[1].payload, kept);
    assert_ne!(whole[0].payload, serde_json::Value::Null);
}
