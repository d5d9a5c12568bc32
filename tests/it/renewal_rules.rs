//! The renewal rules (spec §12), given/when/then with no database: access
//! comes from paid invoices only, one period each, whatever order and
//! however often the processor's facts arrive.

use chrono::{DateTime, TimeZone, Utc};
use payledger_events::{ChargeSource, ChargeSucceeded, Currency, Period, StreamId};
use payledger_projections::testing::{given, Folded};
use payledger_testkit::history::{fact, Fact};
use payledger_testkit::renewal_history as r;
use uuid::Uuid;

const SUB: &str = "sub_1";

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 9, 30, 0).unwrap()
}

fn anchor() -> DateTime<Utc> {
    day(2026, 3, 1)
}

fn time(row: &payledger_projections::testing::Row<'_>, field: &str) -> DateTime<Utc> {
    row.field(field)
        .parse()
        .unwrap_or_else(|e| panic!("{field} of {row:?}: {e}"))
}

/// A renewing checkout, its subscription and `periods` paid invoices.
fn bought(plan: &str, start: DateTime<Utc>, periods: u32) -> (Uuid, Vec<Fact>) {
    let c = Uuid::new_v4();
    let period = if plan == "monthly" {
        Period::Month
    } else {
        Period::Year
    };
    let amount = if plan == "monthly" { 2500 } else { 24900 };
    let mut facts = vec![
        r::renewing_checkout(c, "a@example.com", plan).unwrap(),
        r::started(SUB, Some(c), start).unwrap(),
    ];
    for n in 1..=periods {
        facts.push(r::paid(SUB, Some(c), start, period, n, amount).unwrap());
    }
    (c, facts)
}

fn open_kinds(rows: &Folded) -> Vec<String> {
    rows.rows_where("discrepancies", "status", "open")
        .iter()
        .map(|r| r.field("kind"))
        .collect()
}

#[test]
fn a_renewing_checkout_paid_by_its_first_invoice_is_active_and_renews_at_the_period_end() {
    let (_, story) = bought("annual", anchor(), 1);
    let rows = given(story).then();
    let sub = rows.one("subscriptions");
    assert_eq!(sub.field("status"), "active");
    assert_eq!(sub.field("subscription_id"), SUB);
    assert_eq!(time(&sub, "period_end"), day(2027, 3, 1));
    assert_eq!(time(&sub, "renews_at"), day(2027, 3, 1));
    assert_eq!(sub.field("cancel_at_period_end"), "false");
    assert_eq!(rows.one("customer_status").field("state"), "active");
    let emails: Vec<String> = rows
        .rows("outgoing_emails")
        .iter()
        .map(|r| r.field("kind"))
        .collect();
    assert_eq!(emails, ["confirmation"]);
    assert!(
        open_kinds(&rows).is_empty(),
        "{:?}",
        rows.rows("discrepancies")
    );
}

#[test]
fn every_paid_invoice_is_exactly_one_period_even_delivered_twice() {
    let (_, story) = bought("annual", anchor(), 4);
    let twice: Vec<Fact> = story.iter().chain(story.iter().skip(2)).cloned().collect();
    let rows = given(twice).then();
    let sub = rows.one("subscriptions");
    assert_eq!(
        time(&sub, "period_end"),
        day(2030, 3, 1),
        "three renewals, three years"
    );
    assert_eq!(time(&sub, "period_start"), anchor());
    assert_eq!(sub.field("payment_id"), "pi_sub_1_4");
    assert!(
        open_kinds(&rows).is_empty(),
        "{:?}",
        rows.rows("discrepancies")
    );
}

#[test]
fn monthly_periods_follow_the_calendar_across_31_january_and_29_february() {
    let start = day(2028, 1, 31);
    for (periods, end) in [
        (1, day(2028, 2, 29)),
        (2, day(2028, 3, 31)),
        (3, day(2028, 4, 30)),
        (12, day(2029, 1, 31)),
    ] {
        let (_, story) = bought("monthly", start, periods);
        let rows = given(story).then();
        assert_eq!(
            time(&rows.one("subscriptions"), "period_end"),
            end,
            "{periods} months"
        );
    }
}

