//! The store contract: one suite, run against PostgreSQL (with and without
//! group commit) and against the in-memory store, so both backends mean the same by append, duplicate,
//! conflict and order. Backend-specific checks (races between connections,
//! migrations, an unreachable server) stay in `event_store.rs`.

use crate::common::{any_event, event_with_id, read_all_when_visible, TestDb};
use payledger::store::{
    EventOutcome, EventStore, ExpectedVersion, InMemoryEventStore, StoreError, StreamAppend,
};
use payledger_events::{Checkpoint, StreamId};
use std::collections::HashSet;
use uuid::Uuid;

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = super::TestDb::new().await;
                    super::$name(&t.store()).await;
                }
            )*
        }
        mod postgres_grouped {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = super::TestDb::new().await;
                    let store = t
                        .store()
                        .with_group_commit(payledger::store::GroupCommitConfig::default());
                    super::$name(&store).await;
                }
            )*
        }
        mod in_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let clock = std::sync::Arc::new(payledger::clock::SystemClock);
                    super::$name(&super::InMemoryEventStore::new(clock)).await;
                }
            )*
        }
    };
}

contract!(
    appends_assign_stream_versions_and_read_back_in_order,
    expected_version_mismatch_is_a_typed_conflict_and_writes_nothing,
    a_batch_across_streams_is_atomic,
    a_batch_stores_its_new_events_and_reports_the_known_ones_as_duplicates,
    read_all_follows_the_global_order_from_a_checkpoint,
    an_empty_append_is_refused,
    a_multi_event_batch_across_streams_is_atomic_too,
    one_stream_named_twice_in_an_append_gets_consecutive_versions,
    one_stream_named_twice_with_different_expectations_is_refused,
);

pub async fn appends_assign_stream_versions_and_read_back_in_order<S: EventStore>(store: &S) {
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

pub async fn expected_version_mismatch_is_a_typed_conflict_and_writes_nothing<S: EventStore>(
    store: &S,
) {
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

pub async fn a_batch_across_streams_is_atomic<S: EventStore>(store: &S) {
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

pub async fn a_batch_stores_its_new_events_and_reports_the_known_ones_as_duplicates<
    S: EventStore,
>(
    store: &S,
) {
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

pub async fn read_all_follows_the_global_order_from_a_checkpoint<S: EventStore>(store: &S) {
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
    let all = read_all_when_visible(store, 10).await;
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

pub async fn an_empty_append_is_refused<S: EventStore>(store: &S) {
    let err = store
        .append_to_stream(StreamId::payment("pi_e"), ExpectedVersion::Any, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EmptyAppend));
}

pub async fn a_multi_event_batch_across_streams_is_atomic_too<S: EventStore>(store: &S) {
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
pub async fn one_stream_named_twice_in_an_append_gets_consecutive_versions<S: EventStore>(
    store: &S,
) {
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

pub async fn one_stream_named_twice_with_different_expectations_is_refused<S: EventStore>(
    store: &S,
) {
    let s = StreamId::payment("pi_twice");
    let err = store
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
    assert!(store.read_stream(&s, 0, 10).await.unwrap().is_empty());
}
