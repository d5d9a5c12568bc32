#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly
use chrono::{TimeZone, Utc};
use payledger_events::*;
use std::collections::BTreeSet;
use uuid::Uuid;

fn usd() -> Currency {
    Currency::new("usd").unwrap()
}

fn one_of_each() -> Vec<DomainEvent> {
    let at = Utc.with_ymd_and_hms(2026, 11, 27, 9, 30, 0).unwrap();
    let id = Uuid::from_u128(7);
    let alice = Actor::Support("alice".into());
    vec![
        CheckoutStarted {
            checkout_id: id,
            email: "ann@example.com".into(),
            plan: "annual".into(),
            amount: 24900,
            currency: usd(),
            period: payledger_events::Period::Year,
            renews: false,
        }
        .into(),
        ProcessorSessionOpened {
            checkout_id: id,
            session_id: "cs_1".into(),
            url: "http://sim/pay/cs_1".into(),
        }
        .into(),
        CheckoutReturned {
            checkout_id: id,
            session_id: "cs_1".into(),
        }
        .into(),
        CheckoutSessionExpired {
            session_id: "cs_1".into(),
            checkout_reference: Some(id.to_string()),
        }
        .into(),
        CheckoutPaymentFailed {
            session_id: "cs_1".into(),
            checkout_reference: None,
            payment_id: Some("pi_1".into()),
        }
        .into(),
        ChargeSucceeded {
            payment_id: "pi_1".into(),
            charge_id: Some("ch_1".into()),
            session_id: Some("cs_1".into()),
            checkout_reference: Some(id.to_string()),
            customer_email: Some("ann@example.com".into()),
            amount: 24900,
            currency: usd(),
            paid_at: at,
            source: ChargeSource::Webhook,
            invoice_id: None,
        }
        .into(),
        ChargeRefunded {
            payment_id: "pi_1".into(),
            refund_id: "re_1".into(),
            amount: 24900,
            currency: usd(),
            refunded_at: at,
            reason: Some("requested_by_customer".into()),
            source: ChargeSource::Support,
        }
        .into(),
        DisputeOpened {
            payment_id: "pi_1".into(),
            dispute_id: "dp_1".into(),
            amount: 24900,
            currency: usd(),
            reason: Some("fraudulent".into()),
            opened_at: at,
        }
        .into(),
        DisputeClosed {
            payment_id: "pi_1".into(),
            dispute_id: "dp_1".into(),
            status: "won".into(),
            closed_at: at,
        }
        .into(),
        ChargeMatched {
            payment_id: "pi_1".into(),
            email: "ann@example.com".into(),
            plan: "annual".into(),
            reason: "customer wrote in".into(),
            matched_by: alice.clone(),
        }
        .into(),
        SubscriptionGranted {
            email: "ann@example.com".into(),
            plan: "annual".into(),
            reason: "press".into(),
            granted_by: alice.clone(),
        }
        .into(),
        SubscriptionRevoked {
            email: "ann@example.com".into(),
            reason: "abuse".into(),
            revoked_by: alice.clone(),
        }
        .into(),
        EmailSent {
            email_key: "confirmation:pi_1".into(),
            message_id: "<confirmation.pi_1@payledger>".into(),
            attempt: 1,
        }
        .into(),
        EmailFailed {
            email_key: "confirmation:pi_1".into(),
            attempt: 2,
            error: "550 no such user".into(),
            permanent: true,
        }
        .into(),
        EmailResendRequested {
            email_key: "confirmation:pi_1".into(),
            requested_by: alice.clone(),
        }
        .into(),
        DiscrepancyAcknowledged {
            discrepancy_id: "unmatched_charge:pi_1".into(),
            note: "looking".into(),
            acknowledged_by: alice.clone(),
        }
        .into(),
        DiscrepancyResolved {
            discrepancy_id: "unmatched_charge:pi_1".into(),
            resolution: "rescued".into(),
            note: "matched to ann".into(),
            resolved_by: alice,
        }
        .into(),
        ProcessorEventReceived {
            processor_event_id: "evt_1".into(),
            event_type: "charge.succeeded".into(),
            raw_body: "{}".into(),
            raw_body_base64: None,
            signature_verified: true,
            received_at: at,
            unparsed_reason: None,
        }
        .into(),
        ProcessorEventConflict {
            processor_event_id: "evt_1".into(),
            stored_body_sha256: "aa".into(),
            received_body_sha256: "bb".into(),
            received_at: at,
        }
        .into(),
        ProcessorObjectUnreadable {
            object_id: "ch_1".into(),
            object: "charge".into(),
            payment_id: Some("pi_1".into()),
            customer_email: Some("ann@example.com".into()),
            reason: "currency \"xyz\" is not an ISO 4217 currency".into(),
            run_id: id,
        }
        .into(),
        StatusLinkRequested {
            request_id: id,
            email: "ann@example.com".into(),
        }
        .into(),
        ReconciliationCompleted {
            run_id: id,
            window_from: at,
            window_to: at,
            objects_seen: 3,
            missing_appended: 1,
            differences: 0,
            duration_ms: 12,
        }
        .into(),
        ReconciliationFailed {
            run_id: id,
            window_from: at,
            window_to: at,
            objects_seen: 200,
            missing_appended: 0,
            error: "processor answered 500 six times".into(),
        }
        .into(),
        ProcessorDisagreement {
            payment_id: "pi_1".into(),
            kind: "amount_differs".into(),
            ledger_amount: Some(24900),
            ledger_currency: Some(usd()),
            processor_amount: 19900,
            processor_currency: usd(),
            processor_object_id: "ch_1".into(),
            detail: "the ledger says 249.00 USD, the processor 199.00 USD".into(),
        }
        .into(),
        SubscriptionStarted {
            subscription_id: "sub_1".into(),
            customer_id: Some("cus_1".into()),
            checkout_reference: Some(id.to_string()),
            price_id: Some("price_annual_249".into()),
            started_at: at,
        }
        .into(),
        InvoicePaid {
            invoice_id: "in_1".into(),
            subscription_id: "sub_1".into(),
            payment_id: Some("pi_1".into()),
            billing_reason: "subscription_cycle".into(),
            checkout_reference: None,
            customer_email: Some("a@example.com".into()),
            amount: 24900,
            currency: usd(),
            period_start: at,
            period_end: at,
            paid_at: at,
            source: ChargeSource::Webhook,
        }
        .into(),
        InvoicePaymentFailed {
            invoice_id: "in_1".into(),
            subscription_id: "sub_1".into(),
            attempt: 2,
            next_attempt: Some(at),
            customer_email: None,
            amount: 24900,
            currency: usd(),
            failed_at: at,
        }
        .into(),
        SubscriptionCancellationScheduled {
            subscription_id: "sub_1".into(),
            cancel_at: at,
            requested_at: at,
        }
        .into(),
        SubscriptionCancellationUndone {
            subscription_id: "sub_1".into(),
            undone_at: at,
        }
        .into(),
        SubscriptionEnded {
            subscription_id: "sub_1".into(),
            ended_at: at,
            reason: Some("payment_failed".into()),
        }
        .into(),
        SubscriptionPlanChanged {
            subscription_id: "sub_1".into(),
            price_id: "price_monthly_25".into(),
            previous_price_id: Some("price_annual_249".into()),
            changed_at: at,
        }
        .into(),
        AppWebhookEndpointAdded {
            endpoint_id: "ep_1".into(),
            url: "https://app.example/hooks".into(),
            types: vec!["subscription.renewed".into()],
            secret_fingerprint: "0123456789abcdef".into(),
        }
        .into(),
        AppWebhookEndpointDisabled {
            endpoint_id: "ep_1".into(),
            reason: "410 Gone".into(),
        }
        .into(),
        AppWebhookSecretRotated {
            endpoint_id: "ep_1".into(),
            secret_fingerprint: "fedcba9876543210".into(),
            previous_valid_until: at,
        }
        .into(),
        AppWebhookReplayRequested {
            endpoint_id: "ep_1".into(),
            since: at,
        }
        .into(),
        AppWebhookMessageFailed {
            endpoint_id: "ep_1".into(),
            message_id: "msg_1".into(),
            email: "ann@example.com".into(),
            message_type: "subscription.renewed".into(),
            attempts: 8,
            last_error: "503".into(),
        }
        .into(),
        PlanOffered {
            plan: "monthly".into(),
            price_id: "price_monthly_25".into(),
            amount: 2500,
            currency: usd(),
            period: payledger_events::Period::Month,
            renews: true,
        }
        .into(),
        RenewalReminderDue {
            subscription_id: "sub_1".into(),
            renews_at: at,
            amount: 24900,
            currency: usd(),
        }
        .into(),
        SubscriptionDisagreement {
            subscription_id: "sub_1".into(),
            email: Some("ann@example.com".into()),
            kind: "status".into(),
            ledger_status: "active".into(),
            ledger_period_end: at,
            processor_status: "past_due".into(),
            processor_period_end: Some(at),
            detail: "the processor says past_due".into(),
        }
        .into(),
    ]
}

