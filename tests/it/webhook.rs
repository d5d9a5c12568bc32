//! `POST /webhooks/stripe` against the running server and real PostgreSQL.

use crate::common::*;
use serde_json::json;

fn session_object(session: &str, pi: &str, reference: Option<&str>) -> serde_json::Value {
    json!({
        "id": session, "object": "checkout.session", "amount_total": 24900, "currency": "usd",
        "client_reference_id": reference, "customer_details": {"email": "ann@example.com"},
        "payment_intent": pi, "payment_status": "paid", "status": "complete", "mode": "payment",
        "created": 1_790_000_000
    })
}

fn pi_object(pi: &str) -> serde_json::Value {
    json!({
        "id": pi, "object": "payment_intent", "amount": 24900, "amount_received": 24900, "currency": "usd",
        "created": 1_790_000_000, "status": "succeeded", "receipt_email": "ann@example.com", "latest_charge": format!("ch_{pi}")
    })
}

fn charge_object(pi: &str) -> serde_json::Value {
    json!({
        "id": format!("ch_{pi}"), "object": "charge", "amount": 24900, "amount_refunded": 0, "currency": "usd",
        "created": 1_790_000_000, "paid": true, "status": "succeeded", "payment_intent": pi,
        "billing_details": {"email": "ann@example.com"}
    })
}

async fn error_text(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
    )
}

/// Posts `body` with `header` (or none) and checks the 400, its reason, and
/// that nothing reached the log.
async fn assert_refused(
    header: impl FnOnce(&str, i64) -> Option<String>,
    tamper: fn(&str) -> String,
    expected: &str,
) {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let body = stripe_event(
        "evt_sig",
        "checkout.session.completed",
        session_object("cs_1", "pi_1", None),
    );
    let mut request = reqwest::Client::new()
        .post(format!("{base}/webhooks/stripe"))
        .body(tamper(&body));
    if let Some(h) = header(&body, chrono::Utc::now().timestamp()) {
        request = request.header("Stripe-Signature", h);
    }
    let (status, text) = error_text(request.send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(text.contains(expected), "{text}");
    assert_eq!(count_events(&t, "ProcessorEventReceived").await, 0);
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 0);
}

fn sign(body: &str, secret: &str, t: i64) -> Option<String> {
    Some(payledger::processor::signature::sign(
        body.as_bytes(),
        secret,
        t,
    ))
}

fn untouched(body: &str) -> String {
    body.to_string()
}

#[tokio::test]
async fn a_missing_signature_header_is_refused() {
    assert_refused(|_, _| None, untouched, "missing Stripe-Signature").await;
}

#[tokio::test]
async fn a_malformed_signature_header_is_refused() {
    assert_refused(|_, _| Some("nonsense".into()), untouched, "malformed").await;
    assert_refused(
        |_, _| Some(format!("v1={}", "ab".repeat(32))),
        untouched,
        "no t= timestamp",
    )
    .await;
}

#[tokio::test]
async fn a_signature_made_with_the_wrong_secret_is_refused() {
    assert_refused(
        |b, t| sign(b, "whsec_wrong", t),
        untouched,
        "no v1 signature matches",
    )
    .await;
}

#[tokio::test]
async fn a_tampered_body_is_refused() {
    assert_refused(
        |b, t| sign(b, WEBHOOK_SECRET, t),
        |b| b.replace("24900", "100"),
        "no v1 signature matches",
    )
    .await;
}

#[tokio::test]
async fn a_timestamp_older_than_the_tolerance_is_refused() {
    assert_refused(
        |b, t| sign(b, WEBHOOK_SECRET, t - 301),
        untouched,
        "outside the tolerance",
    )
    .await;
}

#[tokio::test]
async fn the_second_secret_is_accepted_during_a_rotation() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &["whsec_old", WEBHOOK_SECRET]).await;
    let body = stripe_event(
        "evt_rot",
        "customer.created",
        json!({"id": "cus_1", "object": "customer"}),
    );
    assert_eq!(
        post_signed(&base, &body, WEBHOOK_SECRET).await.status(),
        200
    );
    assert_eq!(count_events(&t, "ProcessorEventReceived").await, 1);
}

