//! The processor's billing callbacks (spec §12), in both wire shapes, from
//! the real envelopes in shared/stripe/: each maps to the lifecycle facts it
//! states, with ids that follow from the processor's objects alone.

use super::stripe_fixtures::{decode, fixture};
use payledger::processor::mapping::map_callback;
use payledger_events::DomainEvent;
use payledger_stripe::billing::{Invoice, Subscription};
use serde_json::{json, Value};

fn facts_of(event: &Value) -> Vec<(uuid::Uuid, DomainEvent)> {
    let mapped = map_callback(&serde_json::to_vec(event).unwrap(), chrono::Utc::now()).unwrap();
    assert_eq!(mapped.unparsed_reason, None, "{}", event["type"]);
    mapped
        .appends
        .iter()
        .skip(1)
        .flat_map(|a| &a.events)
        .map(|e| (e.event_id, decode(e)))
        .collect()
}

fn envelope(kind: &str, object: Value, previous: Option<Value>) -> Value {
    let mut data = json!({ "object": object });
    if let Some(p) = previous {
        data["previous_attributes"] = p;
    }
    json!({"id": format!("evt_{kind}_{}", object_id(&data)), "object": "event",
           "created": 1_700_000_000, "type": kind, "data": data})
}

fn object_id(data: &Value) -> String {
    data["object"]["id"].as_str().unwrap_or("x").to_string()
}

