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
        None,
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

/// Two people resolving the same discrepancy at once — before the read model
/// has seen either — record one resolution; the other is told who did it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_twice_at_once_records_one_resolution_and_the_second_says_who() {
    let t = TestDb::new().await;
    let store = t.store();
    append(&store, vec![charge("pi_two", None, None, 100, 0)]).await;
    project_everything(&t.db.pool).await;
    let id = "unmatched_charge:pi_two";
    let (alice, bob) = (Actor::Support("alice".into()), Actor::Support("bob".into()));
    let (a, b) = tokio::join!(
        actions::resolve(&store, id, "test charge", &alice),
        actions::resolve(&store, id, "test charge", &bob),
    );
    let said = [a.unwrap().message, b.unwrap().message];
    assert_eq!(count_events(&t, "DiscrepancyResolved").await, 1, "{said:?}");
    assert_eq!(
        said.iter().filter(|m| m.starts_with("done:")).count(),
        1,
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|m| m.contains("already resolved by support:")),
        "{said:?}"
    );
    // And once more, still before any projection: the same answer.
    let third = actions::resolve(&store, id, "again", &alice).await.unwrap();
    assert!(
        !third.changed && third.message.contains("already resolved by"),
        "{}",
        third.message
    );
    assert_eq!(count_events(&t, "DiscrepancyResolved").await, 1);
}

/// A resend asked twice at once, or again before it went out, is one
/// request in the log; every later answer names who asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_twice_at_once_records_one_request_and_the_second_says_who_asked() {
    let t = TestDb::new().await;
    let store = t.store();
    let key = "confirmation:pi_resend";
    let checkout = uuid::Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "resend@example.com", 24900),
            charge(
                "pi_resend",
                Some(checkout),
                Some("resend@example.com"),
                24900,
                1,
            ),
        ],
    )
    .await;
    append(
        &store,
        vec![(
            payledger_events::StreamId::outbox(key),
            fact(
                payledger_events::EmailSent {
                    email_key: key.into(),
                    message_id: "<first@payledger>".into(),
                    attempt: 1,
                },
                &format!("{key}:sent:1"),
            ),
        )],
    )
    .await;
    project_everything(&t.db.pool).await;
    let (alice, bob) = (Actor::Support("alice".into()), Actor::Support("bob".into()));
    let (a, b) = tokio::join!(
        actions::resend_email(&store, key, &alice),
        actions::resend_email(&store, key, &bob),
    );
    let said = [a.unwrap().message, b.unwrap().message];
    assert_eq!(
        count_events(&t, "EmailResendRequested").await,
        1,
        "{said:?}"
    );
    assert!(
        said.iter().any(|m| m.contains("will be sent again")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|m| m.contains("already asked")),
        "the second run says so: {said:?}"
    );
    let third = actions::resend_email(&store, key, &alice).await.unwrap();
    assert!(
        !third.changed && third.message.contains("already asked"),
        "{}",
        third.message
    );
    assert_eq!(count_events(&t, "EmailResendRequested").await, 1);
}
