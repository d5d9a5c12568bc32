//! Reconciliation against the simulator: what the webhook missed is found,
//! once, whoever gets there first.

use crate::common::ledger::*;
use crate::common::*;
use payledger::reconcile::reconcile;
use payledger::store::EventStore;
use payledger_events::StreamId;
use uuid::Uuid;

fn window() -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let now = chrono::Utc::now();
    (
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
    )
}

async fn active_subscriptions(t: &TestDb) -> i64 {
    t.client()
        .await
        .query_one(
            "SELECT count(*) FROM subscriptions WHERE status = 'active'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn one_run_finds_a_hundred_charges_no_webhook_delivered_and_a_second_run_appends_nothing() {
    let t = TestDb::new().await;
    let store = t.store();
    let (_sim, sim_base) = start_sim(None, 21).await;
    for i in 0..100 {
        let checkout = Uuid::new_v4();
        let email = format!("r{i}@example.com");
        append(&store, vec![checkout_started(checkout, &email, 24900)]).await;
        sim_charge(&sim_base, serde_json::json!({"email": email, "amount": 24900, "currency": "usd", "client_reference_id": checkout.to_string()})).await;
    }
    let processor = processor_client(&sim_base);
    let (from, to) = window();
    let first = reconcile(&store, &processor, from, to, false)
        .await
        .unwrap();
    assert_eq!(first.missing_appended, 100, "{:?}", first.problems);
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 100);
    assert_eq!(
        first.objects_seen, 500,
        "100 sessions, 100 charges and their 300 undelivered events"
    );

    project_everything(&t.db.pool).await;
    assert_eq!(active_subscriptions(&t).await, 100);

    let second = reconcile(&store, &processor, from, to, false)
        .await
        .unwrap();
    assert_eq!(second.missing_appended, 0);
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 100);
    assert_eq!(count_events(&t, "ReconciliationCompleted").await, 2);
}

