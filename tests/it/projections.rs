//! The read models: the seed story, the orphan, and every discrepancy kind
//! opening and clearing.

use crate::common::ledger::*;
use crate::common::*;
use uuid::Uuid;

async fn one_row(
    t: &TestDb,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Option<tokio_postgres::Row> {
    t.client().await.query_opt(sql, params).await.unwrap()
}

async fn discrepancy_status(t: &TestDb, id: &str) -> Option<String> {
    one_row(t, "SELECT status FROM discrepancies WHERE id = $1", &[&id])
        .await
        .map(|r| r.get(0))
}

#[tokio::test]
async fn the_seed_story_ends_in_an_active_year_and_one_confirmation() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "ann@example.com", 24900),
            charge("pi_seed", Some(checkout), Some("ann@example.com"), 24900, 0),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;

    let sub = one_row(&t, "SELECT status, activation, period_start, period_end, payment_id FROM subscriptions WHERE email = 'ann@example.com'", &[]).await.unwrap();
    assert_eq!(sub.get::<_, String>(0), "active");
    assert_eq!(sub.get::<_, String>(1), "checkout");
    let (start, end): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        (sub.get(2), sub.get(3));
    assert_eq!(start, at(0));
    assert_eq!(end - start, chrono::Duration::days(365));
    let emails = t
        .client()
        .await
        .query(
            "SELECT email_key, kind, recipient FROM outgoing_emails",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].get::<_, String>(0), "confirmation:pi_seed");
    assert_eq!(emails[0].get::<_, String>(2), "ann@example.com");
    assert_eq!(
        t.client()
            .await
            .query("SELECT 1 FROM discrepancies", &[])
            .await
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn the_orphan_is_an_open_unmatched_charge_until_matched_then_rescued() {
    let t = TestDb::new().await;
    let store = t.store();
    append(
        &store,
        vec![charge("pi_orphan", None, Some("bo@example.com"), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    let d = one_row(&t, "SELECT status, amount, currency, customer_email FROM discrepancies WHERE id = 'unmatched_charge:pi_orphan'", &[]).await.unwrap();
    assert_eq!(d.get::<_, String>(0), "open");
    assert_eq!(d.get::<_, i64>(1), 24900);
    assert_eq!(d.get::<_, String>(2), "usd");
    assert_eq!(d.get::<_, String>(3), "bo@example.com");
    assert!(
        one_row(&t, "SELECT 1 FROM subscriptions", &[])
            .await
            .is_none(),
        "no access without a match"
    );

    append(&store, vec![matched("pi_orphan", "bo@example.com")]).await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "unmatched_charge:pi_orphan")
            .await
            .as_deref(),
        Some("resolved")
    );
    let sub = one_row(
        &t,
        "SELECT status, activation FROM subscriptions WHERE email = 'bo@example.com'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        (sub.get::<_, String>(0), sub.get::<_, String>(1)),
        ("active".into(), "rescue".into())
    );
    let kinds: Vec<String> = t
        .client()
        .await
        .query("SELECT kind FROM outgoing_emails", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, vec!["rescue_confirmation"]);
}

#[tokio::test]
async fn a_second_charge_for_one_checkout_is_a_duplicate_until_refunded() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "cy@example.com", 24900),
            charge("pi_first", Some(checkout), Some("cy@example.com"), 24900, 0),
            charge("pi_again", Some(checkout), Some("cy@example.com"), 24900, 1),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "duplicate_charge:pi_again")
            .await
            .as_deref(),
        Some("open")
    );
    append(&store, vec![refunded("pi_again", "re_again", 24900)]).await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "duplicate_charge:pi_again")
            .await
            .as_deref(),
        Some("resolved")
    );
    let status: String = one_row(
        &t,
        "SELECT status FROM subscriptions WHERE email = 'cy@example.com'",
        &[],
    )
    .await
    .unwrap()
    .get(0);
    assert_eq!(
        status, "active",
        "refunding the duplicate leaves the first purchase alone"
    );
}

#[tokio::test]
async fn a_second_charge_for_the_same_email_and_plan_within_a_day_is_a_duplicate() {
    let t = TestDb::new().await;
    let store = t.store();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    append(
        &store,
        vec![
            checkout_started(a, "di@example.com", 24900),
            charge("pi_d1", Some(a), None, 24900, 0),
            checkout_started(b, "di@example.com", 24900),
            charge("pi_d2", Some(b), None, 24900, 60),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "duplicate_charge:pi_d2")
            .await
            .as_deref(),
        Some("open")
    );
}

