//! More of the payment rules, given/when/then without a database: the
//! processor's other news (disputes, expiries, disagreements), the desk's
//! actions, and the order facts arrive in.

use crate::common::ledger::*;
use payledger_events::*;
use payledger_projections::testing::{given, Folded};
use uuid::Uuid;

const A: &str = "a@example.com";
type Fact = (StreamId, EventData);

fn bought(payment: &str) -> (Uuid, Vec<Fact>) {
    let c = Uuid::new_v4();
    (
        c,
        vec![
            checkout_started(c, A, 24900),
            charge(payment, Some(c), Some(A), 24900, 1),
        ],
    )
}

fn desk() -> Actor {
    Actor::Support("alice".into())
}

fn expired(c: Uuid) -> Fact {
    let e = CheckoutSessionExpired {
        session_id: format!("cs_{c}"),
        checkout_reference: Some(c.to_string()),
    };
    (StreamId::checkout(c), fact(e, &format!("expired:{c}")))
}

fn payment_failed(c: Uuid) -> Fact {
    let e = CheckoutPaymentFailed {
        session_id: format!("cs_{c}"),
        checkout_reference: Some(c.to_string()),
        payment_id: Some("pi_failed".into()),
    };
    (StreamId::checkout(c), fact(e, &format!("failed:{c}")))
}

fn revoked(email: &str) -> Fact {
    let e = SubscriptionRevoked {
        email: email.into(),
        reason: "abuse".into(),
        revoked_by: desk(),
    };
    (StreamId::account(email), data(e, desk()))
}

fn resend(key: &str) -> Fact {
    let e = EmailResendRequested {
        email_key: key.into(),
        requested_by: desk(),
    };
    (StreamId::outbox(key), data(e, desk()))
}

fn acknowledged(id: &str) -> Fact {
    let e = DiscrepancyAcknowledged {
        discrepancy_id: id.into(),
        note: "looking".into(),
        acknowledged_by: desk(),
    };
    (StreamId::discrepancy(id), data(e, desk()))
}

fn status_link(email: &str) -> Fact {
    let request = Uuid::new_v4();
    let e = StatusLinkRequested {
        request_id: request,
        email: email.into(),
    };
    (
        StreamId::status_request(request),
        data(e, Actor::Customer(email.into())),
    )
}

fn disagreement(payment: &str, kind: &str) -> Fact {
    let e = ProcessorDisagreement {
        payment_id: payment.into(),
        kind: kind.into(),
        ledger_amount: Some(24900),
        ledger_currency: Some(usd()),
        processor_amount: 20000,
        processor_currency: usd(),
        processor_object_id: "ch_1".into(),
        detail: "the processor says otherwise".into(),
    };
    (
        StreamId::payment(payment),
        fact(e, &format!("{payment}:{kind}")),
    )
}

