//! Given what the processor states and what the ledger holds, reconciliation
//! decides what is missing and where they disagree — no database.
use super::decide::*;
use crate::processor::mapping::ProcessorFact;
use chrono::TimeZone;
use payledger_events::{
    Actor, ChargeSource, ChargeSucceeded, Currency, DomainEvent, EventData, Metadata, StreamId,
};
use std::collections::HashMap;

fn charge(payment: &str, amount: i64, currency: &str) -> (ProcessorFact, EventData) {
    let event: DomainEvent = ChargeSucceeded {
        payment_id: payment.into(),
        charge_id: Some(format!("ch_{payment}")),
        session_id: None,
        checkout_reference: None,
        customer_email: Some("ana@example.com".into()),
        amount,
        currency: Currency::new(currency).unwrap(),
        paid_at: chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
        source: ChargeSource::Reconciliation,
        invoice_id: None,
    }
    .into();
    let metadata = Metadata::new(
        uuid::Uuid::nil(),
        Actor::System("reconciler".into()),
        "reconcile",
    );
    let data = EventData::for_processor_fact(&event, payment, metadata).unwrap();
    let fact = ProcessorFact {
        event,
        stream: StreamId::payment(payment),
        object_id: payment.into(),
    };
    (fact, data)
}

fn ledger_holds(facts: &[(ProcessorFact, EventData)]) -> HashMap<uuid::Uuid, DomainEvent> {
    facts
        .iter()
        .map(|(f, d)| (d.event_id, f.event.clone()))
        .collect()
}

#[test]
fn a_charge_the_ledger_lacks_is_missing() {
    let verdict = what_is_missing(vec![charge("pi_1", 24900, "usd")], &HashMap::new());
    assert_eq!(verdict.missing.len(), 1);
    assert_eq!(verdict.missing[0].0.object_id, "pi_1");
    assert!(verdict.disagreements.is_empty());
}

#[test]
fn a_charge_the_ledger_holds_alike_is_nothing_to_do() {
    let known = ledger_holds(&[charge("pi_1", 24900, "usd")]);
    let verdict = what_is_missing(vec![charge("pi_1", 24900, "usd")], &known);
    assert!(verdict.missing.is_empty());
    assert!(verdict.disagreements.is_empty());
}

#[test]
fn a_charge_recorded_with_another_amount_is_a_disagreement_not_a_second_charge() {
    let known = ledger_holds(&[charge("pi_1", 24900, "usd")]);
    let verdict = what_is_missing(vec![charge("pi_1", 12000, "usd")], &known);
    assert!(verdict.missing.is_empty());
    let [d] = verdict.disagreements.as_slice() else {
        panic!("{:?}", verdict.disagreements)
    };
    assert_eq!(d.kind, "amount_differs");
    assert_eq!(d.ledger_amount, Some(24900));
    assert_eq!(d.processor_amount, 12000);
    assert!(
        d.detail.contains("249.00") && d.detail.contains("120.00"),
        "{}",
        d.detail
    );
}

#[test]
fn a_charge_recorded_in_another_currency_is_a_currency_disagreement() {
    let known = ledger_holds(&[charge("pi_1", 24900, "usd")]);
    let verdict = what_is_missing(vec![charge("pi_1", 24900, "eur")], &known);
    assert_eq!(verdict.disagreements[0].kind, "currency_differs");
}

#[test]
fn only_the_unknown_facts_of_a_mixed_page_are_missing() {
    let known = ledger_holds(&[charge("pi_1", 24900, "usd")]);
    let page = vec![
        charge("pi_1", 24900, "usd"),
        charge("pi_2", 24900, "usd"),
        charge("pi_3", 24900, "usd"),
    ];
    let missing: Vec<String> = what_is_missing(page, &known)
        .missing
        .into_iter()
        .map(|(f, _)| f.object_id)
        .collect();
    assert_eq!(missing, ["pi_2", "pi_3"]);
}

fn refunded(payment: &str, amount: i64, currency: &str) -> RefundedCharge {
    RefundedCharge {
        payment_id: payment.into(),
        charge_id: format!("ch_{payment}"),
        amount_refunded: amount,
        currency: currency.into(),
    }
}

#[test]
fn a_refund_only_the_processor_knows_is_a_disagreement() {
    let found = unrecorded_refunds(&[refunded("pi_1", 5000, "usd")], |_| false);
    let [d] = found.as_slice() else {
        panic!("{found:?}")
    };
    assert_eq!(d.kind, "refunded_at_processor");
    assert_eq!(d.processor_amount, 5000);
    assert!(
        d.detail.contains("50.00 USD") || d.detail.contains("50.00"),
        "{}",
        d.detail
    );
}

#[test]
fn a_refund_the_ledger_holds_or_is_about_to_append_is_no_disagreement() {
    let charges = [refunded("pi_1", 5000, "usd"), refunded("pi_2", 5000, "usd")];
    let found = unrecorded_refunds(&charges, |c| c.payment_id == "pi_1");
    let ids: Vec<&str> = found.iter().map(|d| d.payment_id.as_str()).collect();
    assert_eq!(ids, ["pi_2"]);
}

#[test]
fn a_refund_in_a_currency_payledger_cannot_read_is_skipped_not_a_crash() {
    assert!(unrecorded_refunds(&[refunded("pi_1", 5000, "not a currency")], |_| false).is_empty());
}

#[test]
fn appended_facts_are_labelled_with_their_type_and_object() {
    let (fact, _) = charge("pi_9", 100, "usd");
    assert_eq!(label(&fact.event, "pi_9"), "ChargeSucceeded pi_9");
}
