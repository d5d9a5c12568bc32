//! Bad input found by probing the running system (issue 14): each case is
//! answered as specified, stores what it should, and stops nothing else.

use crate::common::*;
use payledger::store::EventStore;
use serde_json::json;

fn charge_object(pi: &str, email: &str, created: i64) -> serde_json::Value {
    json!({
        "id": format!("ch_{pi}"), "object": "charge", "amount": 24900, "amount_refunded": 0,
        "currency": "usd", "created": created, "paid": true, "status": "succeeded",
        "payment_intent": pi, "billing_details": {"email": email}
    })
}

async fn answer(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn scalar(t: &TestDb, sql: &str) -> i64 {
    t.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

/// A normal purchase still activates after whatever came before it.
async fn a_normal_purchase_activates(t: &TestDb, base: &str, pi: &str, email: &str) {
    let body = stripe_event(
        &format!("evt_{pi}"),
        "charge.succeeded",
        charge_object(pi, email, chrono::Utc::now().timestamp()),
    );
    assert_eq!(post_signed(base, &body, WEBHOOK_SECRET).await.status(), 200);
    let store = t.store();
    let payment = payledger_events::StreamId::payment(pi);
    let match_it = crate::common::ledger::matched(pi, email);
    store
        .append_to_stream(
            payment,
            payledger::store::ExpectedVersion::Any,
            vec![match_it.1],
        )
        .await
        .unwrap();
    project_everything(&t.db.pool).await;
    let active = scalar(
        t,
        &format!(
            "SELECT count(*) FROM subscriptions WHERE email = '{email}' AND status = 'active'"
        ),
    )
    .await;
    assert_eq!(active, 1, "a normal purchase after the bad input activates");
}

#[tokio::test]
async fn a_charge_refunded_in_two_parts_records_both_refunds_from_one_callback() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let refund = |id: &str, amount: i64| {
        json!({"id": id, "object": "refund", "amount": amount, "currency": "usd",
               "created": 1_790_000_100, "status": "succeeded", "charge": "ch_pi_r",
               "payment_intent": "pi_r"})
    };
    let mut charge = charge_object("pi_r", "ann@example.com", 1_790_000_000);
    charge["amount_refunded"] = json!(12000);
    charge["refunded"] = json!(false);
    charge["refunds"] = json!({"object": "list", "has_more": false, "url": "/v1/refunds",
                               "data": [refund("re_1", 5000), refund("re_2", 7000)]});
    let body = stripe_event("evt_two_refunds", "charge.refunded", charge);
    let (status, reply) = answer(post_signed(&base, &body, WEBHOOK_SECRET).await).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(count_events(&t, "ChargeRefunded").await, 2);
    assert_eq!(count_events(&t, "ProcessorEventReceived").await, 1);
    let versions = scalar(
        &t,
        "SELECT count(DISTINCT stream_version) FROM events WHERE stream_id = 'payment-pi_r'",
    )
    .await;
    assert_eq!(versions, 2);
    // The retry is a duplicate, not an error.
    let (status, reply) = answer(post_signed(&base, &body, WEBHOOK_SECRET).await).await;
    assert_eq!((status, reply["result"].as_str()), (200, Some("duplicate")));
}

#[tokio::test]
async fn a_callback_dated_in_the_year_262142_is_kept_unparsed_and_stops_nothing() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    for (evt, created) in [
        ("evt_far_future", 8_210_235_000_000_i64),
        ("evt_beyond_dates", 8_210_298_412_800),
        ("evt_long_ago", 100),
        (
            "evt_next_decade",
            chrono::Utc::now().timestamp() + 10 * 366 * 86_400,
        ),
    ] {
        let body = stripe_event(
            evt,
            "charge.succeeded",
            charge_object(&format!("pi_{evt}"), "far@example.com", created),
        );
        let (status, reply) = answer(post_signed(&base, &body, WEBHOOK_SECRET).await).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["result"], "unparsed", "{reply}");
    }
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 0);
    let reason: String = t
        .client()
        .await
        .query_one(
            "SELECT payload->>'unparsed_reason' FROM events WHERE stream_id = 'processor-event-evt_far_future'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(reason.contains("paid_at"), "{reason}");
    a_normal_purchase_activates(&t, &base, "pi_normal", "ok@example.com").await;
    assert_eq!(
        scalar(
            &t,
            "SELECT count(*) FROM projection_state WHERE status <> 'running'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT count(*) FROM discrepancies WHERE kind = 'unparsed_processor_event' AND status = 'open'"
        )
        .await,
        4
    );
}

