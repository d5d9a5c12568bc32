//! A support command decides on what the log said, asks the person, and
//! only then acts. When the payment changes in between — a refund arrives
//! by webhook while they read the prompt — the command must end in a clear
//! "changed while you were deciding" and do nothing, never a second action.

use crate::common::ledger::*;
use crate::common::shop::PLANS;
use crate::common::*;
use payledger::support::actions::{self, RescueRequest};
use payledger::support::SupportError;
use payledger_events::Actor;

/// Runs `work` from inside the synchronous confirm callback, as another
/// process would while the person reads the prompt.
fn meanwhile<F: std::future::Future>(work: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(work))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_arriving_while_support_confirms_a_rescue_ends_in_a_conflict_not_access() {
    let t = TestDb::new().await;
    let store = t.store();
    append(
        &store,
        vec![charge("pi_race", None, Some("race@example.com"), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    let plans = payledger::plans::Plans::parse(PLANS, "plans.toml").unwrap();
    let mut asked = 0;
    let result = actions::rescue(
        &store,
        &plans,
        RescueRequest {
            payment_id: "pi_race",
            email: None,
            plan: None,
            force: None,
        },
        &Actor::Support("alice".into()),
        &mut |what| {
            asked += 1;
            assert!(what.contains("249.00 USD"), "{what}");
            meanwhile(append(&store, vec![refunded("pi_race", "re_race", 24900)]));
            true
        },
    )
    .await;
    assert_eq!(asked, 1, "asked once: {result:?}");
    match result {
        Err(SupportError::Changed(m)) => {
            assert!(m.contains("changed while you were deciding"), "{m}");
            assert!(m.contains("was refunded"), "says what it is now: {m}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        count_events(&t, "ChargeMatched").await,
        0,
        "no access given"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_arriving_while_support_confirms_a_refund_ends_in_a_conflict_not_a_second_refund()
{
    let t = TestDb::new().await;
    let store = t.store();
    let (sim, sim_base) = start_sim(None, 61).await;
    let paid = sim_charge(
        &sim_base,
        serde_json::json!({"email": "twice@example.com", "amount": 24900, "currency": "usd"}),
    )
    .await;
    let pi = paid["payment_intent_id"].as_str().unwrap().to_string();
    let processor = processor_client(&sim_base);
    let now = chrono::Utc::now();
    payledger::reconcile::reconcile(
        &store,
        &processor,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
        false,
    )
    .await
    .unwrap();
    let result = actions::refund(
        &store,
        &processor,
        &pi,
        "customer asked",
        &Actor::Support("bob".into()),
        &mut |_| {
            // The other person refunds from the processor's dashboard, and
            // its webhook is recorded.
            meanwhile(async {
                let r = processor
                    .create_refund(&pi, None, None, "dashboard")
                    .await
                    .unwrap();
                append(&store, vec![refunded(&pi, &r.id, 24900)]).await;
            });
            true
        },
    )
    .await;
    match result {
        Err(SupportError::Changed(m)) => {
            assert!(m.contains("changed while you were deciding"), "{m}");
            assert!(m.contains("already refunded"), "{m}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(sim.lock().refunds.len(), 1, "the processor refunded once");
    assert_eq!(count_events(&t, "ChargeRefunded").await, 1);
}