#[tokio::test]
async fn several_v1_values_pass_when_one_is_right() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let body = stripe_event(
        "evt_multi",
        "customer.created",
        json!({"id": "cus_2", "object": "customer"}),
    );
    let now = chrono::Utc::now().timestamp();
    let good = payledger::processor::signature::signature_hex(body.as_bytes(), WEBHOOK_SECRET, now);
    let header = format!("t={now},v1={},v1={good},v0=ignored", "00".repeat(32));
    let r = reqwest::Client::new()
        .post(format!("{base}/webhooks/stripe"))
        .header("Stripe-Signature", header)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(count_events(&t, "ProcessorEventReceived").await, 1);
}

#[tokio::test]
async fn duplicate_webhook_delivered_twenty_times_at_once_creates_one_charge() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let body = stripe_event(
        "evt_dup",
        "checkout.session.completed",
        session_object("cs_dup", "pi_dup", Some("ref")),
    );
    let mut tasks = vec![];
    for _ in 0..20 {
        let (base, body) = (base.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            post_signed(&base, &body, WEBHOOK_SECRET)
                .await
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 1);
    assert_eq!(count_events(&t, "ProcessorEventReceived").await, 1);
}

#[tokio::test]
async fn the_three_events_of_one_payment_in_any_order_create_one_charge() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for (n, order) in orders.iter().enumerate() {
        let pi = format!("pi_order{n}");
        let bodies = [
            stripe_event(
                &format!("evt_{n}_pi"),
                "payment_intent.succeeded",
                pi_object(&pi),
            ),
            stripe_event(
                &format!("evt_{n}_ch"),
                "charge.succeeded",
                charge_object(&pi),
            ),
            stripe_event(
                &format!("evt_{n}_cs"),
                "checkout.session.completed",
                session_object(&format!("cs_{n}"), &pi, Some("r")),
            ),
        ];
        for i in order {
            assert_eq!(
                post_signed(&base, &bodies[*i], WEBHOOK_SECRET)
                    .await
                    .status(),
                200
            );
        }
        let per_payment: i64 = t
            .client()
            .await
            .query_one("SELECT count(*) FROM events WHERE event_type = 'ChargeSucceeded' AND stream_id = $1", &[&format!("payment-{pi}")])
            .await
            .unwrap()
            .get(0);
        assert_eq!(per_payment, 1, "order {order:?}");
    }
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 6);
    assert_eq!(count_events(&t, "ProcessorEventReceived").await, 18);
}

#[tokio::test]
async fn bodies_payledger_cannot_act_on_are_kept_verbatim_and_answered_2xx() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let mut zero = session_object("cs_zero", "pi_zero", None);
    zero["amount_total"] = json!(0);
    let mut negative = charge_object("pi_neg");
    negative["amount"] = json!(-5);
    let mut unknown_currency = session_object("cs_zzz", "pi_zzz", None);
    unknown_currency["currency"] = json!("zzz");
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("not JSON", "this is not json".to_string(), Some("not JSON")),
        (
            "wrong shape",
            json!({"hello": "world"}).to_string(),
            Some("not a processor event"),
        ),
        (
            "known type, wrong object",
            stripe_event("evt_shape", "checkout.session.completed", json!({"foo": 1})),
            Some("expected shape"),
        ),
        (
            "zero amount",
            stripe_event("evt_zero", "checkout.session.completed", zero),
            Some("not positive"),
        ),
        (
            "negative amount",
            stripe_event("evt_neg", "charge.succeeded", negative),
            Some("not positive"),
        ),
        (
            "unknown currency",
            stripe_event("evt_zzz", "checkout.session.completed", unknown_currency),
            Some("ISO 4217"),
        ),
        (
            "unknown type",
            stripe_event("evt_unknown", "invoice.finalized", json!({"id": "in_1"})),
            None,
        ),
    ];
    for (name, body, reason) in &cases {
        let r = post_signed(&base, body, WEBHOOK_SECRET).await;
        assert_eq!(r.status(), 200, "{name}");
        let stored = t
            .client()
            .await
            .query_opt(
                "SELECT payload->>'unparsed_reason' FROM events WHERE event_type = 'ProcessorEventReceived' AND payload->>'raw_body' = $1",
                &[body],
            )
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: body not kept verbatim"));
        let kept_reason: Option<String> = stored.get(0);
        match reason {
            Some(r) => assert!(
                kept_reason.as_deref().unwrap_or_default().contains(r),
                "{name}: {kept_reason:?}"
            ),
            None => assert_eq!(kept_reason, None, "{name}"),
        }
    }
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 0);
    assert_eq!(
        count_events(&t, "ProcessorEventReceived").await,
        cases.len() as i64
    );
}