#[test]
fn the_same_facts_in_any_order_give_the_same_access() {
    let (c, mut story) = bought("annual", anchor(), 3);
    story.push(r::cancel_scheduled(SUB, day(2028, 5, 1), day(2029, 3, 1)).unwrap());
    let fields = [
        "status",
        "period_start",
        "period_end",
        "renews_at",
        "cancel_at_period_end",
        "subscription_id",
    ];
    let expected: Vec<String> = {
        let rows = given(story.clone()).then();
        let sub = rows.one("subscriptions");
        fields.iter().map(|f| sub.field(f)).collect()
    };
    assert_eq!(expected[0], "canceled");
    // `updated` before `created`, invoices before the subscription and the
    // checkout: every rotation and the reversal.
    let mut orders: Vec<Vec<Fact>> = (0..story.len())
        .map(|k| {
            let mut o = story.clone();
            o.rotate_left(k);
            o
        })
        .collect();
    orders.push(story.iter().rev().cloned().collect());
    for order in orders {
        let rows = given(order).then();
        let sub = rows.one("subscriptions");
        let got: Vec<String> = fields.iter().map(|f| sub.field(f)).collect();
        assert_eq!(got, expected, "checkout {c}");
    }
}

#[test]
fn a_failed_renewal_is_past_due_with_access_while_retried_and_a_paid_retry_recovers() {
    let (c, story) = bought("annual", anchor(), 1);
    let due = day(2027, 3, 1);
    let retry = day(2027, 3, 4);
    let rows = given(story.clone())
        .when(r::failed(SUB, 2, 1, due, Some(retry)).unwrap())
        .then();
    let sub = rows.one("subscriptions");
    assert_eq!(sub.field("status"), "past_due");
    assert_eq!(time(&sub, "grace_until"), retry);
    assert_eq!(time(&sub, "period_end"), due, "paid access is not extended");

    let rows = given(story)
        .when(r::failed(SUB, 2, 1, due, Some(retry)).unwrap())
        .when(r::paid(SUB, Some(c), anchor(), Period::Year, 2, 24900).unwrap())
        .then();
    let sub = rows.one("subscriptions");
    assert_eq!(sub.field("status"), "active");
    assert_eq!(time(&sub, "period_end"), day(2028, 3, 1));
    assert_eq!(
        time(&sub, "grace_until"),
        day(2028, 3, 2),
        "the retry's grace is over; the next renewal's is a day"
    );
}

#[test]
fn a_failure_reported_after_its_invoice_was_paid_changes_nothing() {
    let (_, story) = bought("annual", anchor(), 2);
    let rows = given(story)
        .when(r::failed(SUB, 2, 1, day(2027, 3, 1), Some(day(2027, 3, 4))).unwrap())
        .then();
    assert_eq!(rows.one("subscriptions").field("status"), "active");
}

#[test]
fn the_last_cancellation_or_undo_asked_for_wins_in_any_order() {
    let (_, story) = bought("annual", anchor(), 1);
    let schedule = r::cancel_scheduled(SUB, day(2026, 6, 1), day(2027, 3, 1)).unwrap();
    let undo = r::cancel_undone(SUB, day(2026, 7, 1)).unwrap();
    for order in [
        vec![schedule.clone(), undo.clone()],
        vec![undo.clone(), schedule.clone()],
    ] {
        let rows = given(story.clone()).when_all(order).then();
        let sub = rows.one("subscriptions");
        assert_eq!(sub.field("status"), "active");
        assert_eq!(time(&sub, "renews_at"), day(2027, 3, 1));
    }
    let again = r::cancel_scheduled(SUB, day(2026, 8, 1), day(2027, 3, 1)).unwrap();
    let rows = given(story).when_all([schedule, undo, again]).then();
    let sub = rows.one("subscriptions");
    assert_eq!(sub.field("status"), "canceled");
    assert_eq!(sub.field("cancel_at_period_end"), "true");
    assert_eq!(sub.field("renews_at"), "");
    assert_eq!(
        time(&sub, "period_end"),
        day(2027, 3, 1),
        "active until then"
    );
}

#[test]
fn ended_now_ends_access_now_and_ended_later_keeps_what_was_paid() {
    let (_, story) = bought("annual", anchor(), 1);
    let rows = given(story.clone())
        .when(r::ended(SUB, day(2026, 9, 1), "cancellation_requested").unwrap())
        .then();
    let sub = rows.one("subscriptions");
    assert_eq!(sub.field("status"), "ended");
    assert_eq!(time(&sub, "period_end"), day(2026, 9, 1));

    let rows = given(story)
        .when(r::ended(SUB, day(2027, 3, 20), "payment_failed").unwrap())
        .then();
    assert_eq!(
        time(&rows.one("subscriptions"), "period_end"),
        day(2027, 3, 1)
    );
}

