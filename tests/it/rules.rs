//! The payment rules, given/when/then, with no database: each history is
//! folded through every projection in memory (the rebuild's mode).

use crate::common::ledger::*;
use payledger_projections::testing::{given, Folded};
use uuid::Uuid;

const A: &str = "a@example.com";

/// A checkout for `A` and its own charge: the story that should just work.
fn bought(
    payment: &str,
) -> (
    Uuid,
    Vec<(payledger_events::StreamId, payledger_events::EventData)>,
) {
    let c = Uuid::new_v4();
    (
        c,
        vec![
            checkout_started(c, A, 24900),
            charge(payment, Some(c), Some(A), 24900, 1),
        ],
    )
}

fn open_kinds(rows: &Folded) -> Vec<String> {
    let mut kinds: Vec<String> = rows
        .rows_where("discrepancies", "status", "open")
        .iter()
        .map(|r| r.field("kind"))
        .collect();
    kinds.sort();
    kinds
}

fn email_kinds(rows: &Folded) -> Vec<String> {
    rows.rows("outgoing_emails")
        .iter()
        .map(|r| r.field("kind"))
        .collect()
}

#[test]
fn a_charge_for_its_checkout_activates_a_year_and_asks_for_a_receipt() {
    let (_, story) = bought("pi_1");
    let rows = given(story).then();
    let sub = rows.one("subscriptions");
    assert_eq!(sub.field("status"), "active");
    assert_eq!(sub.field("activation"), "checkout");
    assert_eq!(sub.field("payment_id"), "pi_1");
    assert_eq!(rows.one("customer_status").field("state"), "active");
    assert_eq!(email_kinds(&rows), ["confirmation"]);
    assert!(
        open_kinds(&rows).is_empty(),
        "{:?}",
        rows.rows("discrepancies")
    );
}

#[test]
fn access_runs_one_year_from_the_charge() {
    let (_, story) = bought("pi_1");
    let rows = given(story).then();
    let sub = rows.one("subscriptions");
    let start: chrono::DateTime<chrono::Utc> = sub.field("period_start").parse().unwrap();
    let end: chrono::DateTime<chrono::Utc> = sub.field("period_end").parse().unwrap();
    assert_eq!(start, at(1));
    assert_eq!(end - start, chrono::Duration::days(365));
}

#[test]
fn a_checkout_without_a_charge_is_awaiting_payment_and_grants_nothing() {
    let c = Uuid::new_v4();
    let rows = given(vec![checkout_started(c, A, 24900)]).then();
    assert_eq!(
        rows.one("customer_status").field("state"),
        "awaiting_payment"
    );
    assert!(rows.rows("subscriptions").is_empty());
    assert!(rows.rows("outgoing_emails").is_empty());
}

#[test]
fn a_charge_no_checkout_explains_is_an_open_unmatched_charge_and_grants_nothing() {
    let rows = given(vec![charge("pi_orphan", None, Some(A), 24900, 1)]).then();
    assert_eq!(open_kinds(&rows), ["unmatched_charge"]);
    let d = rows.one("discrepancies");
    assert_eq!(d.field("subject"), "pi_orphan");
    assert!(
        d.field("suggested_action")
            .contains("support rescue pi_orphan"),
        "{d:?}"
    );
    assert!(rows.rows("subscriptions").is_empty());
}

#[test]
fn a_charge_naming_a_checkout_the_log_never_saw_is_unmatched() {
    let rows = given(vec![charge(
        "pi_x",
        Some(Uuid::new_v4()),
        Some(A),
        24900,
        1,
    )])
    .then();
    assert_eq!(open_kinds(&rows), ["unmatched_charge"]);
    assert!(rows.rows("subscriptions").is_empty());
}

#[test]
fn a_rescue_match_activates_the_orphan_and_closes_its_discrepancy() {
    let rows = given(vec![charge("pi_orphan", None, Some(A), 24900, 1)])
        .when(matched("pi_orphan", A))
        .then();
    let sub = rows.one("subscriptions");
    assert_eq!(sub.field("status"), "active");
    assert_eq!(sub.field("activation"), "rescue");
    assert!(
        open_kinds(&rows).is_empty(),
        "{:?}",
        rows.rows("discrepancies")
    );
    assert_eq!(email_kinds(&rows), ["rescue_confirmation"]);
}