#[tokio::test]
async fn a_reused_event_id_with_another_body_becomes_a_conflict_and_never_a_fact() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let first = stripe_event(
        "evt_same",
        "charge.succeeded",
        charge_object("pi_ann", "ann@example.com", 1_790_000_000),
    );
    let second = stripe_event(
        "evt_same",
        "charge.succeeded",
        charge_object("pi_eve", "eve@example.com", 1_790_000_000),
    );
    let (_, reply) = answer(post_signed(&base, &first, WEBHOOK_SECRET).await).await;
    assert_eq!(reply["result"], "recorded");
    for _ in 0..2 {
        let (status, reply) = answer(post_signed(&base, &second, WEBHOOK_SECRET).await).await;
        assert_eq!((status, reply["result"].as_str()), (200, Some("conflict")));
    }
    let (_, reply) = answer(post_signed(&base, &first, WEBHOOK_SECRET).await).await;
    assert_eq!(reply["result"], "duplicate");

    assert_eq!(count_events(&t, "ChargeSucceeded").await, 1);
    assert_eq!(
        scalar(
            &t,
            "SELECT count(*) FROM events WHERE payload->>'payment_id' = 'pi_eve'"
        )
        .await,
        0
    );
    assert_eq!(count_events(&t, "ProcessorEventConflict").await, 1);
    project_everything(&t.db.pool).await;
    let row = t
        .client()
        .await
        .query_one(
            "SELECT status, suggested_action FROM discrepancies WHERE kind = 'processor_event_conflict'",
            &[],
        )
        .await
        .unwrap();
    let (status, action): (String, String) = (row.get(0), row.get(1));
    assert_eq!(status, "open");
    let invariants = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
            .args(["audit", "invariants"])
            .env("DATABASE_URL", &t.url)
            .output()
            .unwrap()
    };
    let out = invariants();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // What the old code did: a fact from the second body, recorded as if
    // the stored callback had stated it. The audit must see it.
    let correlation =
        payledger_events::deterministic_event_id("ProcessorEventReceived", "evt_same");
    let injected: payledger_events::DomainEvent = payledger_events::ChargeSucceeded {
        payment_id: "pi_eve".into(),
        charge_id: None,
        session_id: None,
        checkout_reference: None,
        customer_email: Some("eve@example.com".into()),
        amount: 24900,
        currency: payledger_events::Currency::new("usd").unwrap(),
        paid_at: chrono::Utc::now(),
        source: payledger_events::ChargeSource::Webhook,
        invoice_id: None,
    }
    .into();
    let data = payledger_events::EventData::for_processor_fact(
        &injected,
        "pi_eve",
        payledger_events::Metadata::new(correlation, payledger_events::Actor::webhook(), "webhook")
            .caused_by(correlation),
    )
    .unwrap();
    t.store()
        .append_to_stream(
            payledger_events::StreamId::payment("pi_eve"),
            payledger::store::ExpectedVersion::Any,
            vec![data],
        )
        .await
        .unwrap();
    project_everything(&t.db.pool).await;
    let out = invariants();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("pi_eve") && text.contains("not stated by the body"),
        "{text}"
    );
    let hashes =
        [first.as_bytes(), second.as_bytes()].map(payledger::processor::mapping::body_sha256);
    assert!(
        hashes.iter().all(|h| action.contains(h.as_str())),
        "{action}"
    );
}