#[tokio::test]
async fn a_charge_whose_checkout_the_ledger_never_recorded_becomes_an_unmatched_charge() {
    let t = TestDb::new().await;
    let store = t.store();
    let (_sim, sim_base) = start_sim(None, 22).await;
    let paid = sim_charge(&sim_base, serde_json::json!({"email": "lost@example.com", "amount": 24900, "currency": "usd", "client_reference_id": Uuid::new_v4().to_string()})).await;
    let (from, to) = window();
    reconcile(&store, &processor_client(&sim_base), from, to, false)
        .await
        .unwrap();
    project_everything(&t.db.pool).await;
    let pi = paid["payment_intent_id"].as_str().unwrap();
    let status: String = t
        .client()
        .await
        .query_one(
            "SELECT status FROM discrepancies WHERE id = $1",
            &[&format!("unmatched_charge:{pi}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "open");
}

#[tokio::test]
async fn a_refund_made_while_webhooks_were_down_is_found_and_ends_the_subscription() {
    let t = TestDb::new().await;
    let store = t.store();
    let (_sim, sim_base) = start_sim(None, 23).await;
    let checkout = Uuid::new_v4();
    append(
        &store,
        vec![checkout_started(checkout, "re@example.com", 24900)],
    )
    .await;
    let paid = sim_charge(&sim_base, serde_json::json!({"email": "re@example.com", "amount": 24900, "currency": "usd", "client_reference_id": checkout.to_string()})).await;
    let processor = processor_client(&sim_base);
    let (from, to) = window();
    reconcile(&store, &processor, from, to, false)
        .await
        .unwrap();
    project_everything(&t.db.pool).await;
    assert_eq!(active_subscriptions(&t).await, 1);

    let pi = paid["payment_intent_id"].as_str().unwrap();
    processor
        .create_refund(pi, None, Some("requested_by_customer"), "r1")
        .await
        .unwrap();
    let run = reconcile(&store, &processor, from, to, false)
        .await
        .unwrap();
    assert_eq!(run.missing_appended, 1);
    project_everything(&t.db.pool).await;
    let status: String = t
        .client()
        .await
        .query_one("SELECT status FROM subscriptions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "refunded");
}

// Multi-threaded: the simulator in this process must answer while the test
// waits for the CLI child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_appends_nothing_and_json_carries_the_counts() {
    let t = TestDb::new().await;
    let (_sim, sim_base) = start_sim(None, 24).await;
    for i in 0..3 {
        sim_charge(&sim_base, serde_json::json!({"email": format!("d{i}@example.com"), "amount": 24900, "currency": "usd"})).await;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .args(["reconcile", "--since", "1h", "--dry-run", "--json"])
        .env("DATABASE_URL", &t.url)
        .env("STRIPE_API_BASE", &sim_base)
        .env("STRIPE_API_KEY", "sk_test_dry")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(report["missing_appended"], 3);
    assert_eq!(report["dry_run"], true);
    let events: i64 = t
        .client()
        .await
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        events, 0,
        "a dry run appends nothing, not even its own record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_and_reconciler_racing_on_two_hundred_charges_record_each_once() {
    let t = TestDb::new().await;
    let store = t.store();
    let serve = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let (sim, sim_base) = start_sim(Some(format!("{serve}/webhooks/stripe")), 25).await;
    sim.set_faults(payledger_sim::Faults {
        delay_ms: 300,
        reorder: true,
        duplicate: 0.3,
        ..Default::default()
    });
    let mut payments = vec![];
    for i in 0..200 {
        let paid = sim_charge(&sim_base, serde_json::json!({"email": format!("w{i}@example.com"), "amount": 24900, "currency": "usd"})).await;
        payments.push(paid["payment_intent_id"].as_str().unwrap().to_string());
    }
    let processor = processor_client(&sim_base);
    let (from, to) = window();
    let racing = tokio::spawn({
        let store = store.clone();
        async move {
            reconcile(&store, &processor, from, to, false)
                .await
                .unwrap_or_else(|e| panic!("reconcile failed: {e}"))
        }
    });
    racing.await.unwrap();
    assert!(
        eventually(60, || async {
            count_events(&t, "ProcessorEventReceived").await >= 600
        })
        .await
    );
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 200);
    for pi in payments.iter().take(5) {
        let n = t.store().read_stream(&StreamId::payment(pi), 0, 10).await;
        assert_eq!(n.unwrap().len(), 1);
    }
}

async fn discrepancy_status(t: &TestDb, id: &str) -> Option<String> {
    t.client()
        .await
        .query_opt("SELECT status FROM discrepancies WHERE id = $1", &[&id])
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn post_json(url: &str, body: serde_json::Value) -> serde_json::Value {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_dispute_opened_and_closed_while_webhooks_were_down_is_recorded_once() {
    let t = TestDb::new().await;
    let store = t.store();
    let (_sim, sim_base) = start_sim(None, 26).await;
    let checkout = Uuid::new_v4();
    append(
        &store,
        vec![checkout_started(checkout, "dp@example.com", 24900)],
    )
    .await;
    let paid = sim_charge(&sim_base, serde_json::json!({"email": "dp@example.com", "amount": 24900, "currency": "usd", "client_reference_id": checkout.to_string()})).await;
    let pi = paid["payment_intent_id"].as_str().unwrap();
    let dispute = post_json(
        &format!("{sim_base}/_sim/disputes"),
        serde_json::json!({"payment_intent": pi}),
    )
    .await;
    let dispute_id = dispute["id"].as_str().unwrap();
    post_json(
        &format!("{sim_base}/_sim/disputes/{dispute_id}/close"),
        serde_json::json!({"status": "won"}),
    )
    .await;

    let processor = processor_client(&sim_base);
    let (from, to) = window();
    let first = reconcile(&store, &processor, from, to, false)
        .await
        .unwrap();
    // 1 session, 1 charge, 1 dispute, and the 5 events the processor never
    // delivered (charge, payment intent, session, dispute opened, closed).
    assert_eq!(first.objects_seen, 8, "{first:?}");
    assert_eq!(count_events(&t, "DisputeOpened").await, 1);
    assert_eq!(count_events(&t, "DisputeClosed").await, 1);
    let second = reconcile(&store, &processor, from, to, false)
        .await
        .unwrap();
    assert_eq!(second.missing_appended, 0, "{:?}", second.appended);
    assert_eq!(count_events(&t, "DisputeOpened").await, 1);

    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, &format!("dispute_opened:{dispute_id}"))
            .await
            .as_deref(),
        Some("resolved"),
        "a dispute the processor shows as won is closed in the view too"
    );
}

#[tokio::test]
async fn an_amount_the_processor_disagrees_with_is_recorded_once_as_a_discrepancy() {
    let t = TestDb::new().await;
    let store = t.store();
    let (_sim, sim_base) = start_sim(None, 27).await;
    let paid = sim_charge(
        &sim_base,
        serde_json::json!({"email": "amt@example.com", "amount": 19900, "currency": "usd"}),
    )
    .await;
    let pi = paid["payment_intent_id"].as_str().unwrap();
    // The ledger holds the same payment with another amount (a bad import,
    // a hand-edited backup, a bug): that is not "missing", it is a conflict.
    append(
        &store,
        vec![charge(pi, None, Some("amt@example.com"), 24900, 0)],
    )
    .await;

    let processor = processor_client(&sim_base);
    let (from, to) = window();
    let first = reconcile(&store, &processor, from, to, false)
        .await
        .unwrap();
    assert_eq!(first.missing_appended, 0);
    assert!(first.differences >= 1, "{first:?}");
    assert!(
        first
            .problems
            .iter()
            .any(|p| p.contains("249.00") && p.contains("199.00")),
        "{:?}",
        first.problems
    );
    reconcile(&store, &processor, from, to, false)
        .await
        .unwrap();
    assert_eq!(
        count_events(&t, "ProcessorDisagreement").await,
        1,
        "seen by two runs, recorded once"
    );

    project_everything(&t.db.pool).await;
    let id = format!("processor_disagreement:{pi}:amount_differs");
    assert_eq!(discrepancy_status(&t, &id).await.as_deref(), Some("open"));
}

#[tokio::test]
async fn a_refund_outside_the_window_is_a_disagreement_until_a_wider_run_finds_it() {
    let t = TestDb::new().await;
    let store = t.store();
    let (_sim, sim_base) = start_sim(None, 28).await;
    let checkout = Uuid::new_v4();
    append(
        &store,
        vec![checkout_started(checkout, "late@example.com", 24900)],
    )
    .await;
    let paid = sim_charge(&sim_base, serde_json::json!({"email": "late@example.com", "amount": 24900, "currency": "usd", "client_reference_id": checkout.to_string()})).await;
    let pi = paid["payment_intent_id"].as_str().unwrap().to_string();
    let cut = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let processor = processor_client(&sim_base);
    processor
        .create_refund(&pi, None, Some("requested_by_customer"), "late-1")
        .await
        .unwrap();

    // The window ends before the refund was made: the charge (showing its
    // refund) is in it, the refund object is not.
    let (from, _) = window();
    let narrow = reconcile(&store, &processor, from, cut, false)
        .await
        .unwrap();
    assert_eq!(count_events(&t, "ChargeRefunded").await, 0);
    assert!(
        narrow.problems.iter().any(|p| p.contains("no refund")),
        "{:?}",
        narrow.problems
    );
    project_everything(&t.db.pool).await;
    let id = format!("processor_disagreement:{pi}:refunded_at_processor");
    assert_eq!(discrepancy_status(&t, &id).await.as_deref(), Some("open"));

    let (_, to) = window();
    reconcile(&store, &processor, from, to, false)
        .await
        .unwrap();
    assert_eq!(count_events(&t, "ChargeRefunded").await, 1);
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, &id).await.as_deref(),
        Some("resolved")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_charges_across_pages_are_all_seen_through_a_500_and_a_429() {
    let t = TestDb::new().await;
    let store = t.store();
    let (sim, sim_base) = start_sim(None, 29).await;
    for i in 0..1000 {
        sim_charge(&sim_base, serde_json::json!({"email": format!("p{i}@example.com"), "amount": 24900, "currency": "usd"})).await;
    }
    sim.set_faults(payledger_sim::Faults {
        api_errors: 1,
        api_rate_limits: 1,
        ..Default::default()
    });
    let (from, to) = window();
    let run = reconcile(&store, &processor_client(&sim_base), from, to, false)
        .await
        .unwrap();
    assert_eq!(run.missing_appended, 1000);
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 1000);
    assert_eq!(
        {
            let s = sim.lock();
            s.faults.api_errors + s.faults.api_rate_limits
        },
        0,
        "both faults were hit and retried"
    );
}

/// A charge at the processor whose facts payledger cannot read (a currency
/// its table lacks) and whose webhooks never came: reconciliation's summary
/// counted it and nothing else remembered it. It must reach a person, once
/// however often reconciliation meets it, and once however many of the
/// payment's objects (session, charge, their events) say the same.
#[tokio::test]
async fn a_charge_reconciliation_cannot_read_opens_one_discrepancy_however_often_it_runs() {
    let t = TestDb::new().await;
    let store = t.store();
    let (_sim, sim_base) = start_sim(None, 23).await;
    let paid = sim_charge(
        &sim_base,
        serde_json::json!({"email": "xyz@example.com", "amount": 24900, "currency": "xyz"}),
    )
    .await;
    let payment = paid["payment_intent_id"].as_str().unwrap();
    let processor = processor_client(&sim_base);
    let (from, to) = window();
    for _ in 0..2 {
        let report = reconcile(&store, &processor, from, to, false)
            .await
            .unwrap();
        assert_eq!(
            report.problems.len(),
            5,
            "the session, the charge and the three events no webhook delivered: {:?}",
            report.problems
        );
    }
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 0);
    assert_eq!(count_events(&t, "ProcessorObjectUnreadable").await, 1);

    project_everything(&t.db.pool).await;
    let rows = t
        .client()
        .await
        .query(
            "SELECT id, status, customer_email, suggested_action FROM discrepancies WHERE kind = 'unreadable_processor_object'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        row.get::<_, String>(0),
        format!("unreadable_processor_object:{payment}")
    );
    assert_eq!(row.get::<_, String>(1), "open");
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("xyz@example.com")
    );
    let action: String = row.get(3);
    // The code as the processor wrote it, not a Rust type's debug print.
    assert!(
        action.contains("currency \"xyz\" is not an ISO 4217 currency"),
        "{action}"
    );
    assert!(action.contains(payment), "{action}");
}