#[test]
fn a_full_refund_ends_access_and_asks_for_a_refund_email() {
    let (_, story) = bought("pi_1");
    let rows = given(story).when(refunded("pi_1", "re_1", 24900)).then();
    assert_eq!(rows.one("subscriptions").field("status"), "refunded");
    assert_eq!(rows.one("customer_status").field("state"), "refunded");
    assert_eq!(email_kinds(&rows), ["confirmation", "refund_confirmation"]);
}

#[test]
fn a_partial_refund_keeps_access() {
    let (_, story) = bought("pi_1");
    let rows = given(story).when(refunded("pi_1", "re_1", 5000)).then();
    assert_eq!(rows.one("subscriptions").field("status"), "active");
}

#[test]
fn partial_refunds_that_add_up_to_the_charge_end_access() {
    let (_, story) = bought("pi_1");
    let rows = given(story)
        .when(refunded("pi_1", "re_1", 20000))
        .when(refunded("pi_1", "re_2", 4900))
        .then();
    assert_eq!(rows.one("subscriptions").field("status"), "refunded");
}

#[test]
fn a_refund_recorded_before_its_charge_ends_the_same_as_after() {
    let c = Uuid::new_v4();
    let in_order = given(vec![
        checkout_started(c, A, 24900),
        charge("pi_1", Some(c), Some(A), 24900, 1),
        refunded("pi_1", "re_1", 24900),
    ])
    .then();
    let reversed = given(vec![
        checkout_started(c, A, 24900),
        refunded("pi_1", "re_1", 24900),
        charge("pi_1", Some(c), Some(A), 24900, 1),
    ])
    .then();
    for (table, field) in [("subscriptions", "status"), ("customer_status", "state")] {
        assert_eq!(
            in_order.one(table).field(field),
            reversed.one(table).field(field),
            "{table}"
        );
    }
    assert!(
        open_kinds(&reversed).is_empty(),
        "{:?}",
        reversed.rows("discrepancies")
    );
}

#[test]
fn a_refund_of_a_charge_never_seen_is_an_open_discrepancy() {
    let rows = given(vec![refunded("pi_ghost", "re_1", 24900)]).then();
    assert_eq!(open_kinds(&rows), ["refund_without_charge"]);
}

#[test]
fn paying_twice_for_one_checkout_activates_once_and_flags_the_second_as_a_duplicate() {
    let (c, story) = bought("pi_1");
    let rows = given(story)
        .when(charge("pi_2", Some(c), Some(A), 24900, 2))
        .then();
    assert_eq!(rows.one("subscriptions").field("payment_id"), "pi_1");
    assert_eq!(open_kinds(&rows), ["duplicate_charge"]);
    let d = rows.rows_where("discrepancies", "kind", "duplicate_charge");
    assert_eq!(d[0].field("subject"), "pi_2");
    assert!(
        d[0].field("suggested_action").contains("refund pi_2"),
        "{d:?}"
    );
}

#[test]
fn a_charge_of_another_amount_than_the_checkout_is_a_mismatch_and_grants_nothing() {
    let c = Uuid::new_v4();
    let rows = given(vec![
        checkout_started(c, A, 24900),
        charge("pi_1", Some(c), Some(A), 10000, 1),
    ])
    .then();
    assert_eq!(open_kinds(&rows), ["amount_mismatch"]);
    assert!(rows.rows("subscriptions").is_empty());
}

#[test]
fn an_opened_dispute_is_an_open_discrepancy() {
    let (_, story) = bought("pi_1");
    let rows = given(story).when(dispute_opened("pi_1", "dp_1")).then();
    assert_eq!(open_kinds(&rows), ["dispute_opened"]);
}

#[test]
fn a_grant_gives_access_without_a_charge() {
    let rows = given(vec![granted(A)]).then();
    let sub = rows.one("subscriptions");
    assert_eq!(sub.field("status"), "active");
    assert_eq!(sub.field("activation"), "grant");
    assert_eq!(sub.field("payment_id"), "");
    assert!(open_kinds(&rows).is_empty());
}

#[test]
fn an_unparsed_callback_is_an_open_discrepancy_naming_it() {
    let rows = given(vec![unparsed("evt_bad")]).then();
    assert_eq!(open_kinds(&rows), ["unparsed_processor_event"]);
    assert_eq!(rows.one("discrepancies").field("subject"), "evt_bad");
}