#[tokio::test]
async fn bodies_and_ids_postgres_cannot_hold_are_kept_verbatim_as_unparsed() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let long = "x".repeat(10_000);
    let mut nul_body = br#"{"id":"evt_nul","type":"charge.succeeded","data":{}}"#.to_vec();
    nul_body.insert(10, 0);
    let latin1 = b"{\"id\":\"evt_latin1\",\"note\":\"caf\xe9\"}".to_vec();
    let cases: Vec<Vec<u8>> = vec![
        nul_body,
        latin1,
        stripe_event("evt_\u{0}x", "charge.succeeded", json!({})).into_bytes(),
        stripe_event(&format!("evt_{long}"), "charge.succeeded", json!({})).into_bytes(),
        stripe_event(
            "evt_long_payment",
            "charge.succeeded",
            charge_object(&format!("pi_{long}"), "ann@example.com", 1_790_000_000),
        )
        .into_bytes(),
        stripe_event(
            "evt_nul_email",
            "charge.succeeded",
            charge_object("pi_nul_email", "a\u{0}b@example.com", 1_790_000_000),
        )
        .into_bytes(),
    ];
    for body in &cases {
        let header = payledger::processor::signature::sign(
            body,
            WEBHOOK_SECRET,
            chrono::Utc::now().timestamp(),
        );
        let r = reqwest::Client::new()
            .post(format!("{base}/webhooks/stripe"))
            .header("Stripe-Signature", header)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, reply) = answer(r).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["result"], "unparsed", "{reply}");
        // The exact bytes are in the log.
        let stream = format!("processor-event-{}", reply["event"].as_str().unwrap());
        let stream = payledger_events::StreamId::from_stored(stream);
        let rows = t.store().read_stream(&stream, 0, 1).await.unwrap();
        let Ok(payledger_events::DomainEvent::ProcessorEventReceived(record)) = rows[0].decode()
        else {
            panic!("not a callback record");
        };
        assert_eq!(
            &payledger::processor::mapping::stored_body_bytes(&record),
            body,
            "stored bytes differ"
        );
    }
    assert_eq!(count_events(&t, "ChargeSucceeded").await, 0);
    assert_eq!(count_events(&t, "ProcessorEventReceived").await, 6);
    a_normal_purchase_activates(&t, &base, "pi_after_bad", "ok@example.com").await;
}

#[tokio::test]
async fn a_signature_header_with_thousands_of_entries_is_refused_before_hashing() {
    let t = TestDb::new().await;
    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let now = chrono::Utc::now().timestamp();
    let header = format!("t={now},{}", vec!["v1=00"; 5000].join(","));
    let r = reqwest::Client::new()
        .post(format!("{base}/webhooks/stripe"))
        .header("Stripe-Signature", header)
        .body(vec![b'x'; 1 << 19])
        .send()
        .await
        .unwrap();
    let (status, reply) = answer(r).await;
    assert_eq!(status, 400);
    assert!(
        reply["error"].as_str().unwrap().contains("longer than"),
        "{reply}"
    );
    // Overflow: a timestamp 2^63 s ago, correctly signed, is outside the tolerance.
    let body = stripe_event("evt_old", "charge.succeeded", json!({}));
    let t0 = now.wrapping_sub(i64::MAX).wrapping_sub(1);
    let r = reqwest::Client::new()
        .post(format!("{base}/webhooks/stripe"))
        .header(
            "Stripe-Signature",
            payledger::processor::signature::sign(body.as_bytes(), WEBHOOK_SECRET, t0),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, reply) = answer(r).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(count_events(&t, "ProcessorEventReceived").await, 0);
}

/// A rule that panics on one event (as date arithmetic once did).
struct PanickingRule;

struct PanickingRows;

