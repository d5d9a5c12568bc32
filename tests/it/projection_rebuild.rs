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

/// The rows of both ledger tables in every generation schema that holds
/// them, by projection name: the shared ledger's and each member's own.
async fn ledger_rows(t: &TestDb) -> Vec<(String, i64)> {
    let client = t.client().await;
    let rows = client
        .query(
            "SELECT s.name, s.generation FROM projection_state s ORDER BY s.name",
            &[],
        )
        .await
        .unwrap();
    let mut out = vec![];
    for r in rows {
        let (name, generation): (String, i32) = (r.get(0), r.get(1));
        let schema = runner::schema_name(&name, generation);
        let has: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{schema}.ledger_payments")],
            )
            .await
            .unwrap()
            .get(0);
        if !has {
            continue;
        }
        let n: i64 = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {schema}.ledger_payments)
                          + (SELECT count(*) FROM {schema}.ledger_checkouts)"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        out.push((name, n));
    }
    out
}

/// Issue 19: the payment rules' rows exist once — in the shared ledger —
/// live, after `rebuild --all`, and after one projection is rebuilt alone
/// and joins the group; every member's own ledger tables stay empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_rows_are_written_once_live_and_by_every_rebuild() {
    let t = TestDb::new().await;
    let store = t.store();
    append_batched(&store, mixed_history(300), 200).await;
    project_everything(&t.db.pool).await;
    let once = |rows: Vec<(String, i64)>, when: &str| {
        let (shared, own): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(n, _)| n == "ledger");
        assert!(shared.len() == 1 && shared[0].1 > 0, "{when}: {shared:?}");
        assert_eq!(own.len(), 5, "{when}: {own:?}");
        assert!(own.iter().all(|(_, n)| *n == 0), "{when}: {own:?}");
    };
    once(ledger_rows(&t).await, "live");

    let all = payledger_projections::all();
    let refs: Vec<&dyn payledger_projections::Projection> =
        all.iter().map(|p| p.as_ref()).collect();
    runner::rebuild_many(&t.db.pool, &refs, 500).await.unwrap();
    once(ledger_rows(&t).await, "after rebuild --all");

    append_batched(&store, mixed_history(50), 200).await;
    runner::rebuild(&t.db.pool, &payledger_projections::timeline::Timeline, 500)
        .await
        .unwrap();
    once(ledger_rows(&t).await, "after rebuild timeline");
    let status = runner::status(&t.db.pool).await.unwrap();
    let at: Vec<_> = status.iter().map(|s| s.checkpoint).collect();
    assert!(
        at.iter().all(|c| *c == at[0]),
        "the group and the rebuilt member run at one checkpoint: {status:?}"
    );
    project_everything(&t.db.pool).await;
    assert_rebuild_equals_live(&t).await;
}

/// An upgrade from before the shared ledger: every member has its rows and
/// a checkpoint, the ledger does not exist. Starting `work` folds the group
/// once (the ledger gets a generation of its own rows, each member one new
/// generation) instead of walking the ledger event by event for the first
/// member that rejoins; afterwards all run at one checkpoint and equal a
/// rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_from_before_the_shared_ledger_joins_it_by_one_fold() {
    let t = TestDb::new().await;
    let store = t.store();
    append_batched(&store, mixed_history(300), 200).await;
    project_everything(&t.db.pool).await;
    let client = t.client().await;
    let ledger_generation: i32 = client
        .query_one(
            "SELECT generation FROM projection_state WHERE name = 'ledger'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!(
            "DELETE FROM projection_state WHERE name = 'ledger';
             DROP SCHEMA {} CASCADE;
             UPDATE projection_state SET version = version - 1",
            runner::schema_name("ledger", ledger_generation)
        ))
        .await
        .unwrap();
    let before = generations(&t).await;
    append_batched(&store, mixed_history(50), 200).await;

    for p in payledger_projections::all() {
        runner::install(&t.db.pool, p.as_ref(), 100).await.unwrap();
    }
    runner::resume_stopped(&t.db.pool).await.unwrap();

    let after = generations(&t).await;
    let ledger = after.iter().find(|(n, _)| n == "ledger").unwrap();
    assert_eq!(
        ledger.1, 2,
        "the ledger is folded once (a generation of its own), not walked live: {after:?}"
    );
    for (name, generation) in &before {
        let now = after.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(now.1, generation + 1, "{name} rebuilt once: {after:?}");
    }
    let status = runner::status(&t.db.pool).await.unwrap();
    assert!(
        status.iter().all(|s| s.checkpoint == status[0].checkpoint),
        "the group runs at one checkpoint: {status:?}"
    );
    let (shared, own): (Vec<_>, Vec<_>) = ledger_rows(&t)
        .await
        .into_iter()
        .partition(|(n, _)| n == "ledger");
    assert!(
        shared[0].1 > 0 && own.iter().all(|(_, n)| *n == 0),
        "{shared:?} {own:?}"
    );
    project_everything(&t.db.pool).await;
    assert_rebuild_equals_live(&t).await;
}
