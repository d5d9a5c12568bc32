//! The runner: poison events (undecodable, or rows the database refuses),
//! rebuilds under readers.

use crate::common::ledger::*;
use crate::common::*;
use payledger::store::{EventStore, ExpectedVersion, StreamAppend};
use payledger_projections::runner;
use std::process::Command;
use std::time::Duration;
use tokio::sync::watch;

#[tokio::test]
async fn a_poison_event_stops_only_its_projection_and_is_never_skipped() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = uuid::Uuid::new_v4();
    append(
        &store,
        vec![checkout_started(checkout, "po@example.com", 24900)],
    )
    .await;
    // A DiscrepancyAcknowledged that no version of the schema can read.
    let mut bad = resolved("x").1;
    bad.event_type = "DiscrepancyAcknowledged".into();
    bad.payload = serde_json::json!({"nonsense": true});
    store
        .append(vec![StreamAppend::new(
            payledger_events::StreamId::discrepancy("x"),
            ExpectedVersion::Any,
            vec![bad],
        )])
        .await
        .unwrap();
    append(
        &store,
        vec![charge("pi_after", Some(checkout), None, 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;

    let status = runner::status(&t.db.pool).await.unwrap();
    let stopped: Vec<_> = status
        .iter()
        .filter(|s| s.state == payledger_projections::states::ProjectionState::Stopped)
        .collect();
    assert_eq!(stopped.len(), 1, "{status:?}");
    assert_eq!(stopped[0].name, "discrepancies");
    let poison_at = stopped[0].error_position.unwrap();
    assert!(
        stopped[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("DiscrepancyAcknowledged"),
        "{:?}",
        stopped[0].last_error
    );
    assert!(
        stopped[0].checkpoint.position < poison_at,
        "the poison event was not skipped"
    );
    let sub: i64 = t
        .client()
        .await
        .query_one("SELECT count(*) FROM subscriptions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sub, 1, "the other projections kept going past it");

    // A restart retries it (the code may have been fixed) and stops there
    // again: installing finds it stopped behind the others' shared ledger
    // and leaves it to the retry, which rebuilds it to rejoin them.
    for p in payledger_projections::all() {
        runner::install(&t.db.pool, p.as_ref(), 100).await.unwrap();
    }
    runner::resume_stopped(&t.db.pool).await.unwrap();
    let mut client = t.db.pool.get().await.unwrap();
    let discrepancies = payledger_projections::discrepancies::Discrepancies;
    assert_eq!(
        runner::step(&mut client, &discrepancies, 100)
            .await
            .unwrap(),
        runner::Step::Stopped
    );
    let again = runner::status(&t.db.pool).await.unwrap();
    assert_eq!(
        again
            .iter()
            .find(|s| s.name == "discrepancies")
            .unwrap()
            .error_position,
        Some(poison_at)
    );

    // The CLI shows it.
    let out = Command::new(env!("CARGO_BIN_EXE_payledger"))
        .args(["projections", "status"])
        .env("DATABASE_URL", &t.url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("stopped") && text.contains(&format!("at position {poison_at}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_under_a_running_worker_never_shows_readers_an_empty_or_partial_view() {
    let t = TestDb::new().await;
    let store = t.store();
    append_batched(&store, mixed_history(2_000), 200).await;
    project_everything(&t.db.pool).await;
    let (before,): (i64,) = {
        let r = t
            .client()
            .await
            .query_one("SELECT count(*) FROM discrepancies", &[])
            .await
            .unwrap();
        (r.get(0),)
    };
    assert!(before > 0);

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
    let reader = {
        let client = t.client().await;
        let (stop_rx, mut smallest, mut reads) = (stop_tx.subscribe(), i64::MAX, 0u64);
        tokio::spawn(async move {
            while !*stop_rx.borrow() {
                let n: i64 = client
                    .query_one("SELECT count(*) FROM discrepancies", &[])
                    .await
                    .unwrap()
                    .get(0);
                smallest = smallest.min(n);
                reads += 1;
            }
            (smallest, reads)
        })
    };
    // As `projections rebuild --all` does it: one read of the log for all.
    let all = payledger_projections::all();
    let refs: Vec<&dyn payledger_projections::Projection> =
        all.iter().map(|p| p.as_ref()).collect();
    runner::rebuild_many(&t.db.pool, &refs, 100).await.unwrap();
    stop_tx.send(true).unwrap();
    let (smallest, reads) = reader.await.unwrap();
    live.await.unwrap();
    assert!(
        reads > 10,
        "the reader read during the rebuild ({reads} reads)"
    );
    assert!(
        smallest >= before,
        "a reader saw {smallest} discrepancies, fewer than the {before} there were"
    );
    let generation: i32 = t
        .client()
        .await
        .query_one(
            "SELECT generation FROM projection_state WHERE name = 'discrepancies'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(generation, 2, "the rebuild swapped in a new generation");
}

#[tokio::test]
async fn a_rebuild_that_meets_a_poison_event_stops_there_and_the_live_tables_keep_serving() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = uuid::Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "rb@example.com", 24900),
            charge("pi_orphan_rb", None, Some("o@example.com"), 24900, 0),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    // An event no version of the discrepancies projection can read, written
    // after the live tables were built.
    let mut bad = resolved("y").1;
    bad.event_type = "DiscrepancyAcknowledged".into();
    bad.payload = serde_json::json!({"nonsense": true});
    store
        .append(vec![StreamAppend::new(
            payledger_events::StreamId::discrepancy("y"),
            ExpectedVersion::Any,
            vec![bad],
        )])
        .await
        .unwrap();
    let poison_at: i64 = t
        .client()
        .await
        .query_one("SELECT max(position) FROM events", &[])
        .await
        .unwrap()
        .get(0);

    let all = payledger_projections::all();
    let refs: Vec<&dyn payledger_projections::Projection> =
        all.iter().map(|p| p.as_ref()).collect();
    let err = runner::rebuild_many(&t.db.pool, &refs, 100)
        .await
        .expect_err("the rebuild must not skip the poison event");
    let text = err.to_string();
    assert!(
        text.contains("discrepancies") && text.contains(&format!("position {poison_at}")),
        "{text}"
    );
    let generations = crate::common::runner::generations(&t).await;
    assert!(
        generations.iter().all(|(_, g)| *g == 1),
        "nothing was swapped in: {generations:?}"
    );
    let open: i64 = t
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM discrepancies WHERE id = 'unmatched_charge:pi_orphan_rb'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 1, "the live discrepancy view still answers");
}

#[tokio::test]
async fn rows_the_database_refuses_stop_the_projection_at_the_event_that_made_them() {
    let t = TestDb::new().await;
    let store = t.store();
    let discrepancies = payledger_projections::discrepancies::Discrepancies;
    runner::install(&t.db.pool, &discrepancies, 100)
        .await
        .unwrap();
    // The database refuses the row one event would write; the rules cannot
    // know it, so the batch's write fails as a whole.
    t.client()
        .await
        .batch_execute(
            "ALTER TABLE pl_discrepancies_g1.discrepancies
             ADD CONSTRAINT no_refused_payment CHECK (subject <> 'pi_refused')",
        )
        .await
        .unwrap();
    let mut history = vec![];
    for i in 0..5 {
        history.push(charge(&format!("pi_before_{i}"), None, None, 100, i));
    }
    history.push(charge("pi_refused", None, None, 100, 10));
    for i in 0..5 {
        history.push(charge(&format!("pi_after_{i}"), None, None, 100, 20 + i));
    }
    append(&store, history).await;
    let refused_at: i64 = t
        .client()
        .await
        .query_one(
            "SELECT position FROM events WHERE stream_id = 'payment-pi_refused' AND event_type = 'ChargeSucceeded'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let mut client = t.db.pool.get().await.unwrap();
    // Idle steps are allowed: the gap-safe feed holds back events while
    // other tests' transactions are open in the same cluster.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never stopped"
        );
        match runner::step(&mut client, &discrepancies, 100)
            .await
            .unwrap()
        {
            runner::Step::Stopped => break,
            runner::Step::Idle => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            _ => {}
        }
    }
    let status = runner::status(&t.db.pool).await.unwrap();
    let d = status.iter().find(|s| s.name == "discrepancies").unwrap();
    assert_eq!(
        d.state,
        payledger_projections::states::ProjectionState::Stopped
    );
    assert_eq!(d.error_position, Some(refused_at), "{d:?}");
    assert!(
        d.last_error
            .as_deref()
            .unwrap_or("")
            .contains("no_refused_payment"),
        "{d:?}"
    );
    assert!(d.checkpoint.position < refused_at, "never skipped");
    // Everything before it was applied; nothing after it was.
    let open: Vec<String> = t
        .client()
        .await
        .query("SELECT subject FROM discrepancies ORDER BY subject", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        open,
        (0..5).map(|i| format!("pi_before_{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_version_change_rebuilds_the_projection_at_start() {
    let t = TestDb::new().await;
    append(
        &t.store(),
        vec![charge("pi_v", None, Some("v@example.com"), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    // As if the stored tables were made by an older version of the code.
    t.client()
        .await
        .execute(
            "UPDATE projection_state SET version = 0 WHERE name = 'discrepancies'",
            &[],
        )
        .await
        .unwrap();
    let discrepancies = payledger_projections::discrepancies::Discrepancies;
    runner::install(&t.db.pool, &discrepancies, 100)
        .await
        .unwrap();
    let row = t
        .client()
        .await
        .query_one(
            "SELECT version, generation FROM projection_state WHERE name = 'discrepancies'",
            &[],
        )
        .await
        .unwrap();
    use payledger_projections::Projection;
    assert_eq!(
        (row.get::<_, i32>(0), row.get::<_, i32>(1)),
        (discrepancies.version(), 2)
    );
    let n: i64 = t
        .client()
        .await
        .query_one("SELECT count(*) FROM discrepancies", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the rebuilt generation holds the same rows");
}

/// A live batch reads ahead, in one statement per table, the rows its
/// events look up (a rehearsal on empty rows says which), and remembers the
/// keys not found as absent. A read-ahead that missed a stored row would
/// make the batch start that row afresh: the read models would differ from
/// the same events applied one at a time (nothing to read ahead) and from
/// a rebuild in memory (nothing read at all).
#[tokio::test]
async fn rows_read_ahead_for_a_batch_are_the_rows_one_event_at_a_time_would_read() {
    let history = mixed_history(400);
    let mut models = vec![];
    for batch in [1, 500] {
        let t = TestDb::new().await;
        // A first half already projected: its rows are in the tables.
        let (first, second) = history.split_at(history.len() / 2);
        append_batched(&t.store(), first.to_vec(), 200).await;
        crate::common::project_everything_in_batches(&t.db.pool, batch).await;
        append_batched(&t.store(), second.to_vec(), 200).await;
        crate::common::project_everything_in_batches(&t.db.pool, batch).await;
        let live = crate::common::dump_read_models(&t.db.pool).await;
        let all = payledger_projections::all();
        let refs: Vec<&dyn payledger_projections::Projection> =
            all.iter().map(|p| p.as_ref()).collect();
        runner::rebuild_many(&t.db.pool, &refs, 500).await.unwrap();
        let rebuilt = crate::common::dump_read_models(&t.db.pool).await;
        assert!(
            live == rebuilt,
            "batches of {batch}: live and rebuilt differ"
        );
        models.push(without_times(live));
    }
    for (table, rows) in &models[0] {
        assert!(
            !rows.is_empty(),
            "{table} is empty: the history should fill it"
        );
    }
    assert!(
        models[0] == models[1],
        "batches of 500 read ahead and ended unlike one event at a time"
    );
}

/// The rows with every timestamp blanked: two databases record the same
/// history at different instants.
fn without_times(models: Vec<(String, Vec<String>)>) -> Vec<(String, Vec<String>)> {
    fn blank(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
                *s = "<time>".into()
            }
            serde_json::Value::Object(m) => m.values_mut().for_each(blank),
            serde_json::Value::Array(a) => a.iter_mut().for_each(blank),
            _ => {}
        }
    }
    models
        .into_iter()
        .map(|(table, rows)| {
            let rows = rows
                .iter()
                .map(|r| {
                    let mut v: serde_json::Value = serde_json::from_str(r).unwrap();
                    blank(&mut v);
                    v.to_string()
                })
                .collect();
            (table, rows)
        })
        .collect()
}
