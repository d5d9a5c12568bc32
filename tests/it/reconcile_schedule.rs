//! The reconciliation schedule inside `work`: overlapping windows, a failed
//! run that never moves the cursor, one scheduler at a time.

use crate::common::*;
use chrono::{Duration, Utc};
use payledger::clock::{Clock, ManualClock};
use payledger::reconcile::schedule::{self, ScheduleConfig, ScheduledRun};
use payledger::store::PgEventStore;
use payledger_sim::Faults;
use std::sync::Arc;

fn config() -> ScheduleConfig {
    ScheduleConfig {
        every: Duration::minutes(10),
        overlap: Duration::minutes(5),
        first_window: Duration::hours(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_windows_overlap_and_a_failed_run_never_moves_the_cursor() {
    let t = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(Utc::now() + Duration::seconds(5)));
    let store = PgEventStore::new(t.db.pool.clone(), clock.clone());
    let (sim, sim_base) = start_sim(None, 31).await;
    let processor = processor_client(&sim_base);
    sim_charge(
        &sim_base,
        serde_json::json!({"email": "s1@example.com", "amount": 24900, "currency": "usd"}),
    )
    .await;

    let ScheduledRun::Completed(first) = schedule::run_once(&store, &processor, &config())
        .await
        .unwrap()
    else {
        panic!("the first run should complete");
    };
    assert_eq!(first.window_from, first.window_to - Duration::hours(1));
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 1);

    // The processor fails longer than the client retries: the run is
    // recorded as failed, and the cursor stays at the first run's end.
    clock.advance(Duration::minutes(10));
    sim.set_faults(Faults {
        api_errors: 1000,
        ..Default::default()
    });
    let ScheduledRun::Failed(failed) = schedule::run_once(&store, &processor, &config())
        .await
        .unwrap()
    else {
        panic!("a run against a failing processor should fail");
    };
    assert_eq!(
        failed.report.window_from,
        first.window_to - Duration::minutes(5)
    );
    assert_eq!(count_events(&t, "ReconciliationFailed").await, 1);
    let (from, _) = schedule::next_window(&store, &config(), clock.now())
        .await
        .unwrap();
    assert_eq!(
        from,
        first.window_to - Duration::minutes(5),
        "a failed run never advances the cursor"
    );

    // Back up: the next run covers the failed window again, overlapping.
    sim.set_faults(Faults::default());
    clock.advance(Duration::minutes(10));
    sim_charge(
        &sim_base,
        serde_json::json!({"email": "s2@example.com", "amount": 24900, "currency": "usd"}),
    )
    .await;
    let ScheduledRun::Completed(third) = schedule::run_once(&store, &processor, &config())
        .await
        .unwrap()
    else {
        panic!("the run after the outage should complete");
    };
    assert_eq!(third.window_from, first.window_to - Duration::minutes(5));
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 2);
    let (next_from, _) = schedule::next_window(&store, &config(), clock.now())
        .await
        .unwrap();
    assert_eq!(next_from, third.window_to - Duration::minutes(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_scheduler_skips_while_one_holds_the_schedule() {
    let t = TestDb::new().await;
    let store = t.store();
    let (_sim, sim_base) = start_sim(None, 32).await;
    let processor = processor_client(&sim_base);
    let mut holder = t.client().await;
    let held = holder.transaction().await.unwrap();
    held.query_one(
        "SELECT pg_try_advisory_xact_lock(hashtext('payledger:reconcile-schedule'))",
        &[],
    )
    .await
    .unwrap();
    let outcome = schedule::run_once(&store, &processor, &config())
        .await
        .unwrap();
    assert!(matches!(outcome, ScheduledRun::Skipped), "{outcome:?}");
    held.rollback().await.unwrap();
    let outcome = schedule::run_once(&store, &processor, &config())
        .await
        .unwrap();
    assert!(matches!(outcome, ScheduledRun::Completed(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_reconciles_on_its_schedule_without_any_webhook() {
    let t = TestDb::new().await;
    let (_sim, sim_base) = start_sim(None, 33).await;
    let paid = sim_charge(
        &sim_base,
        serde_json::json!({"email": "w@example.com", "amount": 24900, "currency": "usd"}),
    )
    .await;
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .arg("work")
        .env("DATABASE_URL", &t.url)
        .env("STRIPE_API_BASE", &sim_base)
        .env("STRIPE_API_KEY", "sk_test_schedule")
        .env("PAYLEDGER_RECONCILE_EVERY", "1s")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pi = paid["payment_intent_id"].as_str().unwrap().to_string();
    let found = eventually(30, || {
        let (t, id) = (&t, format!("unmatched_charge:{pi}"));
        async move {
            t.client()
                .await
                .query_opt(
                    "SELECT 1 FROM discrepancies WHERE id = $1 AND status = 'open'",
                    &[&id],
                )
                .await
                .ok()
                .flatten()
                .is_some()
        }
    })
    .await;
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(
        found,
        "the scheduled run recorded the charge and the projections showed it"
    );
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 1);
}
