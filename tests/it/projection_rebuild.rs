//! Guarantee 5: rebuilt projections equal live ones.

use crate::common::ledger::*;
use crate::common::runner::*;
use crate::common::*;
use payledger_projections::runner;
use std::time::Duration;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilt_projections_equal_live_ones_over_fifty_thousand_events() {
    let t = TestDb::new().await;
    let store = t.store();
    for p in payledger_projections::all() {
        runner::install(&t.db.pool, p.as_ref(), 50).await.unwrap();
    }
    let (_tick, wake) = watch::channel(0u64);
    let (stop_tx, stop) = watch::channel(false);
    let live = tokio::spawn(runner::run(
        t.db.pool.clone(),
        payledger_projections::all(),
        50,
        Duration::from_millis(20),
        wake,
        stop,
    ));

    let history = mixed_history(16_700);
    assert!(history.len() >= 50_000, "{} events", history.len());
    append_batched(&store, history, 200).await;
    project_everything(&t.db.pool).await;
    stop_tx.send(true).unwrap();
    live.await.unwrap();

    assert_rebuild_equals_live(&t).await;
}
