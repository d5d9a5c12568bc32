//! Readers wake on appends; a rolled-back append wakes nobody; polling
//! covers a missing notification.

use crate::common::{any_event, TestDb};
use payledger::clock::SystemClock;
use payledger::store::{AppendListener, EventStore, ExpectedVersion, PgEventStore, Subscription};
use payledger_events::{Checkpoint, StreamId};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_committed_append_notifies_and_a_rolled_back_one_does_not() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut listener = AppendListener::connect(t.db.config.clone()).await;
    let s = StreamId::payment("pi_notify");

    store
        .append_to_stream(s.clone(), ExpectedVersion::NoStream, vec![any_event()])
        .await
        .unwrap();
    assert!(
        listener.wait(Duration::from_secs(5)).await,
        "a committed append must notify"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    while listener.wait(Duration::from_millis(50)).await {}

    // A version conflict rolls the append back: nothing was written, nobody is woken.
    assert!(store
        .append_to_stream(s.clone(), ExpectedVersion::NoStream, vec![any_event()])
        .await
        .is_err());
    assert!(
        !listener.wait(Duration::from_millis(500)).await,
        "a failed append must not notify"
    );

    // Same for a transaction the caller rolls back.
    let mut client = store.pool().get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    store
        .append_in(
            &tx,
            &[payledger::store::StreamAppend::new(
                s.clone(),
                ExpectedVersion::Exact(1),
                vec![any_event()],
            )],
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        !listener.wait(Duration::from_millis(500)).await,
        "a rolled-back transaction must not notify"
    );

    store
        .append_to_stream(s, ExpectedVersion::Exact(1), vec![any_event()])
        .await
        .unwrap();
    assert!(listener.wait(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_subscription_delivers_new_events_by_notification_and_by_polling() {
    let t = TestDb::new().await;
    for (store, poll) in [
        (t.store(), Duration::from_secs(30)),
        // No NOTIFY at all: the poll interval alone must find the event.
        (
            PgEventStore::without_notifications(t.db.pool.clone(), Arc::new(SystemClock)),
            Duration::from_millis(200),
        ),
    ] {
        let head = crate::common::read_all_when_visible(&store, 0)
            .await
            .last()
            .map(|e| e.checkpoint())
            .unwrap_or(Checkpoint::START);
        let mut sub =
            Subscription::start(t.db.pool.clone(), t.db.config.clone(), head, 100, poll).await;
        let writer = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            writer
                .append_to_stream(
                    StreamId::payment(&uuid::Uuid::new_v4().to_string()),
                    ExpectedVersion::Any,
                    vec![any_event()],
                )
                .await
                .unwrap();
        });
        let started = Instant::now();
        let batch = tokio::time::timeout(Duration::from_secs(20), sub.next_batch())
            .await
            .expect("delivered")
            .unwrap();
        assert_eq!(batch.len(), 1);
        assert!(sub.checkpoint() > head);
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
