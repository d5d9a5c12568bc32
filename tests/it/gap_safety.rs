//! A reader following the global order must never skip an event because a
//! concurrent transaction committed a lower position later.

use crate::common::{any_event, TestDb};
use payledger::store::{EventStore, ExpectedVersion, StreamAppend};
use payledger_events::{Checkpoint, StreamId};
use rand::Rng;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const WRITERS: usize = 8;
const EVENTS_PER_WRITER: usize = 1_250;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_reader_sees_every_committed_event_exactly_once_in_order() {
    let t = TestDb::with_pool_size(WRITERS + 4).await;
    let store = t.store();
    let writers_done = Arc::new(AtomicBool::new(false));

    let mut writers = vec![];
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut committed: Vec<Uuid> = vec![];
            while committed.len() < EVENTS_PER_WRITER {
                let (k, hold) = {
                    let mut rng = rand::rng();
                    (rng.random_range(1..=8usize), rng.random_range(0..=50u64))
                };
                let events: Vec<_> = (0..k.min(EVENTS_PER_WRITER - committed.len()))
                    .map(|_| any_event())
                    .collect();
                let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
                let stream = StreamId::payment(&format!("gap_{w}_{}", Uuid::new_v4().simple()));
                let mut client = store.pool().get().await.unwrap();
                let tx = client.transaction().await.unwrap();
                store
                    .append_in(
                        &tx,
                        &[StreamAppend::new(stream, ExpectedVersion::NoStream, events)],
                    )
                    .await
                    .unwrap();
                // Hold the transaction open so later transactions commit first.
                tokio::time::sleep(Duration::from_millis(hold)).await;
                tx.commit().await.unwrap();
                committed.extend(ids);
            }
            committed
        }));
    }

    let reader = {
        let (store, writers_done) = (store.clone(), writers_done.clone());
        tokio::spawn(async move {
            let mut checkpoint = Checkpoint::START;
            let mut seen: Vec<Uuid> = vec![];
            let mut order_ok = true;
            let mut quiet_since: Option<Instant> = None;
            loop {
                let batch = store.read_all(checkpoint, 500).await.unwrap();
                for e in &batch {
                    order_ok &= e.checkpoint() > checkpoint;
                    checkpoint = e.checkpoint();
                    seen.push(e.event_id);
                }
                if batch.is_empty() {
                    if writers_done.load(Ordering::SeqCst) {
                        // Other tests' transactions may hold the horizon back
                        // for a moment; give them time before concluding.
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if seen.len() >= WRITERS * EVENTS_PER_WRITER
                            || since.elapsed() > Duration::from_secs(5)
                        {
                            return (seen, order_ok);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                } else {
                    quiet_since = None;
                }
            }
        })
    };

    let mut committed = HashSet::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    writers_done.store(true, Ordering::SeqCst);
    let (seen, order_ok) = reader.await.unwrap();

    assert_eq!(committed.len(), WRITERS * EVENTS_PER_WRITER);
    let seen_set: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(seen_set.len(), seen.len(), "an event was delivered twice");
    let missed = committed.difference(&seen_set).count();
    assert_eq!(missed, 0, "the reader skipped {missed} committed events");
    assert_eq!(seen.len(), committed.len());
    assert!(order_ok, "checkpoints must strictly increase");
}
