//! The store contract against the real PostgreSQL.

use crate::common::{any_event, event_with_id, read_all_when_visible, TestDb};
use payledger::store::{EventOutcome, EventStore, ExpectedVersion, StoreError, StreamAppend};
use payledger_events::{Checkpoint, StreamId};
use std::collections::HashSet;
use uuid::Uuid;

#[tokio::test]
async fn appends_assign_stream_versions_and_read_back_in_order() {
    let t = TestDb::new().await;
    let store = t.store();
    let s = StreamId::payment("pi_order");
    let out = store
        .append_to_stream(
            s.clone(),
            ExpectedVersion::NoStream,
            vec![any_event(), any_event()],
        )
        .await
        .unwrap();
    assert_eq!(out.stored(), 2);
    store
        .append_to_stream(s.clone(), ExpectedVersion::Exact(2), vec![any_event()])
        .await
        .unwrap();
    let events = store.read_stream(&s, 0, 100).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let tail = store.read_stream(&s, 2, 100).await.unwrap();
    assert_eq!(tail.len(), 1);
}

#[tokio::test]
async fn expected_version_mismatch_is_a_typed_conflict_and_writes_nothing() {
    let t = TestDb::new().await;
    let store = t.store();
    let s = StreamId::payment("pi_conflict");
    store
        .append_to_stream(s.clone(), ExpectedVersion::NoStream, vec![any_event()])
        .await
        .unwrap();

    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(5),
    ] {
        let err = store
            .append_to_stream(s.clone(), expected, vec![any_event()])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { actual: 1, .. }),
            "{expected}: {err}"
        );
    }
    assert_eq!(store.read_stream(&s, 0, 100).await.unwrap().len(), 1);
}

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
async fn a_batch_across_streams_is_atomic() {
    let t = TestDb::new().await;
    let store = t.store();
    let a = StreamId::processor_event("evt_1");
    let b = StreamId::payment("pi_atomic");
    store
        .append_to_stream(b.clone(), ExpectedVersion::NoStream, vec![any_event()])
        .await
        .unwrap();

    // The second stream's expectation is wrong, so the first's event must not stay either.
    let err = store
        .append(vec![
            StreamAppend::new(a.clone(), ExpectedVersion::NoStream, vec![any_event()]),
            StreamAppend::new(b.clone(), ExpectedVersion::NoStream, vec![any_event()]),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
    assert!(store.read_stream(&a, 0, 10).await.unwrap().is_empty());

    let out = store
        .append(vec![
            StreamAppend::new(a.clone(), ExpectedVersion::NoStream, vec![any_event()]),
            StreamAppend::new(b.clone(), ExpectedVersion::Exact(1), vec![any_event()]),
        ])
        .await
        .unwrap();
    assert_eq!(out.stored(), 2);
}

#[tokio::test]
async fn a_batch_stores_its_new_events_and_reports_the_known_ones_as_duplicates() {
    let t = TestDb::new().await;
    let store = t.store();
    let known = event_with_id(Uuid::new_v4());
    store
        .append_to_stream(
            StreamId::payment("pi_known"),
            ExpectedVersion::Any,
            vec![known.clone()],
        )
        .await
        .unwrap();

    let fresh = any_event();
    let out = store
        .append(vec![
            StreamAppend::new(
                StreamId::processor_event("evt_2"),
                ExpectedVersion::Any,
                vec![fresh.clone()],
            ),
            StreamAppend::new(
                StreamId::payment("pi_known"),
                ExpectedVersion::Any,
                vec![known.clone(), known.clone()],
            ),
        ])
        .await
        .unwrap();
    assert_eq!((out.stored(), out.duplicates()), (1, 2));
    assert!(out.events.contains(&EventOutcome::Duplicate {
        event_id: known.event_id
    }));
    // Retrying the same append changes nothing.
    let again = store
        .append_to_stream(
            StreamId::processor_event("evt_2"),
            ExpectedVersion::NoStream,
            vec![fresh],
        )
        .await
        .unwrap();
    assert_eq!(again.duplicates(), 1);
}

#[tokio::test]
async fn read_all_follows_the_global_order_from_a_checkpoint() {
    let t = TestDb::new().await;
    let store = t.store();
    for i in 0..5 {
        store
            .append_to_stream(
                StreamId::payment(&format!("pi_{i}")),
                ExpectedVersion::Any,
                vec![any_event(), any_event()],
            )
            .await
            .unwrap();
    }
    let all = read_all_when_visible(&store, 10).await;
    assert_eq!(all.len(), 10);
    let first = store.read_all(Checkpoint::START, 4).await.unwrap();
    let rest = store
        .read_all(first.last().unwrap().checkpoint(), 100)
        .await
        .unwrap();
    let ids: Vec<_> = first
        .iter()
        .chain(rest.iter())
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, all.iter().map(|e| e.event_id).collect::<Vec<_>>());
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 10);
}