#[test]
fn a_renewal_charge_seen_before_its_invoice_is_not_an_orphan() {
    let (c, story) = bought("annual", anchor(), 1);
    let charge = ChargeSucceeded {
        payment_id: "pi_sub_1_2".into(),
        charge_id: Some("ch_2".into()),
        session_id: None,
        checkout_reference: None,
        customer_email: Some("a@example.com".into()),
        amount: 24900,
        currency: Currency::new("usd").unwrap(),
        paid_at: day(2027, 3, 1),
        source: ChargeSource::Webhook,
        invoice_id: Some(r::invoice_id(SUB, 2)),
    };
    let charge = (
        StreamId::payment("pi_sub_1_2"),
        fact(charge, "pi_sub_1_2").unwrap(),
    );
    let waiting = given(story.clone()).when(charge.clone()).then();
    assert!(
        open_kinds(&waiting).is_empty(),
        "{:?}",
        waiting.rows("discrepancies")
    );
    let rows = given(story)
        .when(charge)
        .when(r::paid(SUB, Some(c), anchor(), Period::Year, 2, 24900).unwrap())
        .then();
    assert!(
        open_kinds(&rows).is_empty(),
        "{:?}",
        rows.rows("discrepancies")
    );
    assert_eq!(
        time(&rows.one("subscriptions"), "period_end"),
        day(2028, 3, 1)
    );
}

#[test]
fn a_first_invoice_naming_no_checkout_is_an_orphan_charge() {
    let rows = given([r::paid(SUB, None, anchor(), Period::Year, 1, 24900).unwrap()]).then();
    assert_eq!(open_kinds(&rows), ["unmatched_charge"]);
    assert!(rows.rows("subscriptions").is_empty());
}

#[test]
fn a_renewal_of_a_subscription_no_checkout_bought_is_a_renewal_orphan_until_it_is_known() {
    let c = Uuid::new_v4();
    let renewal = r::paid(SUB, Some(c), anchor(), Period::Year, 2, 24900).unwrap();
    let rows = given([renewal.clone()]).then();
    assert_eq!(open_kinds(&rows), ["renewal_orphan"]);
    assert!(
        rows.rows("subscriptions").is_empty(),
        "no access from an unknown subscription"
    );
    // Its checkout and subscription turn up (a restored backup): explained.
    let rows = given([renewal])
        .when(r::renewing_checkout(c, "a@example.com", "annual").unwrap())
        .when(r::started(SUB, Some(c), anchor()).unwrap())
        .when(r::paid(SUB, Some(c), anchor(), Period::Year, 1, 24900).unwrap())
        .then();
    assert!(
        open_kinds(&rows).is_empty(),
        "{:?}",
        rows.rows("discrepancies")
    );
    assert_eq!(
        time(&rows.one("subscriptions"), "period_end"),
        day(2028, 3, 1)
    );
}

#[test]
fn the_latest_plan_change_names_the_plan_in_any_order_and_never_extends_access() {
    let offers = vec![
        r::offered("annual", "price_annual_249").unwrap(),
        r::offered("monthly", "price_monthly_25").unwrap(),
    ];
    let (_, mut story) = bought("annual", anchor(), 1);
    story.push(r::plan_changed(SUB, "price_monthly_25", day(2026, 5, 1)).unwrap());
    story.push(r::plan_changed(SUB, "price_annual_249", day(2026, 6, 1)).unwrap());
    story.push(r::plan_changed(SUB, "price_monthly_25", day(2026, 7, 1)).unwrap());
    let mut orders: Vec<Vec<Fact>> = (0..story.len())
        .map(|k| {
            let mut o = story.clone();
            o.rotate_left(k);
            o
        })
        .collect();
    orders.push(story.iter().rev().cloned().collect());
    for order in orders {
        let rows = given(offers.clone()).when_all(order).then();
        let sub = rows.one("subscriptions");
        assert_eq!(sub.field("plan"), "monthly", "the change of 1 July");
        assert_eq!(
            time(&sub, "period_end"),
            day(2027, 3, 1),
            "the paid year, no more"
        );
    }
    // A price no plan was offered at: the checkout's plan stays.
    let (_, mut story) = bought("annual", anchor(), 1);
    story.push(r::plan_changed(SUB, "price_unknown", day(2026, 5, 1)).unwrap());
    let rows = given(offers).when_all(story).then();
    assert_eq!(rows.one("subscriptions").field("plan"), "annual");
}