impl payledger_projections::projection::ProjectionRows for PanickingRows {
    fn apply<'a>(
        &'a mut self,
        _db: payledger_projections::table::Db<'a>,
        _event: &'a payledger_events::RecordedEvent,
        decoded: &'a payledger_events::DomainEvent,
    ) -> payledger_projections::projection::ApplyFuture<'a> {
        let boom = matches!(decoded, payledger_events::DomainEvent::ChargeSucceeded(_));
        Box::pin(async move {
            if boom {
                panic!("date out of range");
            }
            Ok(())
        })
    }
    fn flush<'a>(
        &'a mut self,
        _tx: &'a deadpool_postgres::Transaction<'a>,
    ) -> payledger_projections::projection::ApplyFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    fn copy_into<'a>(
        &'a mut self,
        _tx: &'a deadpool_postgres::Transaction<'a>,
    ) -> payledger_projections::projection::ApplyFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    fn into_parts(
        self: Box<Self>,
    ) -> Vec<Box<dyn payledger_projections::projection::ProjectionRows>> {
        vec![self]
    }
    fn in_memory_only(&mut self) {}
}

impl payledger_projections::projection::Projection for PanickingRule {
    fn name(&self) -> &'static str {
        "panicking"
    }
    fn version(&self) -> i32 {
        1
    }
    fn handles(&self, _event_type: &str) -> bool {
        true
    }
    fn schema_sql(&self) -> &'static str {
        "CREATE TABLE panicking_rows (id INT PRIMARY KEY);"
    }
    fn public_tables(&self) -> &'static [&'static str] {
        &["panicking_rows"]
    }
    fn rows(&self) -> Box<dyn payledger_projections::projection::ProjectionRows> {
        Box::new(PanickingRows)
    }
}