#[tokio::test]
async fn an_empty_append_is_refused() {
    let t = TestDb::new().await;
    let err = t
        .store()
        .append_to_stream(StreamId::payment("pi_e"), ExpectedVersion::Any, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EmptyAppend));
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
async fn migrating_twice_is_a_no_op() {
    let t = TestDb::new().await;
    assert!(t.db.migrate().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_multi_event_batch_across_streams_is_atomic_too() {
    let t = TestDb::new().await;
    let store = t.store();
    let a = StreamId::payment("pi_multi_a");
    let b = StreamId::payment("pi_multi_b");
    store
        .append_to_stream(b.clone(), ExpectedVersion::NoStream, vec![any_event()])
        .await
        .unwrap();
    let err = store
        .append(vec![
            StreamAppend::new(
                a.clone(),
                ExpectedVersion::NoStream,
                vec![any_event(), any_event()],
            ),
            StreamAppend::new(
                b.clone(),
                ExpectedVersion::Exact(7),
                vec![any_event(), any_event()],
            ),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { stream, actual: 1, .. } if *stream == b),
        "{err}"
    );
    assert!(store.read_stream(&a, 0, 10).await.unwrap().is_empty());

    let out = store
        .append(vec![
            StreamAppend::new(
                a.clone(),
                ExpectedVersion::NoStream,
                vec![any_event(), any_event()],
            ),
            StreamAppend::new(
                b.clone(),
                ExpectedVersion::Exact(1),
                vec![any_event(), any_event()],
            ),
        ])
        .await
        .unwrap();
    assert_eq!(out.stored(), 4);
    let versions: Vec<i64> = store
        .read_stream(&b, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
}

/// A callback may state two facts of one stream (two partial refunds of
/// one payment): they are stored with consecutive versions, and a part
/// already stored is a duplicate that takes no version.
#[tokio::test]
async fn one_stream_named_twice_in_an_append_gets_consecutive_versions() {
    let t = TestDb::new().await;
    let store = t.store();
    let s = StreamId::payment("pi_twice");
    let first = any_event();
    store
        .append_to_stream(s.clone(), ExpectedVersion::Any, vec![first.clone()])
        .await
        .unwrap();
    let out = store
        .append(vec![
            StreamAppend::new(s.clone(), ExpectedVersion::Any, vec![first]),
            StreamAppend::new(s.clone(), ExpectedVersion::Any, vec![any_event()]),
            StreamAppend::new(s.clone(), ExpectedVersion::Any, vec![any_event()]),
        ])
        .await
        .unwrap();
    assert_eq!((out.stored(), out.duplicates()), (2, 1));
    let versions: Vec<i64> = store
        .read_stream(&s, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
}

#[tokio::test]
async fn one_stream_named_twice_with_different_expectations_is_refused() {
    let t = TestDb::new().await;
    let s = StreamId::payment("pi_twice");
    let err = t
        .store()
        .append(vec![
            StreamAppend::new(s.clone(), ExpectedVersion::NoStream, vec![any_event()]),
            StreamAppend::new(s.clone(), ExpectedVersion::Any, vec![any_event()]),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidBatch(ref m) if m.contains("pi_twice")),
        "{err}"
    );
    assert_eq!(
        crate::common::count_events(&t, "StatusLinkRequested").await,
        0
    );
}