#[test]
fn every_event_type_round_trips_through_serde() {
    let samples = one_of_each();
    let covered: BTreeSet<&str> = samples.iter().map(|e| e.event_type()).collect();
    let all: BTreeSet<&str> = DomainEvent::TYPES.iter().copied().collect();
    assert_eq!(covered, all, "every vocabulary type needs a sample here");

    for event in samples {
        let payload = event.to_payload().unwrap();
        let text = serde_json::to_string(&payload).unwrap();
        let back = DomainEvent::decode(
            event.event_type(),
            current_schema_version(event.event_type()),
            serde_json::from_str(&text).unwrap(),
        )
        .unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn checkout_started_v1_is_upcast_to_amount_and_currency() {
    let v1 = serde_json::json!({
        "checkout_id": "00000000-0000-0000-0000-000000000007",
        "email": "ann@example.com",
        "plan": "annual",
        "amount_cents": 24900
    });
    let DomainEvent::CheckoutStarted(c) = DomainEvent::decode("CheckoutStarted", 1, v1).unwrap()
    else {
        panic!("wrong variant");
    };
    assert_eq!(c.amount, 24900);
    assert_eq!(c.currency, usd());
}

#[test]
fn a_payload_from_a_newer_schema_is_refused_not_guessed() {
    let err = DomainEvent::decode("ChargeSucceeded", 9, serde_json::json!({})).unwrap_err();
    assert!(
        matches!(err, DecodeError::FutureSchema { version: 9, .. }),
        "{err}"
    );
}

#[test]
fn unknown_types_and_bad_payloads_are_named_errors() {
    assert!(
        matches!(DomainEvent::decode("Nope", 1, serde_json::json!({})), Err(DecodeError::UnknownType(t)) if t == "Nope")
    );
    let err =
        DomainEvent::decode("ChargeSucceeded", 1, serde_json::json!({"amount": 1.5})).unwrap_err();
    assert!(err.to_string().contains("ChargeSucceeded"), "{err}");
}

#[test]
fn event_data_stamps_the_schema_version_and_processor_facts_get_deterministic_ids() {
    let event: DomainEvent = CheckoutStarted {
        checkout_id: Uuid::nil(),
        email: "a@b.c".into(),
        plan: "p".into(),
        amount: 1,
        currency: usd(),
        period: payledger_events::Period::Year,
        renews: false,
    }
    .into();
    let meta = Metadata::new(Uuid::nil(), Actor::Customer("a@b.c".into()), "checkout");
    let data = EventData::new(&event, Uuid::from_u128(1), meta.clone()).unwrap();
    assert_eq!(data.metadata.schema_version, 2);

    let a = EventData::for_processor_fact(&event, "cs_1", meta.clone()).unwrap();
    let b = EventData::for_processor_fact(&event, "cs_1", meta).unwrap();
    assert_eq!(a.event_id, b.event_id);
    assert_eq!(
        a.event_id,
        deterministic_event_id("CheckoutStarted", "cs_1")
    );
}
