//! Real processor object shapes (shared/stripe/) parse with the same types the
//! webhook uses, and map to the facts they state.

use payledger::processor::mapping::map_callback;
use payledger::processor::stripe::{
    Charge, CheckoutSession, Dispute, Event, PaymentIntent, Refund,
};
use payledger_events::{DomainEvent, EventData};
use serde_json::Value;

/// shared/ stands beside the checkout (CI lays a copy there);
/// `PAYLEDGER_SHARED_DIR` points elsewhere.
pub(crate) fn fixture(name: &str) -> Value {
    let candidates = [
        std::env::var("PAYLEDGER_SHARED_DIR").unwrap_or_default(),
        format!("{}/../shared", env!("CARGO_MANIFEST_DIR")),
        "/work/shared".to_string(),
    ];
    let dir = candidates
        .iter()
        .find(|d| !d.is_empty() && std::path::Path::new(d).join("stripe").is_dir())
        .unwrap_or_else(|| panic!("shared/stripe not found in any of {candidates:?}"));
    let path = format!("{dir}/stripe/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn decode(data: &EventData) -> DomainEvent {
    DomainEvent::decode(
        &data.event_type,
        data.metadata.schema_version,
        data.payload.clone(),
    )
    .unwrap()
}

#[test]
fn every_openapi_fixture_of_the_objects_payledger_reads_parses() {
    let resources = &fixture("fixtures3.json")["resources"];
    serde_json::from_value::<CheckoutSession>(resources["checkout.session"].clone())
        .expect("checkout.session");
    serde_json::from_value::<Charge>(resources["charge"].clone()).expect("charge");
    serde_json::from_value::<Refund>(resources["refund"].clone()).expect("refund");
    serde_json::from_value::<Dispute>(resources["dispute"].clone()).expect("dispute");
    serde_json::from_value::<Event>(resources["event"].clone()).expect("event");
    serde_json::from_value::<PaymentIntent>(resources["payment_intent"].clone())
        .expect("payment_intent");
}

#[test]
fn the_captured_event_envelopes_parse_with_their_objects() {
    for name in [
        "supabase-stripe-sync-engine__checkout_session_completed.json",
        "supabase-stripe-sync-engine__charge_refunded.json",
        "supabase-stripe-sync-engine__invoice_paid.json",
    ] {
        let event: Event =
            serde_json::from_value(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        match event.event_type.as_str() {
            "checkout.session.completed" => {
                drop(serde_json::from_value::<CheckoutSession>(event.data.object).unwrap())
            }
            "charge.refunded" => drop(serde_json::from_value::<Charge>(event.data.object).unwrap()),
            _ => {}
        }
    }
    let data = fixture("pay-rails__checkout.session.completed.data.json");
    serde_json::from_value::<CheckoutSession>(data["object"].clone()).expect("pay-rails session");
}

#[test]
fn a_completed_fixture_session_maps_to_one_charge_with_its_amount_email_and_reference() {
    let mut event = fixture("supabase-stripe-sync-engine__checkout_session_completed.json");
    let checkout_id = "0b6f9c1e-7a3d-4a51-9b0e-2f1d3c4b5a69";
    event["data"]["object"]["client_reference_id"] = Value::String(checkout_id.into());
    let session = event["data"]["object"].clone();
    let body = serde_json::to_vec(&event).unwrap();

    let mapped = map_callback(&body, chrono::Utc::now()).unwrap();
    assert_eq!(mapped.unparsed_reason, None);
    assert_eq!(mapped.facts, vec!["ChargeSucceeded"]);
    let charge = mapped
        .appends
        .iter()
        .flat_map(|a| &a.events)
        .find(|e| e.event_type == "ChargeSucceeded")
        .unwrap();
    let DomainEvent::ChargeSucceeded(c) = decode(charge) else {
        panic!()
    };
    assert_eq!(c.amount, session["amount_total"].as_i64().unwrap());
    assert_eq!(c.currency.as_str(), session["currency"].as_str().unwrap());
    assert_eq!(
        c.customer_email.as_deref(),
        session["customer_details"]["email"].as_str()
    );
    assert_eq!(c.checkout_reference.as_deref(), Some(checkout_id));
    assert_eq!(c.payment_id, session["payment_intent"].as_str().unwrap());
    assert_eq!(
        charge.event_id,
        payledger_events::deterministic_event_id("ChargeSucceeded", &c.payment_id)
    );

    // The verbatim record keeps the body byte for byte.
    let record = &mapped.appends[0].events[0];
    let DomainEvent::ProcessorEventReceived(r) = decode(record) else {
        panic!()
    };
    assert_eq!(r.raw_body.as_bytes(), body.as_slice());
}

#[test]
fn the_fixture_refund_maps_to_a_refund_of_its_payment() {
    let event = fixture("supabase-stripe-sync-engine__charge_refunded.json");
    let charge = event["data"]["object"].clone();
    let mapped = map_callback(&serde_json::to_vec(&event).unwrap(), chrono::Utc::now()).unwrap();
    assert_eq!(mapped.unparsed_reason, None);
    let refunds: Vec<_> = mapped
        .appends
        .iter()
        .flat_map(|a| &a.events)
        .filter(|e| e.event_type == "ChargeRefunded")
        .collect();
    assert!(!refunds.is_empty());
    let total: i64 = refunds
        .iter()
        .map(|e| match decode(e) {
            DomainEvent::ChargeRefunded(r) => {
                assert_eq!(r.payment_id, charge["payment_intent"].as_str().unwrap());
                r.amount
            }
            _ => panic!(),
        })
        .sum();
    assert_eq!(total, charge["amount_refunded"].as_i64().unwrap());
}

#[test]
fn an_unpaid_fixture_session_states_no_charge() {
    let session = fixture("fixtures3.json")["resources"]["checkout.session"].clone();
    let body = serde_json::json!({"id": "evt_unpaid", "object": "event", "created": 1_700_000_000, "type": "checkout.session.completed", "data": {"object": session}});
    let mapped = map_callback(&serde_json::to_vec(&body).unwrap(), chrono::Utc::now()).unwrap();
    assert!(mapped.facts.is_empty());
    assert_eq!(mapped.unparsed_reason, None);
}