#[test]
fn a_resolved_discrepancy_is_no_longer_open() {
    let rows = given(vec![charge("pi_orphan", None, Some(A), 24900, 1)]).then();
    let id = rows.one("discrepancies").field("id");
    let rows = given(vec![charge("pi_orphan", None, Some(A), 24900, 1)])
        .when(resolved(&id))
        .then();
    assert_eq!(rows.one("discrepancies").field("status"), "resolved");
    assert!(open_kinds(&rows).is_empty());
}

#[test]
fn a_sent_receipt_is_marked_sent_with_its_message_id() {
    let (_, story) = bought("pi_1");
    let rows = given(story)
        .when(email_result("confirmation:pi_1", true, false))
        .then();
    let e = rows.one("outgoing_emails");
    assert_eq!(e.field("status"), "sent");
    assert_eq!(e.field("message_id"), "<confirmation:pi_1@payledger>");
}

#[test]
fn a_receipt_refused_for_good_is_undeliverable_and_a_discrepancy() {
    let (_, story) = bought("pi_1");
    let rows = given(story)
        .when(email_result("confirmation:pi_1", false, true))
        .then();
    assert_eq!(rows.one("outgoing_emails").field("status"), "undeliverable");
    assert_eq!(open_kinds(&rows), ["email_undeliverable"]);
}

#[test]
fn a_receipt_that_failed_for_now_is_retried_not_given_up() {
    let (_, story) = bought("pi_1");
    let rows = given(story)
        .when(email_result("confirmation:pi_1", false, false))
        .then();
    let e = rows.one("outgoing_emails");
    assert_eq!(
        e.field("status"),
        "failed",
        "failed for now: the sender retries it"
    );
    assert_eq!(e.field("attempts"), "1");
    assert!(open_kinds(&rows).is_empty());
}

#[test]
fn the_timeline_keeps_the_payment_id_exactly_and_shows_amounts_one_way() {
    let c = Uuid::new_v4();
    let rows = given(vec![
        checkout_started(c, A, 24900),
        charge("pi_3MtwBwLkdIwHu7ix", Some(c), Some(A), 24900, 1),
        refunded("pi_3MtwBwLkdIwHu7ix", "re_1", 24900),
    ])
    .then();
    let charged = rows.rows_where("timeline", "event_type", "ChargeSucceeded");
    let summary = charged[0].field("summary");
    assert!(summary.contains("pi_3MtwBwLkdIwHu7ix"), "{summary}");
    assert!(summary.contains("249.00 USD"), "{summary}");
}

#[test]
fn the_timeline_tells_each_customer_their_own_story_in_log_order() {
    let (_, story) = bought("pi_1");
    let rows = given(story).when(refunded("pi_1", "re_1", 24900)).then();
    let types: Vec<String> = rows
        .rows_where("timeline", "email", A)
        .iter()
        .map(|r| r.field("event_type"))
        .collect();
    assert_eq!(
        types,
        ["CheckoutStarted", "ChargeSucceeded", "ChargeRefunded"]
    );
}

#[test]
fn the_status_page_row_carries_what_the_customer_paid_and_a_reference() {
    let (c, story) = bought("pi_1");
    let rows = given(story).then();
    let s = rows.one("customer_status");
    assert!(s.field("reference").starts_with("PL-"), "{s:?}");
    assert_eq!(s.field("checkout_id"), c.to_string());
    assert_eq!(s.field("amount"), "24900");
    assert_eq!(s.field("currency"), "usd");
}

#[test]
fn two_customers_histories_do_not_touch_each_other() {
    let (_, mine) = bought("pi_1");
    let c = Uuid::new_v4();
    let rows = given(mine)
        .when(checkout_started(c, "b@example.com", 24900))
        .when(charge("pi_2", Some(c), Some("b@example.com"), 24900, 2))
        .when(refunded("pi_2", "re_2", 24900))
        .then();
    assert_eq!(
        rows.rows_where("subscriptions", "email", A)[0].field("status"),
        "active"
    );
    assert_eq!(
        rows.rows_where("subscriptions", "email", "b@example.com")[0].field("status"),
        "refunded"
    );
}