#[tokio::test]
async fn a_refund_for_a_payment_never_seen_is_recorded_as_a_fact() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let mut charge = charge_object("pi_ghost");
    charge["amount_refunded"] = json!(24900);
    charge["refunded"] = json!(true);
    charge["refunds"] = json!({"object": "list", "has_more": false, "data": [
        {"id": "re_ghost", "object": "refund", "amount": 24900, "charge": "ch_pi_ghost", "payment_intent": "pi_ghost",
         "currency": "usd", "created": 1_790_000_100, "status": "succeeded"}]});
    let r = post_signed(
        &base,
        &stripe_event("evt_ghost", "charge.refunded", charge),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(count_events(&t, "ChargeRefunded").await, 1);
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 0);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_refused_with_413() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let body = "x".repeat((1 << 20) + 1);
    let r = post_signed(&base, &body, WEBHOOK_SECRET).await;
    assert_eq!(r.status(), 413);
    assert_eq!(count_events(&t, "ProcessorEventReceived").await, 0);
}

#[tokio::test]
async fn with_the_store_unreachable_the_endpoint_answers_503() {
    // A pool whose server never answers: nothing reachable on port 1.
    let config: tokio_postgres::Config = "postgres://postgres@127.0.0.1:1/nowhere".parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    let pool = deadpool_postgres::Pool::builder(manager)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .create_timeout(Some(std::time::Duration::from_secs(2)))
        .wait_timeout(Some(std::time::Duration::from_secs(2)))
        .build()
        .unwrap();
    let base = start_serve_with_pool(pool, &[WEBHOOK_SECRET]).await;
    let body = stripe_event(
        "evt_down",
        "checkout.session.completed",
        session_object("cs_d", "pi_d", None),
    );
    assert_eq!(
        post_signed(&base, &body, WEBHOOK_SECRET).await.status(),
        503
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_2xx_is_ever_answered_for_an_event_that_is_not_stored_when_the_store_dies_mid_run() {
    let t = TestDb::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let url = format!("postgres://postgres@{}/{}", proxy.addr, t.name);
    let db = payledger::db::Database::connect(&url, 8).await.unwrap();
    let base = start_serve_with_pool(db.pool.clone(), &[WEBHOOK_SECRET]).await;

    let sender = tokio::spawn(async move {
        let mut answers = vec![];
        for i in 0..400 {
            let id = format!("evt_mid_{i}");
            let body = stripe_event(
                &id,
                "checkout.session.completed",
                session_object(&format!("cs_m{i}"), &format!("pi_m{i}"), None),
            );
            let status = post_signed(&base, &body, WEBHOOK_SECRET)
                .await
                .status()
                .as_u16();
            answers.push((id, status));
        }
        answers
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    proxy.cut();
    let answers = sender.await.unwrap();

    let c = t.client().await;
    let mut ok = 0;
    for (id, status) in &answers {
        let stored: i64 = c
            .query_one(
                "SELECT count(*) FROM events WHERE stream_id = $1",
                &[&format!("processor-event-{id}")],
            )
            .await
            .unwrap()
            .get(0);
        if (200..300).contains(status) {
            ok += 1;
            assert_eq!(
                stored, 1,
                "{id} was answered {status} but is not in the log"
            );
        } else {
            assert_eq!(
                *status, 503,
                "{id}: a store failure must ask the processor to retry"
            );
        }
    }
    assert!(ok > 0, "some events went through before the cut");
    assert!(
        answers.iter().any(|(_, s)| *s == 503),
        "the cut must have been felt"
    );
}
