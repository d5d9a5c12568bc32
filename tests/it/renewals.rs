//! Renewals end to end (spec §12): the real HTTP server, the simulator's
//! subscriptions driven by its clock, and PostgreSQL. Each story reads
//! `/api/access` as the product's app would.

use crate::common::renewals::*;
use crate::common::*;
use chrono::Datelike;
use serde_json::json;

const ANN: &str = "ann@example.com";

async fn yearly_renews_three_times(api_version: Option<&str>) {
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, api_version).await;
    shop.buy(ANN, "annual").await;
    let bought = shop.sim_now();
    let access = shop.access(ANN).await;
    assert_eq!(access["active"], true, "{access}");
    assert_eq!(access["status"], "active");
    assert_eq!(access["cancel_at_period_end"], false);
    let first_end = date(&access["period_end"]);
    assert_eq!(first_end, date(&access["renews_at"]));
    assert_eq!(
        (first_end.year(), first_end.month(), first_end.day()),
        (bought.year() + 1, bought.month(), bought.day()),
        "one calendar year"
    );
    for year in 1..=3 {
        let answer = shop.advance_days(366).await;
        assert_eq!(answer["invoices"].as_array().unwrap().len(), 1, "{answer}");
        let access = shop.access(ANN).await;
        assert_eq!(access["active"], true, "year {year}: {access}");
        let end = date(&access["period_end"]);
        assert_eq!(end.year(), first_end.year() + year, "year {year}: {access}");
    }
    assert_eq!(shop.open_discrepancy_kinds().await, Vec::<String>::new());
    // Every paid invoice is one period: three renewals, three more years.
    assert_eq!(count_events(&t, "InvoicePaid").await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yearly_subscription_renews_three_times_one_year_each() {
    yearly_renews_three_times(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yearly_subscription_renews_the_same_in_the_older_wire_shapes() {
    yearly_renews_three_times(Some("2020-03-02")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monthly_subscription_renews_twelve_times_across_31_january_and_29_february() {
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    // Move the processor to 31 January 2028, a leap year.
    let target = chrono::NaiveDate::from_ymd_opt(2028, 1, 31)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    let seconds = (target - shop.sim_now()).num_seconds();
    shop.advance(json!({ "seconds": seconds })).await;
    shop.buy(ANN, "monthly").await;
    let mut ends = vec![];
    for _ in 0..12 {
        let end = date(&shop.access(ANN).await["period_end"]);
        ends.push((end.month(), end.day()));
        let to_end = (end - shop.sim_now()).num_seconds() + 60;
        shop.advance(json!({ "seconds": to_end })).await;
    }
    assert_eq!(
        ends,
        [
            (2, 29),
            (3, 31),
            (4, 30),
            (5, 31),
            (6, 30),
            (7, 31),
            (8, 31),
            (9, 30),
            (10, 31),
            (11, 30),
            (12, 31),
            (1, 31)
        ]
    );
    assert_eq!(shop.access(ANN).await["active"], true);
    assert_eq!(shop.open_discrepancy_kinds().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_renewal_is_past_due_with_access_then_an_updated_card_recovers_it() {
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    let paid_end = date(&shop.access(ANN).await["period_end"]);
    shop.sim_post("/_sim/cards", json!({"email": ANN, "outcome": "decline"}))
        .await;
    shop.advance_days(366).await;
    let access = shop.access(ANN).await;
    assert_eq!(access["status"], "past_due", "{access}");
    assert_eq!(access["active"], true, "kept while the processor retries");
    assert_eq!(
        date(&access["period_end"]),
        paid_end,
        "not extended without money"
    );
    // The support desk sees who is past due and when the processor retries.
    let read = payledger_projections::read::ReadModels::new(t.db.pool.clone());
    let due = payledger_projections::read::subscriptions::past_due(&read)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].email, ANN);
    assert!(due[0].next_try.is_some_and(|t| t > paid_end), "{due:?}");

    // The status page says so, with a button to the processor's billing page.
    let status = shop.status_url(ANN).await;
    let (_, page, _) = crate::pages::page(&status).await;
    assert!(page.contains("data-situation=\"past_due\""), "{page}");
    assert!(page.contains("Update your card"), "{page}");
    let r = shop::http()
        .post(format!("{status}/card"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let portal = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        portal.starts_with(&format!("{}/portal/", shop.shop.sim_base)),
        "{portal}"
    );
    // The customer updates the card there.
    let customer = portal
        .split("/portal/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let r = shop::http()
        .post(format!("{}/portal/{customer}/card", shop.shop.sim_base))
        .form(&[("return_url", status.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "back to the status page");
    shop.settle().await;
    let access = shop.access(ANN).await;
    assert_eq!(access["status"], "active", "{access}");
    assert_eq!(date(&access["period_end"]).year(), paid_end.year() + 1);
    assert_eq!(count_events(&t, "InvoicePaymentFailed").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_declines_end_the_subscription_and_access_ends_with_what_was_paid() {
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    shop.sim_post("/_sim/cards", json!({"email": ANN, "outcome": "decline"}))
        .await;
    shop.advance_days(366).await;
    assert_eq!(shop.access(ANN).await["status"], "past_due");
    // Retries 3, 5 and 7 days after the first attempt.
    shop.advance_days(8).await;
    let access = shop.access(ANN).await;
    assert_eq!(access["status"], "ended", "{access}");
    assert_eq!(access["active"], false);
    assert_eq!(access["renews_at"], serde_json::Value::Null);
    assert_eq!(count_events(&t, "InvoicePaymentFailed").await, 4);
    assert_eq!(count_events(&t, "SubscriptionEnded").await, 1);
    // Support sees the renewal history.
    let found = payledger::support::find::find(&t.store(), None, ANN)
        .await
        .unwrap();
    let history = found.subscription.expect("a subscription").history;
    let failed: Vec<&String> = history.iter().filter(|l| l.contains(" failed ")).collect();
    assert_eq!(failed.len(), 4, "{history:#?}");
    assert!(
        failed[3].contains("attempt 4"),
        "in the order it happened: {history:#?}"
    );
    assert!(history.last().unwrap().starts_with("ended"), "{history:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_at_period_end_keeps_access_until_then_and_an_undo_renews_again() {
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    let sub = shop.subscription_of(ANN).await;
    shop.sim_post(
        &format!("/_sim/subscriptions/{sub}/cancel"),
        json!({"at_period_end": true}),
    )
    .await;
    let access = shop.access(ANN).await;
    assert_eq!(access["status"], "canceled", "{access}");
    assert_eq!(
        access["active"], true,
        "active until the end of what was paid"
    );
    assert_eq!(access["cancel_at_period_end"], true);
    assert_eq!(access["renews_at"], serde_json::Value::Null);

    // Undone through the processor's API, as support or the portal would.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/subscriptions/{sub}", shop.shop.sim_base))
        .bearer_auth("sk_test")
        .form(&[("cancel_at_period_end", "false")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    shop.settle().await;
    let access = shop.access(ANN).await;
    assert_eq!(access["status"], "active", "{access}");
    assert_eq!(access["cancel_at_period_end"], false);

    // Cancelled again; at the period's end it ends.
    shop.sim_post(
        &format!("/_sim/subscriptions/{sub}/cancel"),
        json!({"at_period_end": true}),
    )
    .await;
    shop.advance_days(366).await;
    let access = shop.access(ANN).await;
    assert_eq!(access["status"], "ended", "{access}");
    assert_eq!(access["active"], false);
    assert_eq!(
        count_events(&t, "InvoicePaid").await,
        1,
        "no renewal was charged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_shows_the_new_plan_now_and_its_price_and_period_from_the_next_renewal() {
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    let sub = shop.subscription_of(ANN).await;
    let paid_end = date(&shop.access(ANN).await["period_end"]);

    // The customer moves to the monthly plan in the processor's portal.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/subscriptions/{sub}", shop.shop.sim_base))
        .bearer_auth("sk_test")
        .form(&[("items[0][price]", "price_monthly_25")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    shop.settle().await;
    let access = shop.access(ANN).await;
    assert_eq!(access["plan"], "monthly", "{access}");
    assert_eq!(access["status"], "active");
    assert_eq!(
        date(&access["period_end"]),
        paid_end,
        "a plan change alone never extends access"
    );
    assert_eq!(count_events(&t, "SubscriptionPlanChanged").await, 1);

    // The next renewal charges the new price for one month.
    let answer = shop.advance_days(366).await;
    assert_eq!(answer["invoices"].as_array().unwrap().len(), 1, "{answer}");
    let access = shop.access(ANN).await;
    assert_eq!(access["plan"], "monthly", "{access}");
    let end = date(&access["period_end"]);
    assert!(
        end > paid_end && end <= paid_end + chrono::Duration::days(31),
        "one month past the paid year: {access}"
    );
    let c = t.db.pool.get().await.unwrap();
    let amounts: Vec<i64> = c
        .query(
            "SELECT (payload->>'amount')::bigint FROM events WHERE event_type = 'InvoicePaid' ORDER BY position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        amounts,
        vec![24900, 2500],
        "the year, then one month at $25"
    );
    assert_eq!(shop.open_discrepancy_kinds().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_the_ledger_never_saw_a_checkout_for_is_an_orphan_charge() {
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    let paid = sim_charge(
        &shop.shop.sim_base,
        json!({"email": "bob@example.com", "price": "price_annual_249"}),
    )
    .await;
    assert!(paid["subscription_id"].is_string(), "{paid}");
    shop.settle().await;
    assert_eq!(shop.open_discrepancy_kinds().await, ["unmatched_charge"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_whose_webhooks_are_lost_is_found_by_asking_before_access_ends() {
    use payledger::reactors::renewal_check::{ask_before_access_ends, Asked};
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    let paid_end = date(&shop.access(ANN).await["period_end"]);
    let sub = shop.subscription_of(ANN).await;

    // The renewal happens at the processor; every webhook about it is lost.
    shop.shop.sim.set_faults(payledger_sim::Faults {
        drop: 1.0,
        ..Default::default()
    });
    shop.advance(json!({"seconds": (paid_end - shop.sim_now()).num_seconds() + 600}))
        .await;
    shop.shop.sim.set_faults(payledger_sim::Faults::default());
    let access = shop.access(ANN).await;
    assert_eq!(
        date(&access["period_end"]),
        paid_end,
        "the ledger missed it"
    );
    assert_eq!(
        access["active"], true,
        "the renewal is due: not locked out meanwhile"
    );

    // The check before access ends asks the processor and appends the rest.
    let clock: std::sync::Arc<dyn payledger::clock::Clock> = shop.clock.clone();
    let store = payledger::store::PgEventStore::new(t.db.pool.clone(), clock);
    let processor = processor_client(&shop.shop.sim_base);
    let report = ask_before_access_ends(
        &store,
        &processor,
        chrono::Duration::hours(1),
        &mut Asked::default(),
        chrono::Duration::minutes(10),
    )
    .await
    .unwrap();
    assert_eq!(report.asked, [sub]);
    assert_eq!(report.appended.len(), 1, "{report:?}");
    assert!(report.appended[0].starts_with("InvoicePaid "), "{report:?}");
    project_everything(&t.db.pool).await;
    let access = shop.access(ANN).await;
    assert_eq!(access["active"], true, "{access}");
    assert_eq!(date(&access["period_end"]).year(), paid_end.year() + 1);
    // The discrepancy shows what happened; the customer's page says it too.
    assert_eq!(shop.open_discrepancy_kinds().await, ["renewal_not_applied"]);
    let (_, page, _) = crate::pages::page(&shop.status_url(ANN).await).await;
    assert!(
        page.contains("data-situation=\"renewal_not_applied\""),
        "{page}"
    );

    // Asked again, the processor has nothing the ledger lacks.
    let again = ask_before_access_ends(
        &store,
        &processor,
        chrono::Duration::days(400),
        &mut Asked::default(),
        chrono::Duration::minutes(10),
    )
    .await
    .unwrap();
    assert!(again.appended.is_empty(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_cancels_now_with_a_refund_of_the_last_payment_once() {
    use payledger::support::cancel::{cancel, CancelRequest};
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    let clock: std::sync::Arc<dyn payledger::clock::Clock> = shop.clock.clone();
    let store = payledger::store::PgEventStore::new(t.db.pool.clone(), clock);
    let processor = processor_client(&shop.shop.sim_base);
    let alice = payledger_events::Actor::Support("alice".into());
    let request = || CancelRequest {
        key: ANN,
        now: true,
        refund_last: true,
    };
    let mut asked = vec![];
    let done = cancel(&store, &processor, request(), &alice, &mut |what| {
        asked.push(what.to_string());
        true
    })
    .await
    .unwrap();
    assert!(done.changed, "{}", done.message);
    assert!(
        asked[0].contains("now") && asked[0].contains("refund"),
        "{asked:?}"
    );
    shop.settle().await;
    let access = shop.access(ANN).await;
    assert_eq!(access["active"], false, "{access}");
    assert_eq!(count_events(&t, "SubscriptionEnded").await, 1);
    assert_eq!(count_events(&t, "ChargeRefunded").await, 1);
    let refunded: i64 = shop
        .shop
        .sim
        .lock()
        .charges
        .iter()
        .map(|c| c.amount_refunded)
        .sum();
    assert_eq!(refunded, 24900, "the processor refunded the last payment");

    // Run again (a second person, a retry): nothing more happens.
    let again = cancel(&store, &processor, request(), &alice, &mut |_| true)
        .await
        .unwrap();
    assert!(!again.changed, "{}", again.message);
    assert!(
        again.message.starts_with("already done"),
        "{}",
        again.message
    );
    shop.settle().await;
    assert_eq!(count_events(&t, "ChargeRefunded").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_cancel_refuses_a_one_time_plan_and_an_unknown_customer_by_name() {
    use payledger::support::cancel::{cancel, CancelRequest};
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    project_everything(&t.db.pool).await;
    let store = t.store();
    let processor = processor_client(&shop.shop.sim_base);
    let alice = payledger_events::Actor::Support("alice".into());
    let err = cancel(
        &store,
        &processor,
        CancelRequest {
            key: "nobody@example.com",
            now: false,
            refund_last: false,
        },
        &alice,
        &mut |_| true,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("nobody@example.com"), "{err}");
}

/// The outbox's kinds for a customer, in the order they were asked for.
async fn email_kinds(t: &TestDb, email: &str) -> Vec<String> {
    t.client()
        .await
        .query(
            "SELECT kind FROM outgoing_emails WHERE recipient = $1 ORDER BY requested_at, email_key",
            &[&email],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_renewal_and_each_failed_attempt_is_emailed_once_with_its_amount_and_dates() {
    use crate::common::smtp::SmtpSink;
    use payledger::reactors::mail::Mailer;
    use payledger::reactors::sender::{send_due, SenderConfig};
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    shop.advance_days(366).await; // renews
    shop.sim_post("/_sim/cards", json!({"email": ANN, "outcome": "decline"}))
        .await;
    shop.advance_days(366).await; // attempt 1 fails
    shop.advance_days(8).await; // attempts 2, 3 (the last but one), 4; ended
                                // The webhooks of one move of the clock arrive in any order.
    let mut kinds = email_kinds(&t, ANN).await;
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "access_ended",
            "confirmation",
            "final_notice",
            "payment_failed",
            "payment_failed",
            "payment_failed",
            "renewal_receipt",
        ]
    );

    let sink = SmtpSink::start().await;
    let mailer = Mailer::smtp(&sink.url(), "payments@shop.example".parse().unwrap()).unwrap();
    let config = SenderConfig {
        public_url: shop.shop.base.clone(),
        support_email: "help@shop.example".into(),
        plans: payledger::plans::Plans::parse(RENEWING_PLANS, "plans").unwrap(),
        batch: 50,
        ..Default::default()
    };
    let clock: std::sync::Arc<dyn payledger::clock::Clock> = shop.clock.clone();
    let store = payledger::store::PgEventStore::new(t.db.pool.clone(), clock);
    let report = send_due(&store, &mailer, &config).await.unwrap();
    assert_eq!((report.sent, report.failed), (7, 0), "{report:?}");
    let received = sink.received();
    let receipt = received
        .iter()
        .find(|m| {
            m.header("Subject")
                .unwrap_or_default()
                .contains("renewal receipt")
        })
        .expect("a renewal receipt");
    assert!(receipt.text().contains("249.00 USD"), "{}", receipt.text());
    let last_try = received
        .iter()
        .find(|m| {
            m.header("Subject")
                .unwrap_or_default()
                .starts_with("Last try")
        })
        .expect("a final notice");
    assert!(
        last_try.text().contains("update your card"),
        "{}",
        last_try.text()
    );
    // Run again: nothing is sent twice.
    let again = send_due(&store, &mailer, &config).await.unwrap();
    assert_eq!(again.sent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_finds_a_cancelled_subscription_whose_every_webhook_was_lost() {
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.shop.sim.set_faults(payledger_sim::Faults {
        drop: 1.0,
        ..Default::default()
    });
    shop.buy(ANN, "annual").await;
    let sub = shop.shop.sim.lock().billing.subscriptions[0]
        .object
        .id
        .clone();
    shop.sim_post(
        &format!("/_sim/subscriptions/{sub}/cancel"),
        json!({"at_period_end": false}),
    )
    .await;
    shop.shop.sim.set_faults(payledger_sim::Faults::default());
    assert_eq!(
        count_events(&t, "SubscriptionStarted").await,
        0,
        "the ledger heard nothing"
    );

    let clock: std::sync::Arc<dyn payledger::clock::Clock> = shop.clock.clone();
    let store = payledger::store::PgEventStore::new(t.db.pool.clone(), clock);
    let now = payledger::clock::Clock::now(shop.clock.as_ref());
    let report = payledger::reconcile::reconcile(
        &store,
        &processor_client(&shop.shop.sim_base),
        now - chrono::Duration::hours(1),
        now,
        false,
    )
    .await
    .unwrap();
    let appended = report.appended.join("\n");
    for fact in ["SubscriptionStarted", "InvoicePaid", "SubscriptionEnded"] {
        assert!(appended.contains(fact), "{fact} not in:\n{appended}");
    }
    project_everything(&t.db.pool).await;
    let access = shop.access(ANN).await;
    assert_eq!(access["status"], "ended", "{access}");
    assert_eq!(access["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_updated_before_created_through_the_webhook_ends_in_the_same_state() {
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    let checkout = uuid::Uuid::new_v4();
    crate::common::ledger::append(
        &t.store(),
        vec![
            payledger_testkit::renewal_history::renewing_checkout(checkout, ANN, "annual").unwrap(),
        ],
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let year = 365 * 86_400;
    let subscription = |cancel: bool| {
        json!({
            "id": "sub_order", "object": "subscription", "customer": "cus_order",
            "status": "active", "created": now, "start_date": now,
            "cancel_at_period_end": cancel, "canceled_at": if cancel { json!(now + 60) } else { json!(null) },
            "metadata": {"checkout_reference": checkout.to_string()},
            "items": {"object": "list", "data": [{"id": "si_1", "current_period_start": now, "current_period_end": now + year,
                       "price": {"id": "price_annual_249", "recurring": {"interval": "year", "interval_count": 1}}}]}
        })
    };
    let invoice = json!({
        "id": "in_order", "object": "invoice", "customer": "cus_order", "customer_email": ANN,
        "status": "paid", "billing_reason": "subscription_create", "amount_paid": 24900, "amount_due": 24900,
        "currency": "usd", "created": now, "status_transitions": {"paid_at": now},
        "lines": {"object": "list", "data": [{"id": "il_1", "amount": 24900, "period": {"start": now, "end": now + year}}]},
        "parent": {"subscription_details": {"subscription": "sub_order", "metadata": {"checkout_reference": checkout.to_string()}}},
        "payments": {"object": "list", "data": [{"id": "inpay_1", "payment": {"payment_intent": "pi_order"}}]}
    });
    // The cancellation's update arrives first, the creation last.
    for (id, kind, object) in [
        ("evt_3", "customer.subscription.updated", subscription(true)),
        ("evt_2", "invoice.paid", invoice),
        (
            "evt_1",
            "customer.subscription.created",
            subscription(false),
        ),
    ] {
        let r = post_signed(
            &shop.shop.base,
            &stripe_event(id, kind, object),
            WEBHOOK_SECRET,
        )
        .await;
        assert!(r.status().is_success(), "{kind}: {}", r.status());
    }
    project_everything(&t.db.pool).await;
    let access = shop.access(ANN).await;
    assert_eq!(access["status"], "canceled", "{access}");
    assert_eq!(access["active"], true);
    assert_eq!(access["cancel_at_period_end"], true);
    assert_eq!(shop.open_discrepancy_kinds().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yearly_renewal_is_announced_once_thirty_days_ahead_and_a_monthly_one_not() {
    use payledger::reactors::renewal_check::{remind_before_renewals, Reminders};
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    shop.buy("bob@example.com", "monthly").await;
    let clock: std::sync::Arc<dyn payledger::clock::Clock> = shop.clock.clone();
    let store = payledger::store::PgEventStore::new(t.db.pool.clone(), clock);
    let plans = payledger::plans::Plans::parse(RENEWING_PLANS, "plans").unwrap();
    let reminders = Reminders::of(&plans, 30);
    assert!(
        remind_before_renewals(&store, &reminders)
            .await
            .unwrap()
            .is_empty(),
        "a year ahead: not yet"
    );
    shop.advance_days(340).await;
    let announced = remind_before_renewals(&store, &reminders).await.unwrap();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert!(
        remind_before_renewals(&store, &reminders)
            .await
            .unwrap()
            .is_empty(),
        "once"
    );
    project_everything(&t.db.pool).await;
    assert!(email_kinds(&t, ANN)
        .await
        .contains(&"renewal_reminder".to_string()));
    assert!(!email_kinds(&t, "bob@example.com")
        .await
        .contains(&"renewal_reminder".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_view_keeps_a_past_due_customer_unless_the_setting_revokes() {
    use payledger_events::Period;
    use payledger_projections::read::subscriptions::PastDueAccess;
    use payledger_testkit::renewal_history as r;
    let t = TestDb::new().await;
    let now = chrono::Utc::now();
    let checkout = uuid::Uuid::new_v4();
    // Paid a year and an hour ago; the renewal was declined; retried in 3 days.
    let anchor = now - chrono::Duration::days(365) - chrono::Duration::hours(1);
    crate::common::ledger::append(
        &t.store(),
        vec![
            r::renewing_checkout(checkout, ANN, "annual").unwrap(),
            r::started("sub_view", Some(checkout), anchor).unwrap(),
            r::paid_as(
                "sub_view",
                Some(checkout),
                anchor,
                Period::Year,
                1,
                24900,
                ANN,
                payledger_events::ChargeSource::Webhook,
            )
            .unwrap(),
            r::failed(
                "sub_view",
                2,
                1,
                now - chrono::Duration::hours(1),
                Some(now + chrono::Duration::days(3)),
            )
            .unwrap(),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    let active = || async {
        t.client()
            .await
            .query_one(
                "SELECT status, active FROM payledger_access WHERE email = $1",
                &[&ANN],
            )
            .await
            .unwrap()
    };
    let row = active().await;
    assert_eq!(row.get::<_, String>(0), "past_due");
    assert!(row.get::<_, bool>(1), "kept while the processor retries");
    t.db.record_view_settings(PastDueAccess::Revoke)
        .await
        .unwrap();
    assert!(
        !active().await.get::<_, bool>(1),
        "revoked when the setting says so"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_learns_a_failed_renewal_attempt_whose_webhooks_were_lost_once() {
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    shop.sim_post("/_sim/cards", json!({"email": ANN, "outcome": "decline"}))
        .await;
    shop.shop.sim.set_faults(payledger_sim::Faults {
        drop: 1.0,
        ..Default::default()
    });
    shop.advance_days(366).await;
    shop.shop.sim.set_faults(payledger_sim::Faults::default());
    assert_eq!(
        count_events(&t, "InvoicePaymentFailed").await,
        0,
        "the ledger heard nothing of the failed attempt"
    );

    let clock: std::sync::Arc<dyn payledger::clock::Clock> = shop.clock.clone();
    let store = payledger::store::PgEventStore::new(t.db.pool.clone(), clock);
    let now = payledger::clock::Clock::now(shop.clock.as_ref());
    for _ in 0..2 {
        payledger::reconcile::reconcile(
            &store,
            &processor_client(&shop.shop.sim_base),
            // The renewal fell due a day before the clock stopped.
            now - chrono::Duration::days(3),
            now,
            false,
        )
        .await
        .unwrap();
    }
    let sources: Vec<String> = t
        .client()
        .await
        .query(
            "SELECT metadata->>'source' FROM events WHERE event_type = 'InvoicePaymentFailed'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        sources,
        ["reconciliation"],
        "learnt by reconciliation, once, however often it runs"
    );
    project_everything(&t.db.pool).await;
    let access = shop.access(ANN).await;
    assert_eq!(access["status"], "past_due", "{access}");
    assert_eq!(access["active"], true, "kept while the processor retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_the_ledger_never_heard_of_is_a_disagreement_when_asked_until_it_is_learnt(
) {
    use payledger::reactors::renewal_check::{ask_before_access_ends, Asked};
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    let paid_end = date(&shop.access(ANN).await["period_end"]);
    shop.sim_post("/_sim/cards", json!({"email": ANN, "outcome": "decline"}))
        .await;
    shop.shop.sim.set_faults(payledger_sim::Faults {
        drop: 1.0,
        ..Default::default()
    });
    shop.advance(json!({"seconds": (paid_end - shop.sim_now()).num_seconds() + 600}))
        .await;
    shop.shop.sim.set_faults(payledger_sim::Faults::default());

    // Past its paid end the ledger still says active (the renewal's grace);
    // asked, the processor says past due: the check records that, once.
    let clock: std::sync::Arc<dyn payledger::clock::Clock> = shop.clock.clone();
    let store = payledger::store::PgEventStore::new(t.db.pool.clone(), clock);
    let processor = processor_client(&shop.shop.sim_base);
    for _ in 0..2 {
        let report = ask_before_access_ends(
            &store,
            &processor,
            chrono::Duration::hours(1),
            &mut Asked::default(),
            chrono::Duration::minutes(10),
        )
        .await
        .unwrap();
        assert!(
            report
                .appended
                .iter()
                .all(|a| a.starts_with("SubscriptionDisagreement ")),
            "{report:?}"
        );
    }
    assert_eq!(count_events(&t, "SubscriptionDisagreement").await, 1);
    project_everything(&t.db.pool).await;
    assert_eq!(
        shop.open_discrepancy_kinds().await,
        ["subscription_disagreement"]
    );
    let action: String = t
        .client()
        .await
        .query_one(
            "SELECT suggested_action FROM discrepancies WHERE kind = 'subscription_disagreement'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(action.contains("the processor says past_due"), "{action}");

    // Reconciliation learns the failed attempt: the ledger and the
    // processor agree again and the discrepancy closes by itself.
    let now = payledger::clock::Clock::now(shop.clock.as_ref());
    payledger::reconcile::reconcile(
        &store,
        &processor,
        now - chrono::Duration::days(3),
        now,
        false,
    )
    .await
    .unwrap();
    project_everything(&t.db.pool).await;
    assert_eq!(shop.open_discrepancy_kinds().await, Vec::<String>::new());
    assert_eq!(shop.access(ANN).await["status"], "past_due");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_kept_with_no_paid_period_is_a_discrepancy_until_the_period_is_paid() {
    use payledger::store::EventStore;
    use payledger_events::{Actor, EventData, Metadata, StreamId, SubscriptionDisagreement};
    let t = TestDb::new().await;
    let shop = open_renewing_shop(&t, None).await;
    shop.buy(ANN, "annual").await;
    let paid_end = date(&shop.access(ANN).await["period_end"]);
    let sub = shop.subscription_of(ANN).await;
    // What the check appends when the processor says active and nothing
    // paid covers now (the simulator collects at once, so it is written
    // here as the check writes it).
    let found = SubscriptionDisagreement {
        subscription_id: sub.clone(),
        email: Some(ANN.into()),
        kind: "no_paid_period".into(),
        ledger_status: "active".into(),
        ledger_period_end: paid_end,
        processor_status: "active".into(),
        processor_period_end: Some(paid_end + chrono::Duration::days(365)),
        detail: "no paid invoice covers now".into(),
    };
    let data = EventData::for_processor_fact(
        &found.into(),
        &format!("{sub}:no_paid_period:{}", paid_end.timestamp()),
        Metadata::new(
            uuid::Uuid::new_v4(),
            Actor::renewal_check(),
            "renewal-check",
        ),
    )
    .unwrap();
    t.store()
        .append(vec![payledger::store::StreamAppend::new(
            StreamId::subscription(&sub),
            payledger::store::ExpectedVersion::Any,
            vec![data],
        )])
        .await
        .unwrap();
    project_everything(&t.db.pool).await;
    assert_eq!(
        shop.open_discrepancy_kinds().await,
        ["access_without_paid_period"]
    );
    let found = payledger::support::find::find(&t.store(), None, ANN)
        .await
        .unwrap();
    let told = |lines: Vec<String>| {
        lines
            .iter()
            .any(|l| l.contains("no paid invoice covers now"))
    };
    assert!(
        told(found.timeline.iter().map(|e| e.summary.clone()).collect()),
        "{:#?}",
        found.timeline
    );
    assert!(told(found.subscription.expect("a subscription").history));

    // The renewal is paid and reaches the ledger: the period is covered.
    shop.advance(json!({"seconds": (paid_end - shop.sim_now()).num_seconds() + 600}))
        .await;
    shop.settle().await;
    assert_eq!(shop.open_discrepancy_kinds().await, Vec::<String>::new());
}
