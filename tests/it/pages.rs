//! What the customer sees, against the running server, real PostgreSQL and
//! the processor simulator: every state, every failure, never a blank page.

use crate::common::shop::*;
use crate::common::*;

fn form(plan: &str, email: &str, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("plan", plan.into()),
        ("email", email.into()),
        ("token", token.into()),
    ]
}

/// Submits the checkout form; returns the processor pay page it redirects to.
async fn checkout(shop: &Shop, email: &str) -> String {
    let token = uuid::Uuid::new_v4().to_string();
    let r = http()
        .post(format!("{}/checkout", shop.base))
        .form(&form("annual", email, &token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    r.headers()["location"].to_str().unwrap().to_string()
}

/// Pays on the simulator's hosted page; returns the session id.
async fn pay(shop: &Shop, pay_url: &str) -> String {
    let session = pay_url.rsplit('/').next().unwrap().to_string();
    let r = http()
        .post(format!("{}/pay/{session}", shop.sim_base))
        .form(&[("email", "")])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    session
}

pub(crate) async fn page(url: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = http().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    // Apostrophes come back escaped from variables and plain from the
    // template text; the sentences are what matter.
    let body = r.text().await.unwrap().replace("&#39;", "'");
    assert!(
        !body.trim().is_empty(),
        "{url} answered {status} with an empty body"
    );
    (status, body, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_page_offers_the_plan_with_labels_and_a_language() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    let (status, body, _) = page(&format!("{}/", shop.base)).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"<html lang="en">"#));
    assert!(body.contains("One year of access — 249.00 USD"), "{body}");
    assert!(body.contains(r#"<label for="email">"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_is_recorded_before_the_processor_and_redirects_to_its_pay_page() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    let pay_url = checkout(&shop, "Ann@Example.com").await;
    assert!(
        pay_url.starts_with(&format!("{}/pay/", shop.sim_base)),
        "{pay_url}"
    );
    assert_eq!(count_events(&t, "CheckoutStarted").await, 1);
    assert_eq!(count_events(&t, "ProcessorSessionOpened").await, 1);
    let checkout_id: String = t
        .client()
        .await
        .query_one(
            "SELECT payload->>'checkout_id' FROM events WHERE event_type = 'CheckoutStarted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let state = shop.sim.lock();
    assert_eq!(state.sessions.len(), 1);
    assert_eq!(
        state.sessions[0].client_reference_id.as_deref(),
        Some(checkout_id.as_str())
    );
    assert_eq!(
        state.sessions[0].customer_email.as_deref(),
        Some("ann@example.com")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_form_submitted_five_times_is_one_checkout_and_one_session() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    let token = uuid::Uuid::new_v4().to_string();
    let submits = (0..5).map(|_| {
        let (url, body) = (
            format!("{}/checkout", shop.base),
            form("annual", "twice@example.com", &token),
        );
        async move { http().post(url).form(&body).send().await.unwrap() }
    });
    let answers = futures_util::future::join_all(submits).await;
    let locations: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status(), 303);
            r.headers()["location"].to_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(locations.len(), 1, "every submit goes to the same pay page");
    assert_eq!(count_events(&t, "CheckoutStarted").await, 1);
    assert_eq!(shop.sim.lock().sessions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_processor_fails_the_customer_is_told_they_were_not_charged() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    shop.sim.set_faults(payledger_sim::Faults {
        api_errors: 1000,
        ..Default::default()
    });
    let r = http()
        .post(format!("{}/checkout", shop.base))
        .form(&form(
            "annual",
            "down@example.com",
            &uuid::Uuid::new_v4().to_string(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(body.contains("You have not been charged."), "{body}");
    assert!(body.contains("ERR-"));
    assert_eq!(
        count_events(&t, "CheckoutStarted").await,
        1,
        "recorded before the processor was asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_form_back_with_the_problem_named_and_records_nothing() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    let token = uuid::Uuid::new_v4().to_string();
    let cases = [
        (
            form("annual", "", &token),
            400,
            "Please enter your email address.",
        ),
        (
            form("annual", "not-an-email", &token),
            400,
            "doesn&#39;t look right",
        ),
        (
            form("lifetime", "ok@example.com", &token),
            400,
            "Please choose one of the plans",
        ),
        (
            vec![("plan", "annual".to_string())],
            400,
            "Please enter your email address.",
        ),
    ];
    for (body, status, says) in cases {
        let r = http()
            .post(format!("{}/checkout", shop.base))
            .form(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        let text = r.text().await.unwrap();
        assert!(text.contains(says), "{says:?} not in {text}");
    }
    let huge = "x".repeat(40_000);
    let r = http()
        .post(format!("{}/checkout", shop.base))
        .form(&form("annual", &huge, &token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("too large") && text.contains("not charged"),
        "{text}"
    );
    assert_eq!(count_events(&t, "CheckoutStarted").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_in_every_field_comes_back_escaped() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    let evil = "<script>alert(1)</script>";
    let r = http()
        .post(format!("{}/checkout", shop.base))
        .form(&form(evil, evil, evil))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(!text.contains("<script>"), "{text}");
    assert!(
        text.contains("alert(1)"),
        "the input is shown back, escaped: {text}"
    );
    for url in [
        format!(
            "{}/checkout/return?session_id={}",
            shop.base,
            urlencode(evil)
        ),
        format!("{}/status/{}", shop.base, urlencode(evil)),
    ] {
        let (_, body, _) = page(&url).await;
        assert!(!body.contains("<script>"), "{url}: {body}");
    }
    let r = http()
        .post(format!("{}/status", shop.base))
        .form(&[("email", evil)])
        .send()
        .await
        .unwrap();
    assert!(!r.text().await.unwrap().contains("<script>"));
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_return_page_says_pending_refreshes_itself_and_records_the_return_once() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    let pay_url = checkout(&shop, "wait@example.com").await;
    let session = pay(&shop, &pay_url).await;
    project_everything(&t.db.pool).await;
    let url = format!("{}/checkout/return?session_id={session}", shop.base);
    for _ in 0..3 {
        let (status, body, headers) = page(&url).await;
        assert_eq!(status, 200);
        assert!(
            body.contains("Your payment may still be arriving"),
            "{body}"
        );
        assert!(body.contains(r#"<meta http-equiv="refresh" content="5">"#));
        assert!(body.contains("Please don't pay again."), "{body}");
        assert!(body.contains("PL-"));
        assert_eq!(headers["cache-control"], "no-store");
    }
    assert_eq!(
        count_events(&t, "CheckoutReturned").await,
        1,
        "a refreshing page appends nothing more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_return_page_shows_the_receipt_once_the_charge_is_in() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, true).await;
    let pay_url = checkout(&shop, "paid@example.com").await;
    let session = pay(&shop, &pay_url).await;
    assert!(
        eventually(20, || async {
            count_events(&t, "ChargeSucceeded").await == 1
        })
        .await
    );
    project_everything(&t.db.pool).await;
    let (status, body, _) = page(&format!(
        "{}/checkout/return?session_id={session}",
        shop.base
    ))
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("You're in"), "{body}");
    assert!(body.contains("249.00 USD"));
    assert!(body.contains("Access until"));
    assert!(
        body.contains("p***@example.com"),
        "the address is masked: {body}"
    );
    assert!(
        !body.contains("pi_") && !body.contains("cs_"),
        "no internal ids: {body}"
    );

    // The same state later, by the reference code alone.
    let reference = body.split("PL-").nth(1).unwrap()[..19].to_string();
    let (status, later, _) = page(&format!("{}/status/PL-{reference}", shop.base)).await;
    assert_eq!(status, 200);
    assert!(later.contains("You're in"));

    // The product asks who has access.
    let access: serde_json::Value = http()
        .get(format!("{}/api/access?email=paid@example.com", shop.base))
        .bearer_auth("token-for-tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(access["active"], true);
    assert_eq!(access["plan"], "annual");
    assert_eq!(access["activation"], "checkout");
    let via_view: bool = t
        .client()
        .await
        .query_one(
            "SELECT active FROM payledger_access WHERE email = 'paid@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(via_view);
}

/// After the pending window with no payment recorded, nothing is in the
/// support queue (no charge is known), so the page must not promise that a
/// person is on it: it says what we do (ask the processor) and when to
/// write to us. (It used to say "a person is looking at your payment"
/// while `support queue` was empty.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_pending_window_with_nothing_recorded_the_page_promises_no_person() {
    let t = TestDb::new().await;
    let shop = open_shop_with(
        t.db.pool.clone(),
        false,
        |s| s.pending_window = chrono::Duration::zero(),
        axum::Router::new(),
    )
    .await;
    let pay_url = checkout(&shop, "lost@example.com").await;
    let session = pay(&shop, &pay_url).await;
    project_everything(&t.db.pool).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (status, body, _) = page(&format!(
        "{}/checkout/return?session_id={session}",
        shop.base
    ))
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("Your payment hasn&#x27;t reached us yet")
            || body.contains("Your payment hasn't reached us yet"),
        "{body}"
    );
    assert!(!body.contains("A person"), "no person is on it: {body}");
    assert!(
        body.contains("If you don&#x27;t hear from us within a day")
            || body.contains("If you don't hear from us within a day"),
        "{body}"
    );
    assert!(body.contains("help@shop.example"));
    assert!(body.contains("Your reference code: <strong>PL-"));
    let queue = payledger::support::queue::queue(
        &payledger_projections::read::ReadModels::new(t.db.pool.clone()),
        &payledger::plans::Plans::default(),
        false,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert!(queue.is_empty(), "and indeed nobody was asked: {queue:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_session_or_reference_gets_a_page_not_an_error() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    project_everything(&t.db.pool).await;
    for url in [
        format!("{}/checkout/return?session_id=cs_test_nobody", shop.base),
        format!("{}/checkout/return", shop.base),
        format!("{}/status/PL-0000-0000-0000-0000", shop.base),
        format!("{}/no/such/page", shop.base),
    ] {
        let (status, body, _) = page(&url).await;
        assert_eq!(status, 404, "{url}");
        assert!(body.contains("<h1>"), "{url}: {body}");
    }
    assert_eq!(count_events(&t, "CheckoutReturned").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_the_pages_keep_their_promises() {
    let config: tokio_postgres::Config = "postgres://postgres@127.0.0.1:1/nothing".parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    let dead = deadpool_postgres::Pool::builder(manager)
        .max_size(2)
        .build()
        .unwrap();
    let shop = open_shop_with(dead, false, |_| {}, axum::Router::new()).await;
    for url in [
        format!("{}/checkout/return?session_id=cs_test_x", shop.base),
        format!("{}/status/PL-0000-0000-0000-0000", shop.base),
    ] {
        let (status, body, _) = page(&url).await;
        assert_eq!(status, 503, "{url}");
        assert!(body.contains("If you paid, your payment is safe"), "{body}");
        assert!(body.contains("Please don't pay again."));
        assert!(body.contains("ERR-"));
    }
    // Asking for status links: the request was not taken, and it says so
    // (not the status page's "we will email you as soon as…").
    let r = http()
        .post(format!("{}/status", shop.base))
        .form(&[("email", "someone@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap().replace("&#39;", "'");
    assert!(
        body.contains("We couldn't take your request right now"),
        "{body}"
    );
    assert!(
        body.contains("try again in a few minutes") && body.contains("ERR-"),
        "{body}"
    );
    assert!(
        !body.contains("as soon as your payment is confirmed"),
        "{body}"
    );
    let r = http()
        .get(format!("{}/readyz", shop.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = http()
        .get(format!("{}/healthz", shop.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_error_or_a_panic_renders_the_friendly_page_without_details() {
    let t = TestDb::new().await;
    let panicking = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("secret detail: SELECT * FROM events");
            }
            "unreachable"
        }),
    );
    let shop = open_shop_with(t.db.pool.clone(), false, |_| {}, panicking).await;
    let (status, body, _) = page(&format!("{}/boom", shop.base)).await;
    assert_eq!(status, 500);
    assert!(body.contains("Something went wrong on our side"));
    assert!(body.contains("ERR-"));
    assert!(
        !body.contains("secret detail") && !body.contains("SELECT"),
        "{body}"
    );

    // A broken read model is a bug, not an outage: the error page.
    project_everything(&t.db.pool).await;
    t.client()
        .await
        .batch_execute("DROP VIEW customer_status")
        .await
        .unwrap();
    let (status, body, _) = page(&format!("{}/status/PL-0000-0000-0000-0000", shop.base)).await;
    assert_eq!(status, 500);
    assert!(body.contains("Something went wrong on our side") && body.contains("ERR-"));
    assert!(
        !body.contains("customer_status") && !body.contains("relation"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_by_email_answers_the_same_words_for_known_and_unknown_addresses() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    checkout(&shop, "known@example.com").await;
    let ask = |email: &'static str| {
        let url = format!("{}/status", shop.base);
        async move {
            let r = http()
                .post(url)
                .form(&[("email", email)])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s1, known) = ask("known@example.com").await;
    let (s2, unknown) = ask("stranger@example.com").await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(
        known, unknown,
        "the page never reveals whether an address is known"
    );
    assert_eq!(count_events(&t, "StatusLinkRequested").await, 2);
    project_everything(&t.db.pool).await;
    let queued: i64 = t
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM outgoing_emails WHERE kind = 'status_link'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 2);

    // Per address: the fourth request within the hour is refused.
    ask("known@example.com").await;
    ask("known@example.com").await;
    let (status, _) = ask("known@example.com").await;
    assert_eq!(status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_without_the_right_token_is_refused_without_a_hint() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    project_everything(&t.db.pool).await;
    let url = format!("{}/api/access?email=a@example.com", shop.base);
    let none = http().get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let none = none.text().await.unwrap();
    let wrong = http().get(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.text().await.unwrap(),
        none,
        "no hint which part was wrong"
    );
    let nobody: serde_json::Value = http()
        .get(&url)
        .bearer_auth("token-for-tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(nobody["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_metrics_tell_the_operator_what_they_need() {
    let t = TestDb::new().await;
    let shop = open_shop(&t, false).await;
    payledger::pages::install_metrics();
    project_everything(&t.db.pool).await;
    let r = http()
        .get(format!("{}/readyz", shop.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = post_signed(
        &shop.base,
        &stripe_event(
            "evt_m1",
            "customer.created",
            serde_json::json!({"id": "cus_1"}),
        ),
        WEBHOOK_SECRET,
    )
    .await;
    assert!(body.status().is_success());
    let metrics = http()
        .get(format!("{}/metrics", shop.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("payledger_webhooks_total"), "{metrics}");
    assert!(
        metrics.contains("payledger_projection_lag_events"),
        "{metrics}"
    );
    // Documented as a histogram: buckets, which aggregate across processes
    // (a summary's quantiles do not).
    assert!(
        metrics.contains("# TYPE payledger_append_seconds histogram")
            && metrics.contains("payledger_append_seconds_bucket{le=\"0.005\"}"),
        "{metrics}"
    );
}

/// A customer who already has access and comes to buy again would only make
/// a duplicate charge for support to refund: the form says they need not
/// pay again, and nothing is recorded or opened at the processor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buying_again_with_access_is_stopped_before_any_charge() {
    let t = TestDb::new().await;
    let checkout = uuid::Uuid::new_v4();
    crate::common::ledger::append(
        &t.store(),
        vec![
            crate::common::ledger::checkout_started(checkout, "again@example.com", 24900),
            crate::common::ledger::charge(
                "pi_again",
                Some(checkout),
                Some("again@example.com"),
                24900,
                0,
            ),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    let shop = open_shop(&t, false).await;
    let token = uuid::Uuid::new_v4().to_string();
    let r = http()
        .post(format!("{}/checkout", shop.base))
        .form(&form("annual", "Again@Example.com", &token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap().replace("&#39;", "'");
    assert!(
        body.contains("already has access, so you don't need to pay again"),
        "{body}"
    );
    assert_eq!(
        count_events(&t, "CheckoutStarted").await,
        1,
        "nothing new recorded"
    );
    assert!(shop.sim.lock().sessions.is_empty(), "no session opened");
}
