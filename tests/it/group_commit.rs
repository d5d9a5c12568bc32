//! Group commit (spec §2, guarantee 7): appends that arrive together share
//! one statement and one commit, yet each gets its own answer — a conflict,
//! a duplicate and a success side by side; a group whose statement fails
//! is written one by one; and nobody is told "stored" for an event that is
//! not in the table, even when the connection dies mid-group.

use crate::common::{any_event, event_with_id, TestDb};
use payledger::store::{
    EventOutcome, EventStore, ExpectedVersion, GroupCommitConfig, PgEventStore, StoreError,
    StreamAppend,
};
use payledger_events::StreamId;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// Groups of exactly `n`: the first append waits (up to a long window) for
/// the others, so concurrent appends are certain to share a statement.
fn grouped_by(store: PgEventStore, n: usize) -> PgEventStore {
    store.with_group_commit(GroupCommitConfig {
        window: Duration::from_secs(5),
        max_appends: n,
        writers: 1,
    })
}

async fn stored_ids(t: &TestDb, ids: &[Uuid]) -> Vec<Uuid> {
    t.client()
        .await
        .query(
            "SELECT event_id FROM events WHERE event_id = ANY($1)",
            &[&ids],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_a_duplicate_a_guarded_repeat_and_a_success_in_one_group_each_get_their_own_answer(
) {
    let t = TestDb::new().await;
    let plain = t.store();
    let hot = StreamId::payment("pi_group_hot");
    let known = Uuid::new_v4();
    let callback = Uuid::new_v4();
    plain
        .append_to_stream(hot.clone(), ExpectedVersion::Any, vec![any_event()])
        .await
        .unwrap();
    plain
        .append_to_stream(
            StreamId::payment("pi_group_known"),
            ExpectedVersion::Any,
            vec![event_with_id(known), event_with_id(callback)],
        )
        .await
        .unwrap();

    let store = grouped_by(plain, 4);
    let (late, fresh, after_callback) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (conflict, duplicate, guarded, success) = tokio::join!(
        store.append_to_stream(
            hot.clone(),
            ExpectedVersion::Exact(5),
            vec![event_with_id(late)]
        ),
        store.append_to_stream(
            StreamId::payment("pi_group_dup"),
            ExpectedVersion::Any,
            vec![event_with_id(known)]
        ),
        // A processor callback's facts, when its body was stored before.
        store.append_unless_stored(
            callback,
            vec![StreamAppend::new(
                StreamId::payment("pi_group_guarded"),
                ExpectedVersion::Any,
                vec![event_with_id(after_callback)],
            )]
        ),
        store.append_to_stream(
            StreamId::payment("pi_group_new"),
            ExpectedVersion::NoStream,
            vec![event_with_id(fresh)]
        ),
    );
    match conflict {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, 1),
        other => panic!("expected a conflict at version 1, got {other:?}"),
    }
    assert_eq!(duplicate.unwrap().duplicates(), 1);
    assert_eq!(guarded.unwrap().stored(), 0, "the guard was already stored");
    let success = success.unwrap();
    assert!(matches!(
        success.events[0],
        EventOutcome::Stored {
            stream_version: 1,
            ..
        }
    ));
    let stats = store.group_commit_stats().unwrap();
    assert_eq!(
        (
            stats.group_statements,
            stats.grouped_appends,
            stats.fallbacks
        ),
        (1, 4, 0),
        "all four in one statement: {stats:?}"
    );
    assert_eq!(
        stored_ids(&t, &[late, fresh, after_callback]).await,
        vec![fresh]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_statement_fails_is_written_one_by_one() {
    let t = TestDb::new().await;
    // The group's statement inserts several rows at once; this refuses
    // exactly that, so only the one-by-one fallback can store them.
    t.client()
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_multi_row() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF (SELECT count(*) FROM new_rows) > 1 THEN RAISE EXCEPTION 'one row at a time'; END IF;
               RETURN NULL;
             END $$;
             CREATE TRIGGER refuse_multi_row AFTER INSERT ON events
               REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION refuse_multi_row();",
        )
        .await
        .unwrap();
    let store = grouped_by(t.store(), 3);
    let ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let append = |n: usize| {
        store.append_to_stream(
            StreamId::payment(&format!("pi_fallback_{n}")),
            ExpectedVersion::NoStream,
            vec![event_with_id(ids[n])],
        )
    };
    let (a, b, c) = tokio::join!(append(0), append(1), append(2));
    for outcome in [a, b, c] {
        assert_eq!(outcome.unwrap().stored(), 1);
    }
    let stats = store.group_commit_stats().unwrap();
    assert_eq!(stats.fallbacks, 1, "{stats:?}");
    let mut stored = stored_ids(&t, &ids).await;
    stored.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(stored, expected);
}

/// A TCP relay to PostgreSQL whose open connections can be cut at once,
/// as a network failure or a server-side kill would.
struct CuttableProxy {
    port: u16,
    relays: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    async fn start() -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relays: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let kept = relays.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                kept.lock().unwrap().push(relay.abort_handle());
            }
        });
        CuttableProxy { port, relays }
    }

    fn cut(&self) -> usize {
        let relays = std::mem::take(&mut *self.relays.lock().unwrap());
        for r in &relays {
            r.abort();
        }
        relays.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_group_never_answer_stored_for_an_event_that_is_not_in_the_table() {
    let t = TestDb::new().await;
    let proxy = CuttableProxy::start().await;
    let through_proxy = format!("postgres://postgres@127.0.0.1:{}/{}", proxy.port, t.name);
    let db = payledger::db::Database::connect(&through_proxy, 8)
        .await
        .unwrap();
    let store = PgEventStore::new(db.pool.clone(), Arc::new(payledger::clock::SystemClock))
        .with_group_commit(GroupCommitConfig::default());

    let answers: Arc<Mutex<Vec<(Uuid, bool)>>> = Arc::default();
    let mut writers = vec![];
    for w in 0..32 {
        let (store, answers) = (store.clone(), answers.clone());
        writers.push(tokio::spawn(async move {
            for n in 0..40 {
                let id = Uuid::new_v4();
                let outcome = store
                    .append_to_stream(
                        StreamId::payment(&format!("pi_cut_{w}_{n}")),
                        ExpectedVersion::NoStream,
                        vec![event_with_id(id)],
                    )
                    .await;
                let told_stored = outcome.is_ok_and(|o| o.stored() == 1);
                answers.lock().unwrap().push((id, told_stored));
            }
        }));
    }
    let mut cut = 0;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        cut += proxy.cut();
    }
    for w in writers {
        w.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    let told: Vec<Uuid> = answers.iter().filter(|a| a.1).map(|a| a.0).collect();
    let refused = answers.len() - told.len();
    let stored = stored_ids(&t, &told).await;
    assert_eq!(
        stored.len(),
        told.len(),
        "every append answered 'stored' is in the table ({cut} connections cut, {refused} appends refused)"
    );
    assert!(
        cut > 0,
        "the proxy cut no connection: the test proved nothing"
    );
    assert!(
        refused > 0,
        "no append failed: the cuts never hit an append in flight"
    );
    let stats = store.group_commit_stats().unwrap();
    assert!(stats.group_statements > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_several_events_per_stream_gives_consecutive_versions_and_keeps_conflicts_apart()
{
    let t = TestDb::new().await;
    let plain = t.store();
    let moved = StreamId::payment("pi_group_moved");
    plain
        .append_to_stream(moved.clone(), ExpectedVersion::Any, vec![any_event()])
        .await
        .unwrap();
    let store = grouped_by(plain, 2);
    let ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let (conflict, success) = tokio::join!(
        store.append_to_stream(
            moved,
            ExpectedVersion::NoStream,
            vec![event_with_id(ids[0]), any_event()]
        ),
        store.append(vec![
            StreamAppend::new(
                StreamId::payment("pi_group_two"),
                ExpectedVersion::NoStream,
                vec![event_with_id(ids[1]), event_with_id(ids[2])],
            ),
            StreamAppend::new(
                StreamId::payment("pi_group_other"),
                ExpectedVersion::Any,
                vec![any_event()],
            ),
        ]),
    );
    assert!(
        matches!(conflict, Err(StoreError::Conflict { actual: 1, .. })),
        "{conflict:?}"
    );
    let versions: Vec<i64> = success
        .unwrap()
        .events
        .iter()
        .map(|e| match e {
            EventOutcome::Stored { stream_version, .. } => *stream_version,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(versions, [1, 2, 1]);
    let stats = store.group_commit_stats().unwrap();
    assert_eq!((stats.group_statements, stats.grouped_appends), (1, 2));
    let mut stored = stored_ids(&t, &ids).await;
    stored.sort();
    let mut expected = ids[1..].to_vec();
    expected.sort();
    assert_eq!(stored, expected);
}

/// The processor sends `invoice.paid` and `invoice.payment_succeeded` for
/// one invoice at once, each its own callback carrying the same fact. Found
/// in the renewal burst: the second of such a pair went into the next group,
/// written at the same time as the first's, so the two statements raced on
/// the unique event id — the second failed as a whole (its group then
/// written again one by one) or the two deadlocked for a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_that_carry_the_same_fact_at_once_never_fail_a_group_statement() {
    let t = TestDb::new().await;
    let store = t.store().with_group_commit(GroupCommitConfig::default());
    let pairs = 400;
    let facts: Vec<Uuid> = (0..pairs).map(|_| Uuid::new_v4()).collect();
    let appends = facts.iter().enumerate().flat_map(|(i, fact)| {
        (0..2).map({
            let store = store.clone();
            move |copy| {
                let store = store.clone();
                let (fact, callback) = (*fact, Uuid::new_v4());
                async move {
                    store
                        .append_unless_stored(
                            callback,
                            vec![
                                StreamAppend::new(
                                    StreamId::payment(&format!("evt_{i}_{copy}")),
                                    ExpectedVersion::Any,
                                    vec![event_with_id(callback)],
                                ),
                                StreamAppend::new(
                                    StreamId::payment(&format!("in_{i}")),
                                    ExpectedVersion::Any,
                                    vec![event_with_id(fact)],
                                ),
                            ],
                        )
                        .await
                }
            }
        })
    });
    use futures_util::StreamExt;
    let outcomes: Vec<_> = futures_util::stream::iter(appends)
        .buffer_unordered(32)
        .collect()
        .await;
    let (mut stored, mut duplicates) = (0, 0);
    for o in outcomes {
        let o = o.expect("every append answered");
        stored += o.stored();
        duplicates += o.duplicates();
    }
    // Every callback stored; each fact stored once, its twin a duplicate.
    assert_eq!((stored, duplicates), (3 * pairs, pairs));
    assert_eq!(stored_ids(&t, &facts).await.len(), pairs);
    let stats = store.group_commit_stats().unwrap();
    assert!(
        stats.group_statements > 0,
        "the burst was grouped: {stats:?}"
    );
    assert_eq!(stats.fallbacks, 0, "no group statement failed: {stats:?}");
}