#[tokio::test]
async fn a_charge_that_differs_from_its_checkout_is_an_amount_mismatch_until_rescued() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "ed@example.com", 24900),
            charge("pi_mis", Some(checkout), None, 100, 0),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "amount_mismatch:pi_mis")
            .await
            .as_deref(),
        Some("open")
    );
    assert!(one_row(&t, "SELECT 1 FROM subscriptions", &[])
        .await
        .is_none());
    append(&store, vec![matched("pi_mis", "ed@example.com")]).await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "amount_mismatch:pi_mis")
            .await
            .as_deref(),
        Some("resolved")
    );
}

#[tokio::test]
async fn a_dispute_opens_and_closes_with_the_processor() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "fa@example.com", 24900),
            charge("pi_dis", Some(checkout), None, 24900, 0),
            dispute_opened("pi_dis", "dp_1"),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "dispute_opened:dp_1")
            .await
            .as_deref(),
        Some("open")
    );
    let status: String = one_row(&t, "SELECT status FROM subscriptions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "disputed");
    append(&store, vec![dispute_closed("pi_dis", "dp_1", "won")]).await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "dispute_opened:dp_1")
            .await
            .as_deref(),
        Some("resolved")
    );
    let status: String = one_row(&t, "SELECT status FROM subscriptions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "active");
}

#[tokio::test]
async fn a_refund_for_an_unseen_charge_is_flagged_until_the_charge_is_found() {
    let t = TestDb::new().await;
    let store = t.store();
    append(&store, vec![refunded("pi_ghost", "re_ghost", 24900)]).await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "refund_without_charge:pi_ghost")
            .await
            .as_deref(),
        Some("open")
    );
    append(
        &store,
        vec![charge("pi_ghost", None, Some("gu@example.com"), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "refund_without_charge:pi_ghost")
            .await
            .as_deref(),
        Some("resolved")
    );
}

#[tokio::test]
async fn an_undeliverable_email_is_flagged_until_it_is_delivered() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "ha@example.com", 24900),
            charge("pi_mail", Some(checkout), None, 24900, 0),
            email_result("confirmation:pi_mail", false, true),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    let row = one_row(&t, "SELECT status, customer_email FROM discrepancies WHERE id = 'email_undeliverable:confirmation:pi_mail'", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "open");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("ha@example.com")
    );
    let status: String = one_row(&t, "SELECT status FROM outgoing_emails", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "undeliverable");
    append(
        &store,
        vec![email_result("confirmation:pi_mail", true, false)],
    )
    .await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "email_undeliverable:confirmation:pi_mail")
            .await
            .as_deref(),
        Some("resolved")
    );
}

#[tokio::test]
async fn an_unparsed_callback_stays_open_until_a_person_resolves_it() {
    let t = TestDb::new().await;
    let store = t.store();
    append(&store, vec![unparsed("evt_bad")]).await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "unparsed_processor_event:evt_bad")
            .await
            .as_deref(),
        Some("open")
    );
    append(&store, vec![resolved("unparsed_processor_event:evt_bad")]).await;
    project_everything(&t.db.pool).await;
    let row = one_row(&t, "SELECT status, resolved_by FROM discrepancies", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("resolved".into(), "support:alice".into())
    );
}

#[tokio::test]
async fn an_unmatched_charge_that_is_refunded_closes() {
    let t = TestDb::new().await;
    let store = t.store();
    append(
        &store,
        vec![
            charge("pi_back", None, None, 500, 0),
            refunded("pi_back", "re_back", 500),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    assert_eq!(
        discrepancy_status(&t, "unmatched_charge:pi_back")
            .await
            .as_deref(),
        Some("resolved")
    );
}

#[tokio::test]
async fn a_grant_gives_access_without_a_charge_and_says_so() {
    let t = TestDb::new().await;
    append(&t.store(), vec![granted("press@example.com")]).await;
    project_everything(&t.db.pool).await;
    let row = one_row(
        &t,
        "SELECT status, activation, payment_id FROM subscriptions",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, String>(0), "active");
    assert_eq!(row.get::<_, String>(1), "grant");
    assert_eq!(row.get::<_, Option<String>>(2), None);
}

#[tokio::test]
async fn the_timeline_shows_every_event_about_a_customer() {
    let t = TestDb::new().await;
    let checkout = Uuid::new_v4();
    append(
        &t.store(),
        vec![
            checkout_started(checkout, "ivy@example.com", 24900),
            charge("pi_tl", Some(checkout), Some("ivy@example.com"), 24900, 0),
            email_result("confirmation:pi_tl", true, false),
            refunded("pi_tl", "re_tl", 24900),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    let types: Vec<String> = t
        .client()
        .await
        .query(
            "SELECT event_type FROM timeline WHERE email = 'ivy@example.com' ORDER BY position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        types,
        vec![
            "CheckoutStarted",
            "ChargeSucceeded",
            "EmailSent",
            "ChargeRefunded"
        ]
    );
    let status: String = one_row(&t, "SELECT status FROM subscriptions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "refunded");
}