#[tokio::test]
async fn a_rule_that_panics_stops_its_projection_visibly_and_readyz_and_metrics_say_so() {
    use payledger_projections::runner;
    let t = TestDb::new().await;
    let store = t.store();
    crate::common::ledger::append(
        &store,
        vec![crate::common::ledger::charge(
            "pi_boom",
            None,
            Some("b@example.com"),
            24900,
            0,
        )],
    )
    .await;
    runner::install(&t.db.pool, &PanickingRule, 100)
        .await
        .unwrap();
    let mut client = t.db.pool.get().await.unwrap();
    // The gap-safe order may hold the event back while other tests'
    // transactions are open: step until the rule has met it.
    let mut step = runner::Step::Idle;
    for _ in 0..600 {
        step = runner::step(&mut client, &PanickingRule, 100)
            .await
            .unwrap();
        if step != runner::Step::Idle {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(step, runner::Step::Stopped);
    let status = runner::status(&t.db.pool).await.unwrap();
    let stopped = status.iter().find(|s| s.name == "panicking").unwrap();
    assert_eq!(
        stopped.state,
        payledger_projections::states::ProjectionState::Stopped
    );
    let why = stopped.last_error.clone().unwrap_or_default();
    assert!(
        why.contains("panicked") && why.contains("date out of range"),
        "{why}"
    );

    let base = start_serve(&t, &[WEBHOOK_SECRET]).await;
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    assert!(
        text.contains("panicking") && text.contains("ChargeSucceeded"),
        "{text}"
    );
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("payledger_projection_stopped{projection=\"panicking\"} 1"),
        "{metrics}"
    );
}

async fn serve_with_site(t: &TestDb, site: payledger::pages::Site) -> String {
    let clock: std::sync::Arc<dyn payledger::clock::Clock> =
        std::sync::Arc::new(payledger::clock::SystemClock);
    let state = payledger::http::AppState::new(
        payledger::store::PgEventStore::new(t.db.pool.clone(), clock.clone()),
        clock,
        vec![WEBHOOK_SECRET.into()],
    )
    .with_site(site);
    serve_state(state).await
}

fn tight_limits() -> payledger::pages::Site {
    payledger::pages::Site {
        http_limits: payledger::http::HttpLimits {
            header_read: std::time::Duration::from_secs(1),
            body_read: std::time::Duration::from_secs(1),
            max_connections: 5,
        },
        ..Default::default()
    }
}

/// Reads until the server closes the connection (or `secs` pass); returns
/// what it answered and whether it closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, secs: u64) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = vec![];
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_idle_and_surplus_connections_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let t = TestDb::new().await;
    let base = serve_with_site(&t, tight_limits()).await;
    let addr = base.trim_start_matches("http://").to_string();
    let connect = || tokio::net::TcpStream::connect(addr.clone());

    // Headers that never end.
    let mut partial = connect().await.unwrap();
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut partial, 15).await.1,
        "partial header held open"
    );

    // A body shorter than its Content-Length.
    let mut short = connect().await.unwrap();
    short
        .write_all(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut short, 15).await;
    assert!(closed && answer.starts_with("HTTP/1.1 408"), "{answer}");

    // An idle keep-alive connection after a request.
    let mut idle = connect().await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut idle, 15).await;
    assert!(closed && answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The cap: five held connections, the sixth is closed at once, and a
    // freed slot serves again.
    let mut held = vec![];
    for _ in 0..5 {
        held.push(connect().await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut surplus = connect().await.unwrap();
    let _ = surplus
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (answer, closed) = read_until_closed(&mut surplus, 5).await;
    assert!(
        closed && answer.is_empty(),
        "the sixth was served: {answer}"
    );
    drop(held);
    assert!(
        eventually(15, || async {
            reqwest::get(format!("{base}/healthz"))
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await
    );
}

#[tokio::test]
async fn cross_site_form_posts_are_refused_and_record_nothing() {
    let t = TestDb::new().await;
    let site = payledger::pages::Site {
        public_url: "https://pay.example.com".into(),
        ..Default::default()
    };
    let base = serve_with_site(&t, site).await;
    let form = [
        ("plan", "year"),
        ("email", "ann@example.com"),
        ("token", &uuid::Uuid::new_v4().to_string()),
    ];
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        for path in ["/checkout", "/status"] {
            let r = reqwest::Client::new()
                .post(format!("{base}{path}"))
                .header(name, value)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{path} with {name}: {value}");
            assert!(r.text().await.unwrap().contains("another site"));
        }
    }
    assert_eq!(
        scalar(&t, "SELECT count(*) FROM events").await,
        0,
        "a refused post recorded something"
    );
}

#[tokio::test]
async fn one_client_cannot_open_unbounded_checkouts_even_by_forging_forwarded_for() {
    let t = TestDb::new().await;
    let base = serve_with_site(&t, payledger::pages::Site::default()).await;
    let mut statuses = vec![];
    for i in 0..32 {
        let token = uuid::Uuid::new_v4().to_string();
        let r = reqwest::Client::new()
            .post(format!("{base}/checkout"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .form(&[
                ("plan", "year"),
                ("email", "ann@example.com"),
                ("token", &token),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(statuses[..30].iter().all(|s| *s != 429), "{statuses:?}");
    assert_eq!(&statuses[30..], &[429, 429]);
    assert!(count_events(&t, "CheckoutStarted").await <= 30);
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_customer_pages_are_not_cached() {
    let t = TestDb::new().await;
    let site = payledger::pages::Site {
        public_url: "https://pay.example.com".into(),
        ..Default::default()
    };
    let base = serve_with_site(&t, site).await;
    for path in [
        "/",
        "/status",
        "/status/PL-AAAA-BBBB-CCCC-DDDD",
        "/nope",
        "/checkout/return?session_id=cs_x",
    ] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .contains("max-age"),
            "{path}"
        );
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
}

#[tokio::test]
async fn the_access_api_checks_the_token_before_reading_the_query_and_answers_json() {
    let t = TestDb::new().await;
    let site = payledger::pages::Site {
        api_token: Some("secret-token".into()),
        metrics_token: Some("metrics-token".into()),
        ..Default::default()
    };
    let base = serve_with_site(&t, site).await;
    let url = format!("{base}/api/access?email=a@example.com&email=b@example.com");
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "unauthorized"
    );
    let r = reqwest::Client::new()
        .get(&url)
        .bearer_auth("secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    // The metrics token, when set, is required.
    assert_eq!(
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .status(),
        401
    );
    let r = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth("metrics-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn after_migrate_alone_every_read_model_answers_empty() {
    let t = TestDb::new().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .arg("migrate")
        .env("DATABASE_URL", &t.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for view in [
        "subscriptions",
        "outgoing_emails",
        "discrepancies",
        "timeline",
        "customer_status",
        "payledger_access",
    ] {
        assert_eq!(
            scalar(&t, &format!("SELECT count(*) FROM {view}")).await,
            0,
            "{view}"
        );
    }
    let site = payledger::pages::Site {
        api_token: Some("tok".into()),
        ..Default::default()
    };
    let base = serve_with_site(&t, site).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/api/access?email=ann@example.com"))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = reqwest::get(format!("{base}/status/PL-AAAA-BBBB-CCCC-DDDD"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Something went wrong"), "{page}");
}

#[test]
fn a_malformed_database_url_never_prints_its_password() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .args(["projections", "status"])
        .env(
            "DATABASE_URL",
            "postgres://u:hunter2secret@127.0.0.1:notaport/db",
        )
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(all.contains("DATABASE_URL"), "{all}");
    assert!(!all.contains("hunter2secret"), "{all}");
}

/// Runs `payledger ARGS` with one setting; it must refuse to start, without
/// a panic; what it said.
fn refused(args: &[&str], env: (&str, &str)) -> String {
    refused_with(args, &[env])
}

fn refused_with(args: &[&str], envs: &[(&str, &str)]) -> String {
    {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
            .args(args)
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
            .env("STRIPE_API_KEY", "sk_test_x")
            .env("STRIPE_WEBHOOK_SECRET", "whsec_x")
            .env("PAYLEDGER_SUPPORT_EMAIL", "help@example.com")
            .env(
                "PAYLEDGER_PLANS",
                concat!(env!("CARGO_MANIFEST_DIR"), "/plans.example.toml"),
            )
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{args:?}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
        text
    }
}

#[test]
fn bad_renewal_settings_are_refused_by_name() {
    for (args, setting, value) in [
        (&["serve"][..], "PAYLEDGER_PAST_DUE_ACCESS", "sometimes"),
        (&["work"][..], "PAYLEDGER_RENEWAL_REMINDER_DAYS", "-3"),
        (&["work"][..], "PAYLEDGER_RENEWAL_REMINDER_DAYS", "9999"),
        (&["work"][..], "PAYLEDGER_RENEWAL_RECHECK", "99999999999d"),
        (&["work"][..], "PAYLEDGER_FOLLOW_SIM_CLOCK", "yes"),
    ] {
        let text = refused(args, (setting, value));
        assert!(text.contains(setting), "{setting}={value}: {text}");
    }
    // Following a clock is for the simulator on this machine only.
    let text = refused(&["work"], ("PAYLEDGER_FOLLOW_SIM_CLOCK", "1"));
    assert!(
        text.contains("PAYLEDGER_FOLLOW_SIM_CLOCK") && text.contains("loopback"),
        "{text}"
    );
}

#[test]
fn bad_mail_and_application_webhook_settings_are_refused_by_name() {
    const URL: (&str, &str) = ("PAYLEDGER_APP_WEBHOOK_URL", "https://app.example/hooks");
    const SECRET: (&str, &str) = (
        "PAYLEDGER_APP_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    const MAIL: (&str, &str) = ("SMTP_URL", "smtp://127.0.0.1:2525");
    for (envs, named) in [
        (
            vec![MAIL, ("PAYLEDGER_MAIL_CONCURRENCY", "0")],
            "PAYLEDGER_MAIL_CONCURRENCY",
        ),
        (
            vec![MAIL, ("PAYLEDGER_MAIL_CONCURRENCY", "many")],
            "PAYLEDGER_MAIL_CONCURRENCY",
        ),
        (
            vec![("PAYLEDGER_APP_WEBHOOK_LEASE", "forever")],
            "PAYLEDGER_APP_WEBHOOK_LEASE",
        ),
        // Group commit: on or off, and sizes that make sense.
        (
            vec![("PAYLEDGER_GROUP_COMMIT", "maybe")],
            "PAYLEDGER_GROUP_COMMIT",
        ),
        (
            vec![("PAYLEDGER_GROUP_COMMIT_MAX", "0")],
            "PAYLEDGER_GROUP_COMMIT_MAX",
        ),
        (
            vec![("PAYLEDGER_GROUP_COMMIT_WRITERS", "-1")],
            "PAYLEDGER_GROUP_COMMIT_WRITERS",
        ),
        (
            vec![("PAYLEDGER_GROUP_COMMIT_WINDOW_US", "1ms")],
            "PAYLEDGER_GROUP_COMMIT_WINDOW_US",
        ),
        (
            vec![("PAYLEDGER_PROJECTION_LINGER_MS", "soon")],
            "PAYLEDGER_PROJECTION_LINGER_MS",
        ),
        (
            vec![("PAYLEDGER_PROJECTION_LINGER_MS", "20000")],
            "PAYLEDGER_PROJECTION_LINGER_MS",
        ),
        // A rebuild's memory: a size, and one it can work in.
        (
            vec![("PAYLEDGER_REBUILD_MEMORY", "lots")],
            "PAYLEDGER_REBUILD_MEMORY",
        ),
        (
            vec![("PAYLEDGER_REBUILD_MEMORY", "12KB")],
            "PAYLEDGER_REBUILD_MEMORY",
        ),
        // A URL with no secret to sign with, a secret with nowhere to go.
        (vec![URL], "PAYLEDGER_APP_WEBHOOK_SECRET"),
        (vec![SECRET], "PAYLEDGER_APP_WEBHOOK_URL"),
        // Too short, or not what Standard Webhooks libraries accept.
        (
            vec![URL, ("PAYLEDGER_APP_WEBHOOK_SECRET", "whsec_c2hvcnQ=")],
            "PAYLEDGER_APP_WEBHOOK_SECRET",
        ),
        (
            vec![URL, ("PAYLEDGER_APP_WEBHOOK_SECRET", "hunter2")],
            "PAYLEDGER_APP_WEBHOOK_SECRET",
        ),
    ] {
        let text = refused_with(&["work"], &envs);
        assert!(text.contains(named), "{envs:?}: {text}");
        assert!(
            !text.contains("hunter2"),
            "a secret is never printed: {text}"
        );
    }
}

#[test]
fn huge_durations_in_flags_and_settings_are_refused_by_name() {
    let run = refused;
    let text = run(&["reconcile", "--since", "99999999999d"], ("X", "y"));
    assert!(
        text.contains("--since") && text.contains("at most"),
        "{text}"
    );
    let text = run(
        &["reconcile", "--since", "9223372036854775807s"],
        ("X", "y"),
    );
    assert!(
        text.contains("--since") && text.contains("at most"),
        "{text}"
    );
    let text = run(
        &["serve"],
        ("PAYLEDGER_PENDING_WINDOW", "9223372036854775807s"),
    );
    assert!(text.contains("PAYLEDGER_PENDING_WINDOW"), "{text}");
    let text = run(&["work"], ("PAYLEDGER_RECONCILE_EVERY", "99999999999d"));
    assert!(text.contains("PAYLEDGER_RECONCILE_EVERY"), "{text}");
}

#[tokio::test]
async fn the_checkout_form_takes_only_addresses_a_mail_server_would() {
    let t = TestDb::new().await;
    let base = serve_with_site(&t, payledger::pages::Site::default()).await;
    for email in [
        "a$(touch x)@x.com",
        "a`id`@x.com",
        "a;b@x.com",
        "a|b@x.com",
        "a&b@x.com",
        "a@x..com",
        "a@-x.com",
    ] {
        let r = reqwest::Client::new()
            .post(format!("{base}/checkout"))
            .form(&[
                ("plan", "year"),
                ("email", email),
                ("token", &uuid::Uuid::new_v4().to_string()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{email}");
    }
    assert_eq!(count_events(&t, "CheckoutStarted").await, 0);
}
