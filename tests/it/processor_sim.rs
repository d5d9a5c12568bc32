//! The simulator end to end: sessions through the client, the hosted pay
//! page, signed webhooks into `serve`, faults, pagination, refunds.

use crate::common::*;
use payledger::processor::client::{ListFilter, NewCheckoutSession};
use payledger::store::EventStore;
use payledger_events::{DomainEvent, StreamId};
use payledger_sim::Faults;

async fn charge_in_ledger(
    t: &TestDb,
    payment_id: &str,
) -> Option<payledger_events::ChargeSucceeded> {
    let events = t
        .store()
        .read_stream(&StreamId::payment(payment_id), 0, 100)
        .await
        .unwrap();
    events.iter().find_map(|e| match e.decode() {
        Ok(DomainEvent::ChargeSucceeded(c)) => Some(c),
        _ => None,
    })
}

fn new_session(reference: &str) -> NewCheckoutSession {
    NewCheckoutSession {
        checkout_reference: reference.into(),
        customer_email: "ann@example.com".into(),
        product_name: "One year".into(),
        amount: 24900,
        currency: "usd".into(),
        success_url: "http://shop.test/checkout/return?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "http://shop.test/".into(),
        recurring_price_id: None,
    }
}

#[tokio::test]
async fn a_session_paid_on_the_hosted_page_arrives_signed_and_is_recorded() {
    let t = TestDb::new().await;
    let serve = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let (_sim, sim_base) = start_sim(Some(format!("{serve}/webhooks/stripe")), 7).await;
    let client = processor_client(&sim_base);

    let session = client
        .create_checkout_session(&new_session("chk-1"))
        .await
        .unwrap();
    let pay_url = session.url.clone().unwrap();
    let page = reqwest::get(&pay_url).await.unwrap().text().await.unwrap();
    assert!(page.contains("249.00 USD"), "{page}");

    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let paid = browser
        .post(&pay_url)
        .form(&[("email", "ann@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    let location = paid.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        location,
        format!("http://shop.test/checkout/return?session_id={}", session.id)
    );

    let session = client.retrieve_session(&session.id).await.unwrap();
    assert_eq!(session.payment_status, "paid");
    let pi = session
        .payment_intent
        .as_ref()
        .and_then(|p| p.id())
        .unwrap()
        .to_string();
    assert!(
        eventually(10, || async {
            count_events(&t, "ProcessorEventReceived").await == 3
        })
        .await
    );
    let charge = charge_in_ledger(&t, &pi)
        .await
        .expect("the charge is in the ledger");
    assert_eq!(charge.amount, 24900);
    assert_eq!(charge.checkout_reference.as_deref(), Some("chk-1"));
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 1);
}

#[tokio::test]
async fn a_dropped_delivery_is_still_listed_as_undelivered_by_the_events_endpoint() {
    let t = TestDb::new().await;
    let serve = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let (sim, sim_base) = start_sim(Some(format!("{serve}/webhooks/stripe")), 8).await;
    sim.set_faults(Faults {
        drop: 1.0,
        ..Faults::default()
    });
    let charged = sim_charge(
        &sim_base,
        serde_json::json!({"email": "bob@example.com", "amount": 24900, "currency": "usd"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(count_events(&t, "ProcessorEventReceived").await, 0);

    let undelivered = processor_client(&sim_base)
        .events(ListFilter {
            extra: vec![("delivery_success".into(), "false".into())],
            ..Default::default()
        })
        .collect_all()
        .await
        .unwrap();
    let ids: Vec<&str> = undelivered.iter().map(|e| e.id.as_str()).collect();
    for id in charged["event_ids"].as_array().unwrap() {
        assert!(
            ids.contains(&id.as_str().unwrap()),
            "{id} missing from {ids:?}"
        );
    }
    assert!(undelivered
        .iter()
        .any(|e| e.event_type == "checkout.session.completed"));
}

#[tokio::test]
async fn deliveries_retry_while_the_endpoint_is_down_and_duplicates_still_make_one_charge() {
    let t = TestDb::new().await;
    let serve = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let (sim, sim_base) = start_sim(Some(format!("{serve}/webhooks/stripe")), 9).await;
    sim.set_faults(Faults {
        endpoint_down: true,
        duplicate: 1.0,
        reorder: true,
        ..Faults::default()
    });
    let charged = sim_charge(&sim_base, serde_json::json!({"email": "cy@example.com", "amount": 24900, "currency": "usd", "client_reference_id": "chk-9"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(
        count_events(&t, "ProcessorEventReceived").await,
        0,
        "nothing lands while the endpoint is down"
    );
    sim.set_faults(Faults {
        duplicate: 1.0,
        ..Faults::default()
    });
    assert!(
        eventually(15, || async {
            count_events(&t, "ProcessorEventReceived").await == 3
        })
        .await
    );
    let pi = charged["payment_intent_id"].as_str().unwrap();
    assert_eq!(
        charge_in_ledger(&t, pi)
            .await
            .unwrap()
            .checkout_reference
            .as_deref(),
        Some("chk-9")
    );
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 1);
}

#[tokio::test]
async fn every_object_of_a_long_list_is_seen_across_pages_despite_500_and_429() {
    let (sim, sim_base) = start_sim(None, 10).await;
    let http = reqwest::Client::new();
    for i in 0..1_050 {
        http.post(format!("{sim_base}/_sim/charges"))
            .json(&serde_json::json!({"email": format!("c{i}@example.com"), "amount": 100 + i, "currency": "usd"}))
            .send()
            .await
            .unwrap();
    }
    sim.set_faults(Faults {
        api_errors: 2,
        api_rate_limits: 1,
        ..Faults::default()
    });
    let client = processor_client(&sim_base);
    let mut pages = client.charges(ListFilter {
        limit: Some(100),
        ..Default::default()
    });
    let mut seen = std::collections::HashSet::new();
    let mut page_count = 0;
    while let Some(page) = pages.next_page().await.unwrap() {
        assert!(page.len() <= 100);
        page_count += 1;
        seen.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(seen.len(), 1_050);
    assert_eq!(page_count, 11);
    assert_eq!(
        sim.lock().faults.api_errors,
        0,
        "the failures were met and retried"
    );
}

#[tokio::test]
async fn a_refund_with_the_same_idempotency_key_refunds_once() {
    let (sim, sim_base) = start_sim(None, 11).await;
    let charged = sim_charge(
        &sim_base,
        serde_json::json!({"email": "d@example.com", "amount": 24900, "currency": "usd"}),
    )
    .await;
    let pi = charged["payment_intent_id"].as_str().unwrap();
    let client = processor_client(&sim_base);
    let a = client
        .create_refund(
            pi,
            None,
            Some("requested_by_customer"),
            &format!("refund-{pi}"),
        )
        .await
        .unwrap();
    let b = client
        .create_refund(
            pi,
            None,
            Some("requested_by_customer"),
            &format!("refund-{pi}"),
        )
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(sim.lock().refunds.len(), 1);
    // Without the key, a second full refund is refused: nothing left to refund.
    let err = client
        .create_refund(pi, None, None, "another-key")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("greater than unrefunded"), "{err}");
}

#[tokio::test]
async fn the_same_seed_gives_the_same_ids() {
    let (_a, base_a) = start_sim(None, 42).await;
    let (_b, base_b) = start_sim(None, 42).await;
    let s1 = processor_client(&base_a)
        .create_checkout_session(&new_session("x"))
        .await
        .unwrap();
    let s2 = processor_client(&base_b)
        .create_checkout_session(&new_session("x"))
        .await
        .unwrap();
    assert_eq!(s1.id, s2.id);
}

/// Paging undelivered events while deliveries succeed: the cursor event may
/// stop matching `delivery_success=false` between two pages. Stripe's cursor
/// is a place in the ordering, so the next page must still come (the
/// reconciler racing live webhooks failed on a 400 here).
#[tokio::test]
async fn the_next_page_comes_even_when_the_cursor_event_was_delivered_meanwhile() {
    let (sim, sim_base) = start_sim(None, 31).await;
    for i in 0..3 {
        sim_charge(
            &sim_base,
            serde_json::json!({"email": format!("p{i}@example.com"), "amount": 24900, "currency": "usd"}),
        )
        .await;
    }
    let undelivered = |cursor: Option<String>| {
        let sim_base = sim_base.clone();
        async move {
            let mut q = vec![
                ("delivery_success", "false".to_string()),
                ("limit", "2".into()),
            ];
            if let Some(c) = cursor {
                q.push(("starting_after", c));
            }
            let r = reqwest::Client::new()
                .get(format!("{sim_base}/v1/events"))
                .bearer_auth("sk_test_123")
                .query(&q)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap();
            assert!(status.is_success(), "{status}: {body}");
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let all = {
        let state = sim.lock();
        state
            .events
            .iter()
            .rev()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
    };
    let first = undelivered(None).await;
    assert_eq!(first, all[..2]);
    let cursor = first[1].clone();
    for e in sim.lock().events.iter_mut().filter(|e| e.id == cursor) {
        e.delivered = true;
    }
    let second = undelivered(Some(cursor)).await;
    assert_eq!(second, all[2..4], "the page after the cursor, in order");
}

/// A misspelt switch (`dorp`) used to be ignored and every fault switched
/// off, while the caller believed events were being dropped.
#[tokio::test]
async fn a_fault_switch_the_simulator_does_not_know_is_refused_and_changes_nothing() {
    let (sim, sim_base) = start_sim(None, 31).await;
    let http = reqwest::Client::new();
    let on = http
        .post(format!("{sim_base}/_sim/faults"))
        .json(&serde_json::json!({"drop": 0.5, "reorder": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(on.status(), 200);
    let refused = http
        .post(format!("{sim_base}/_sim/faults"))
        .json(&serde_json::json!({"dorp": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("unknown field `dorp`"), "{message}");
    let now = sim.lock().faults.clone();
    assert_eq!(
        now,
        Faults {
            drop: 0.5,
            reorder: true,
            ..Faults::default()
        }
    );
}
