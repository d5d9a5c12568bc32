//! Crash safety of the projection runner: real worker processes, SIGKILL.

use crate::common::ledger::*;
use crate::common::runner::*;
use crate::common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_at_random_instants_leaves_the_read_models_exact() {
    let t = TestDb::new().await;
    append_batched(&t.store(), mixed_history(6_700), 200).await;
    let total: i64 = t
        .client()
        .await
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert!(total >= 20_000, "{total} events");

    let progress = |t: &TestDb| {
        let t = t.url.clone();
        async move {
            let (client, conn) = tokio_postgres::connect(&t, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let row = client
                .query_one(
                    "SELECT COALESCE(sum(checkpoint_pos), 0)::bigint FROM projection_state",
                    &[],
                )
                .await;
            row.map(|r| r.get::<_, i64>(0)).unwrap_or(0)
        }
    };
    let mut kills = 0;
    let mut kills_mid_catch_up = 0;
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let started = Instant::now();
    let last_position: i64 = t
        .client()
        .await
        .query_one("SELECT max(position) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    while kills < 25 && started.elapsed() < Duration::from_secs(300) {
        let now = checkpoints(&t).await;
        if !now.is_empty() && now.iter().all(|(_, p)| *p >= last_position) {
            break;
        }
        let before = progress(&t).await;
        let mut child = spawn_worker(&t, "25");
        // Kill only once this worker is applying batches, at a random
        // instant after that: the kill lands inside the catch-up.
        let moving = eventually(60, || async { progress(&t).await > before }).await;
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        tokio::time::sleep(Duration::from_millis(rng_state % 300)).await;
        kill9(&mut child);
        kills += 1;
        if moving {
            kills_mid_catch_up += 1;
        }
    }
    assert!(
        kills_mid_catch_up >= 20,
        "only {kills_mid_catch_up} of {kills} kills landed while the worker was catching up"
    );
    let mid = checkpoints(&t).await;
    assert!(
        mid.iter().any(|(_, p)| *p < last_position),
        "the kills happened before the catch-up ended: {mid:?}"
    );

    // Restart and let it finish; then a clean run must give the same tables.
    project_everything(&t.db.pool).await;
    assert_rebuild_equals_live(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_apply_each_event_once_and_one_takes_over_when_the_other_dies() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut a = spawn_worker(&t, "20");
    let mut b = spawn_worker(&t, "20");
    let history = mixed_history(3_000);
    let (first, second) = history.split_at(history.len() * 9 / 10);
    append_batched(&store, first.to_vec(), 100).await;
    let last: i64 = t
        .client()
        .await
        .query_one("SELECT max(position) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        eventually(180, || async {
            checkpoints(&t).await.iter().all(|(_, p)| *p >= last)
        })
        .await,
        "two workers did not catch up"
    );

    // Kill one mid-stream; the other must carry on with what comes next.
    kill9(&mut a);
    let before = checkpoints(&t).await;
    append_batched(&store, second.to_vec(), 100).await;
    let last: i64 = t
        .client()
        .await
        .query_one("SELECT max(position) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    let caught_up = eventually(60, || async {
        checkpoints(&t).await.iter().all(|(_, p)| *p >= last)
    })
    .await;
    kill9(&mut b);
    assert!(
        caught_up,
        "the surviving worker did not carry on: {before:?} -> {:?}",
        checkpoints(&t).await
    );
    assert_rebuild_equals_live(&t).await;
}