#[test]
fn the_billing_objects_of_both_api_versions_parse() {
    let resources = &fixture("fixtures3.json")["resources"];
    let sub: Subscription = serde_json::from_value(resources["subscription"].clone()).unwrap();
    assert_eq!(sub.price_id(), Some("price_1PgafmB7WZ01zgkW6dKueIc5"));
    // The current version puts the period on the item.
    assert_eq!(sub.current_period(), Some((1896570518, 976287773)));
    let invoice: Invoice = serde_json::from_value(resources["invoice"].clone()).unwrap();
    assert_eq!(invoice.subscription_id(), Some("subscription"));
    for name in [
        "supabase-stripe-sync-engine__subscription_created.json",
        "supabase-stripe-sync-engine__subscription_updated.json",
        "supabase-stripe-sync-engine__subscription_deleted.json",
    ] {
        let s: Subscription = serde_json::from_value(fixture(name)["data"]["object"].clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(s.current_period().is_some(), "{name}");
    }
    for name in [
        "supabase-stripe-sync-engine__invoice_paid.json",
        "supabase-stripe-sync-engine__invoice_finalized.json",
        "supabase-stripe-sync-engine__invoice_voided.json",
        "supabase-stripe-sync-engine__invoice_updated.json",
    ] {
        serde_json::from_value::<Invoice>(fixture(name)["data"]["object"].clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn an_old_version_paid_invoice_is_one_period_of_its_subscription_from_its_line() {
    let event = fixture("supabase-stripe-sync-engine__invoice_paid.json");
    let facts = facts_of(&event);
    assert_eq!(facts.len(), 1, "{facts:?}");
    let (id, DomainEvent::InvoicePaid(paid)) = &facts[0] else {
        panic!("{facts:?}")
    };
    assert_eq!(paid.invoice_id, "in_1KJqKBJDPojXS6LNJbvLUgEy");
    assert_eq!(paid.subscription_id, "sub_JsuPyCPhXWfZar");
    assert_eq!(paid.billing_reason, "subscription_cycle");
    // The line's period (what it pays for), not the invoice's own (the
    // period before it).
    assert_eq!(
        (paid.period_start.timestamp(), paid.period_end.timestamp()),
        (1642645280, 1645323680)
    );
    assert_eq!(paid.amount, 0);
    assert_eq!(
        *id,
        payledger_events::deterministic_event_id("InvoicePaid", &paid.invoice_id)
    );
    // The same invoice through `invoice.payment_succeeded` is the same fact.
    let mut twin = event.clone();
    twin["id"] = json!("evt_other");
    twin["type"] = json!("invoice.payment_succeeded");
    assert_eq!(facts_of(&twin)[0].0, *id);
}

#[test]
fn a_current_version_invoice_names_its_subscription_and_checkout_under_parent() {
    let mut invoice = fixture("fixtures3.json")["resources"]["invoice"].clone();
    invoice["status"] = json!("paid");
    invoice["amount_paid"] = json!(24900);
    invoice["billing_reason"] = json!("subscription_create");
    invoice["status_transitions"]["paid_at"] = json!(1_700_000_000);
    invoice["lines"]["data"][0]["period"] = json!({"start": 1_700_000_000, "end": 1_731_622_400});
    invoice["parent"] = json!({"type": "subscription_details", "subscription_details": {
        "subscription": "sub_new", "metadata": {"checkout_reference": "c-1"}}});
    invoice["payments"] = json!({"object": "list", "data": [
        {"id": "inpay_1", "payment": {"type": "payment_intent", "payment_intent": "pi_first"}}]});
    let facts = facts_of(&envelope("invoice.paid", invoice, None));
    let [(_, DomainEvent::InvoicePaid(paid))] = facts.as_slice() else {
        panic!("{facts:?}")
    };
    assert_eq!(paid.subscription_id, "sub_new");
    assert_eq!(paid.checkout_reference.as_deref(), Some("c-1"));
    assert_eq!(paid.payment_id.as_deref(), Some("pi_first"));
    assert_eq!(paid.period_end.timestamp(), 1_731_622_400);
}

#[test]
fn an_unpaid_or_subscriptionless_invoice_grants_nothing() {
    let finalized = fixture("supabase-stripe-sync-engine__invoice_finalized.json");
    assert_eq!(facts_of(&finalized).len(), 0);
    let mut manual = fixture("fixtures3.json")["resources"]["invoice"].clone();
    manual["status"] = json!("paid");
    manual["parent"] = Value::Null;
    assert_eq!(facts_of(&envelope("invoice.paid", manual, None)).len(), 0);
}

#[test]
fn subscription_created_updated_and_deleted_state_start_and_end() {
    let created = facts_of(&fixture(
        "supabase-stripe-sync-engine__subscription_created.json",
    ));
    let [(start_id, DomainEvent::SubscriptionStarted(s))] = created.as_slice() else {
        panic!("{created:?}")
    };
    assert_eq!(s.subscription_id, "sub_JdIzvfy6o5GZRd");
    assert_eq!(s.customer_id.as_deref(), Some("cus_IhGfebO16cMIGN"));

    let deleted = facts_of(&fixture(
        "supabase-stripe-sync-engine__subscription_deleted.json",
    ));
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    // `deleted` before `created` states the same start: recorded once.
    assert_eq!(deleted[0].0, *start_id);
    let DomainEvent::SubscriptionEnded(e) = &deleted[1].1 else {
        panic!("{deleted:?}")
    };
    assert_eq!(e.ended_at.timestamp(), 1623149102);

    let updated = facts_of(&fixture(
        "supabase-stripe-sync-engine__subscription_updated.json",
    ));
    assert_eq!(
        updated.len(),
        1,
        "a metadata change states nothing new: {updated:?}"
    );
}

#[test]
fn a_scheduled_cancellation_and_its_undo_are_facts_ordered_by_the_processor_time() {
    let mut sub =
        fixture("supabase-stripe-sync-engine__subscription_updated.json")["data"]["object"].clone();
    sub["cancel_at_period_end"] = json!(true);
    sub["canceled_at"] = json!(1_619_000_000);
    let scheduled = facts_of(&envelope(
        "customer.subscription.updated",
        sub.clone(),
        None,
    ));
    let DomainEvent::SubscriptionCancellationScheduled(c) = &scheduled[1].1 else {
        panic!("{scheduled:?}")
    };
    assert_eq!(c.cancel_at.timestamp(), 1621572344, "the period's end");
    assert_eq!(c.requested_at.timestamp(), 1_619_000_000);

    sub["cancel_at_period_end"] = json!(false);
    sub["canceled_at"] = Value::Null;
    let undone = facts_of(&envelope(
        "customer.subscription.updated",
        sub,
        Some(json!({"cancel_at_period_end": true})),
    ));
    let DomainEvent::SubscriptionCancellationUndone(u) = &undone[1].1 else {
        panic!("{undone:?}")
    };
    assert_eq!(u.undone_at.timestamp(), 1_700_000_000);
}

#[test]
fn a_failed_attempt_is_one_fact_per_invoice_and_attempt() {
    let mut invoice =
        fixture("supabase-stripe-sync-engine__invoice_finalized.json")["data"]["object"].clone();
    invoice["amount_due"] = json!(24900);
    invoice["attempt_count"] = json!(2);
    invoice["next_payment_attempt"] = json!(1_700_200_000);
    let facts = facts_of(&envelope("invoice.payment_failed", invoice, None));
    let [(id, DomainEvent::InvoicePaymentFailed(f))] = facts.as_slice() else {
        panic!("{facts:?}")
    };
    assert_eq!((f.attempt, f.amount), (2, 24900));
    assert_eq!(f.next_attempt.map(|t| t.timestamp()), Some(1_700_200_000));
    assert_eq!(
        *id,
        payledger_events::deterministic_event_id(
            "InvoicePaymentFailed",
            &format!("{}:2", f.invoice_id)
        )
    );
}

#[test]
fn a_subscription_checkout_session_states_the_start_not_a_second_payment() {
    let mut event = fixture("supabase-stripe-sync-engine__checkout_session_completed.json");
    event["data"]["object"]["mode"] = json!("subscription");
    event["data"]["object"]["subscription"] = json!("sub_from_checkout");
    event["data"]["object"]["client_reference_id"] = json!("c-2");
    let facts = facts_of(&event);
    let [(_, DomainEvent::SubscriptionStarted(s))] = facts.as_slice() else {
        panic!("{facts:?}")
    };
    assert_eq!(s.checkout_reference.as_deref(), Some("c-2"));
}

#[test]
fn an_update_that_moves_the_price_is_a_plan_change_and_one_that_does_not_is_none() {
    let envelope_of_fixture = fixture("supabase-stripe-sync-engine__subscription_updated.json");
    let sub = envelope_of_fixture["data"]["object"].clone();
    let price = sub["items"]["data"][0]["price"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The fixture's own update changed only metadata.
    let facts = facts_of(&envelope_of_fixture);
    assert!(
        !facts
            .iter()
            .any(|(_, e)| matches!(e, DomainEvent::SubscriptionPlanChanged(_))),
        "{facts:?}"
    );
    // The same subscription, its previous items on another price.
    let mut previous_items = sub["items"].clone();
    previous_items["data"][0]["price"]["id"] = json!("price_old_plan");
    let facts = facts_of(&envelope(
        "customer.subscription.updated",
        sub.clone(),
        Some(json!({"items": previous_items, "plan": {"id": "price_old_plan"}})),
    ));
    let changes: Vec<_> = facts
        .iter()
        .filter_map(|(id, e)| match e {
            DomainEvent::SubscriptionPlanChanged(c) => Some((*id, c.clone())),
            _ => None,
        })
        .collect();
    let [(id, change)] = changes.as_slice() else {
        panic!("{facts:?}")
    };
    assert_eq!(change.price_id, price);
    assert_eq!(change.previous_price_id.as_deref(), Some("price_old_plan"));
    assert_eq!(change.changed_at.timestamp(), 1_700_000_000);
    let sub_id = sub["id"].as_str().unwrap();
    assert_eq!(
        *id,
        payledger_events::deterministic_event_id(
            "SubscriptionPlanChanged",
            &format!("{sub_id}:{price}:1700000000")
        ),
        "the same callback, through any door, is the same fact"
    );
}