fn open_kinds(rows: &Folded) -> Vec<String> {
    let mut kinds: Vec<String> = rows
        .rows("discrepancies")
        .iter()
        .filter(|r| r.field("status") != "resolved")
        .map(|r| r.field("kind"))
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn a_lost_dispute_revokes_access() {
    let (_, story) = bought("pi_1");
    let rows = given(story)
        .when(dispute_opened("pi_1", "dp_1"))
        .when(dispute_closed("pi_1", "dp_1", "lost"))
        .then();
    assert_eq!(rows.one("subscriptions").field("status"), "revoked");
}

#[test]
fn a_won_dispute_gives_access_back() {
    let (_, story) = bought("pi_1");
    let rows = given(story)
        .when(dispute_opened("pi_1", "dp_1"))
        .when(dispute_closed("pi_1", "dp_1", "won"))
        .then();
    assert_eq!(rows.one("subscriptions").field("status"), "active");
}

#[test]
fn an_open_dispute_suspends_access_and_the_page_says_a_person_is_on_it() {
    let (_, story) = bought("pi_1");
    let rows = given(story).when(dispute_opened("pi_1", "dp_1")).then();
    assert_eq!(rows.one("subscriptions").field("status"), "disputed");
    assert_eq!(rows.one("customer_status").field("state"), "disputed");
}

#[test]
fn a_closed_dispute_closes_its_discrepancy() {
    let (_, story) = bought("pi_1");
    let rows = given(story)
        .when(dispute_opened("pi_1", "dp_1"))
        .when(dispute_closed("pi_1", "dp_1", "won"))
        .then();
    assert!(
        open_kinds(&rows).is_empty(),
        "{:?}",
        rows.rows("discrepancies")
    );
}

#[test]
fn an_expired_checkout_is_not_completed_and_grants_nothing() {
    let c = Uuid::new_v4();
    let rows = given(vec![checkout_started(c, A, 24900), expired(c)]).then();
    assert_eq!(rows.one("customer_status").field("state"), "expired");
    assert!(rows.rows("subscriptions").is_empty());
}

#[test]
fn a_refused_card_is_failed_and_grants_nothing() {
    let c = Uuid::new_v4();
    let rows = given(vec![checkout_started(c, A, 24900), payment_failed(c)]).then();
    assert_eq!(rows.one("customer_status").field("state"), "failed");
    assert!(rows.rows("subscriptions").is_empty());
}

#[test]
fn a_charge_after_the_session_expired_still_activates() {
    // The processor can confirm a payment after telling us the session
    // expired (late delivery); money received wins.
    let c = Uuid::new_v4();
    let rows = given(vec![
        checkout_started(c, A, 24900),
        expired(c),
        charge("pi_late", Some(c), Some(A), 24900, 5),
    ])
    .then();
    assert_eq!(rows.one("customer_status").field("state"), "active");
    assert_eq!(rows.one("subscriptions").field("status"), "active");
}

#[test]
fn a_revoked_grant_ends_access() {
    let rows = given(vec![granted(A), revoked(A)]).then();
    assert_eq!(rows.one("subscriptions").field("status"), "revoked");
}

#[test]
fn a_resend_puts_a_sent_receipt_back_in_the_queue_and_counts_it() {
    let (_, story) = bought("pi_1");
    let rows = given(story)
        .when(email_result("confirmation:pi_1", true, false))
        .when(resend("confirmation:pi_1"))
        .then();
    let e = rows.one("outgoing_emails");
    assert_eq!(e.field("status"), "pending");
    assert_eq!(e.field("resends"), "1");
}

#[test]
fn a_status_link_request_queues_one_email_to_that_address() {
    let rows = given(vec![status_link(A)]).then();
    let e = rows.one("outgoing_emails");
    assert_eq!(e.field("kind"), "status_link");
    assert_eq!(e.field("recipient"), A);
}

#[test]
fn an_undeliverable_email_that_is_sent_after_all_closes_its_discrepancy() {
    let (_, story) = bought("pi_1");
    let rows = given(story)
        .when(email_result("confirmation:pi_1", false, true))
        .when(resend("confirmation:pi_1"))
        .when(email_result("confirmation:pi_1", true, false))
        .then();
    assert_eq!(rows.one("outgoing_emails").field("status"), "sent");
    assert!(
        open_kinds(&rows).is_empty(),
        "{:?}",
        rows.rows("discrepancies")
    );
}

#[test]
fn an_acknowledged_discrepancy_is_still_not_resolved() {
    let rows = given(vec![charge("pi_o", None, Some(A), 24900, 1)]).then();
    let id = rows.one("discrepancies").field("id");
    let rows = given(vec![
        charge("pi_o", None, Some(A), 24900, 1),
        acknowledged(&id),
    ])
    .then();
    assert_eq!(rows.one("discrepancies").field("status"), "acknowledged");
    assert_eq!(open_kinds(&rows), ["unmatched_charge"]);
}

#[test]
fn a_processor_disagreement_is_an_open_discrepancy_with_a_next_step() {
    let (_, story) = bought("pi_1");
    let rows = given(story).when(disagreement("pi_1", "amount")).then();
    assert_eq!(open_kinds(&rows), ["processor_disagreement"]);
    let d = rows.one("discrepancies");
    assert!(!d.field("suggested_action").is_empty(), "{d:?}");
}

#[test]
fn a_charge_recorded_before_its_checkout_still_activates() {
    // Reconciliation can record a charge before the checkout's own event
    // becomes readable; the outcome must not depend on that order.
    let c = Uuid::new_v4();
    let rows = given(vec![
        charge("pi_1", Some(c), Some(A), 24900, 1),
        checkout_started(c, A, 24900),
    ])
    .then();
    assert_eq!(rows.one("subscriptions").field("status"), "active");
    assert!(
        open_kinds(&rows).is_empty(),
        "{:?}",
        rows.rows("discrepancies")
    );
}

#[test]
fn the_same_charge_stated_twice_counts_once() {
    let (_, mut story) = bought("pi_1");
    let again = story[1].clone();
    story.push(again);
    let rows = given(story).then();
    assert_eq!(rows.one("subscriptions").field("status"), "active");
    assert!(
        open_kinds(&rows).is_empty(),
        "a replayed fact is not a duplicate charge"
    );
    assert_eq!(rows.rows("outgoing_emails").len(), 1, "one receipt");
}

#[test]
fn a_rescue_of_a_refunded_payment_gives_no_access() {
    let rows = given(vec![
        charge("pi_o", None, Some(A), 24900, 1),
        refunded("pi_o", "re_1", 24900),
    ])
    .when(matched("pi_o", A))
    .then();
    for s in rows.rows("subscriptions") {
        assert_ne!(s.field("status"), "active", "{s:?}");
    }
}

#[test]
fn a_match_for_a_payment_never_charged_gives_no_access() {
    let rows = given(vec![matched("pi_ghost", A)]).then();
    assert!(
        rows.rows("subscriptions").is_empty(),
        "{:?}",
        rows.rows("subscriptions")
    );
}

#[test]
fn buying_again_soon_after_a_full_refund_is_not_a_duplicate_charge() {
    let (_, first) = bought("pi_1");
    let c2 = Uuid::new_v4();
    let rows = given(first)
        .when(refunded("pi_1", "re_1", 24900))
        .when(checkout_started(c2, A, 24900))
        // Within the duplicate window of the first: still not a duplicate,
        // since the first's money went back.
        .when(charge("pi_2", Some(c2), Some(A), 24900, 10))
        .then();
    let sub = rows.one("subscriptions");
    assert_eq!(
        sub.field("status"),
        "active",
        "{:?}",
        rows.rows("discrepancies")
    );
    assert_eq!(sub.field("payment_id"), "pi_2");
}

#[test]
fn a_grant_does_not_hide_a_later_purchase() {
    let c = Uuid::new_v4();
    let rows = given(vec![granted(A)])
        .when(checkout_started(c, A, 24900))
        .when(charge("pi_1", Some(c), Some(A), 24900, 10))
        .then();
    let sub = rows.one("subscriptions");
    assert_eq!(sub.field("status"), "active");
    assert_eq!(sub.field("payment_id"), "pi_1");
}

#[test]
fn every_customer_row_gets_its_own_reference() {
    let (_, mine) = bought("pi_1");
    let c2 = Uuid::new_v4();
    let rows = given(mine)
        .when(checkout_started(c2, A, 24900))
        .when(charge("pi_orphan", None, Some(A), 24900, 3))
        .then();
    let refs: std::collections::BTreeSet<String> = rows
        .rows("customer_status")
        .iter()
        .map(|r| r.field("reference"))
        .collect();
    assert_eq!(refs.len(), 3, "{:?}", rows.rows("customer_status"));
}

#[test]
fn an_unparsed_callback_resolved_by_a_person_is_closed() {
    let rows = given(vec![unparsed("evt_bad")]).then();
    let id = rows.one("discrepancies").field("id");
    let rows = given(vec![unparsed("evt_bad"), resolved(&id)]).then();
    assert!(open_kinds(&rows).is_empty());
}

#[test]
fn buying_again_soon_after_a_lost_dispute_is_not_a_duplicate_charge() {
    let (_, first) = bought("pi_1");
    let c2 = Uuid::new_v4();
    let rows = given(first)
        .when(dispute_opened("pi_1", "dp_1"))
        .when(dispute_closed("pi_1", "dp_1", "lost"))
        .when(checkout_started(c2, A, 24900))
        .when(charge("pi_2", Some(c2), Some(A), 24900, 10))
        .then();
    assert_eq!(rows.one("subscriptions").field("status"), "active");
    assert_eq!(rows.one("subscriptions").field("payment_id"), "pi_2");
}

#[test]
fn paying_twice_within_the_window_is_still_a_duplicate_when_nothing_went_back() {
    let (_, first) = bought("pi_1");
    let c2 = Uuid::new_v4();
    let rows = given(first)
        .when(refunded("pi_1", "re_part", 100))
        .when(checkout_started(c2, A, 24900))
        .when(charge("pi_2", Some(c2), Some(A), 24900, 10))
        .then();
    assert_eq!(open_kinds(&rows), ["duplicate_charge"]);
    assert_eq!(rows.one("subscriptions").field("payment_id"), "pi_1");
}

#[test]
fn the_timeline_records_who_acted_for_a_desk_action() {
    let rescue = ChargeMatched {
        payment_id: "pi_o".into(),
        email: A.into(),
        plan: "annual".into(),
        reason: "support rescue".into(),
        matched_by: desk(),
    };
    let rows = given(vec![charge("pi_o", None, Some(A), 24900, 1)])
        .when((StreamId::payment("pi_o"), data(rescue, desk())))
        .then();
    let matched = rows.rows_where("timeline", "event_type", "ChargeMatched");
    assert_eq!(matched.len(), 1, "{:?}", rows.rows("timeline"));
    assert!(
        matched[0].field("actor").contains("alice"),
        "{:?}",
        matched[0]
    );
}

/// A charge only reconciliation found (its webhook never came) is matched
/// to its checkout late: `/api/access` documents that as `rescue`, the
/// customer got the rescue email, and the page says it was delayed.
#[test]
fn a_charge_found_by_reconciliation_is_activated_as_a_rescue() {
    let c = Uuid::new_v4();
    let found = ChargeSucceeded {
        payment_id: "pi_found".into(),
        charge_id: None,
        session_id: None,
        checkout_reference: Some(c.to_string()),
        customer_email: Some(A.into()),
        amount: 24900,
        currency: usd(),
        paid_at: at(1),
        source: ChargeSource::Reconciliation,
        invoice_id: None,
    };
    let rows = given(vec![
        checkout_started(c, A, 24900),
        (StreamId::payment("pi_found"), fact(found, "pi_found")),
    ])
    .then();
    assert_eq!(rows.one("subscriptions").field("activation"), "rescue");
    assert_eq!(rows.one("customer_status").field("activation"), "rescue");
    let emails: Vec<String> = rows
        .rows("outgoing_emails")
        .iter()
        .map(|r| r.field("kind"))
        .collect();
    assert_eq!(emails, ["rescue_confirmation"]);
}

/// A won dispute puts the payment back where it was: an unmatched charge is
/// unmatched again (and still a person's), not suddenly "active".
#[test]
fn a_won_dispute_returns_an_unmatched_payment_to_unmatched_not_active() {
    let rows = given(vec![charge("pi_orphan", None, Some(A), 24900, 1)])
        .when(dispute_opened("pi_orphan", "dp_1"))
        .when(dispute_closed("pi_orphan", "dp_1", "won"))
        .then();
    let status = rows.one("customer_status");
    assert_eq!(status.field("state"), "paid_unmatched");
    assert_eq!(status.field("dispute"), "won");
    assert!(
        rows.rows("subscriptions").is_empty(),
        "no access from a dispute"
    );
}

/// The customer hears of a dispute — its opening and its end — whatever
/// order the facts arrive in, even when both came before the charge.
#[test]
fn dispute_emails_are_the_same_whatever_order_the_facts_came_in() {
    let (_, story) = bought("pi_1");
    let emails = |rows: &Folded| {
        let mut kinds: Vec<String> = rows
            .rows("outgoing_emails")
            .iter()
            .map(|r| r.field("email_key"))
            .collect();
        kinds.sort();
        kinds
    };
    let in_order = given(story.clone())
        .when(dispute_opened("pi_1", "dp_1"))
        .when(dispute_closed("pi_1", "dp_1", "lost"))
        .then();
    let disputes_first = given(vec![
        dispute_closed("pi_1", "dp_1", "lost"),
        dispute_opened("pi_1", "dp_1"),
    ])
    .when_all(story)
    .then();
    assert_eq!(emails(&in_order), emails(&disputes_first));
    assert!(emails(&in_order).contains(&"dispute_notice:dp_1".to_string()));
    assert!(emails(&in_order).contains(&"dispute_lost:dp_1".to_string()));
}
