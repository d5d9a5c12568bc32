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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_in_a_small_memory_budget_writes_as_it_goes_and_equals_live() {
    let t = TestDb::new().await;
    let store = t.store();
    for p in payledger_projections::all() {
        runner::install(&t.db.pool, p.as_ref(), 500).await.unwrap();
    }
    // A third of the history above: a rebuild that writes as it goes
    // reads rows back one by one, and CI runs this beside everything else.
    let history = mixed_history(6_000);
    append_batched(&store, history, 200).await;
    project_everything(&t.db.pool).await;
    let live = crate::common::dump_read_models(&t.db.pool).await;

    // Every projection at once, as `projections rebuild --all`, in 8 MB:
    // half for the pages being read, under 1 MB of rows each.
    let all = payledger_projections::all();
    let refs: Vec<&dyn payledger_projections::Projection> =
        all.iter().map(|p| p.as_ref()).collect();
    let budget = 8 << 20;
    let report = runner::rebuild_many_within(&t.db.pool, &refs, 500, budget, &|_| {})
        .await
        .unwrap();
    eprintln!("small-budget rebuild: {report:?}");
    assert!(report.read >= 18_000, "{report:?}");
    assert!(
        report.spills > 0,
        "the history outgrows the budget: {report:?}"
    );
    // A page's worth of rows past the share at most, then written.
    assert!(
        report.peak_rows_bytes <= report.share_bytes + (2 << 20),
        "{report:?}"
    );
    let rebuilt = crate::common::dump_read_models(&t.db.pool).await;
    for ((table, a), (_, b)) in live.iter().zip(rebuilt.iter()) {
        assert!(
            !a.is_empty(),
            "{table} is empty: the history should fill it"
        );
        assert!(a == b, "{table}: live and rebuilt-in-budget rows differ");
    }
}
