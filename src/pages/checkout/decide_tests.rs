//! Given a checkout form (and the checkout's history), the decision —
//! no database, no HTTP.
use super::decide::*;
use crate::plans::{Plan, Plans};
use payledger_events::{Currency, DomainEvent, ProcessorSessionOpened};

fn plans() -> Plans {
    Plans::new(vec![Plan {
        id: "annual".into(),
        name: "One year".into(),
        amount: 24900,
        currency: Currency::new("usd").unwrap(),
        period: payledger_events::Period::Year,
        renews: false,
        processor_price_id: None,
    }])
}

fn form(plan: &str, email: &str, token: &str) -> CheckoutRequest {
    CheckoutRequest {
        plan: plan.into(),
        email: email.into(),
        token: token.into(),
    }
}

const TOKEN: &str = "6a1f0c5e-8a57-4f43-9d0c-3f0a9a0d6b11";

#[test]
fn a_valid_form_starts_a_checkout_at_the_plans_price() {
    let d = start(&form("annual", " Ana@Example.com ", TOKEN), &plans(), false).unwrap();
    assert_eq!(d.started.email, "ana@example.com");
    assert_eq!(d.started.plan, "annual");
    assert_eq!(d.started.amount, 24900);
    assert_eq!(d.started.currency.as_str(), "usd");
}

#[test]
fn the_same_form_sent_twice_is_the_same_checkout() {
    let a = start(&form("annual", "ana@example.com", TOKEN), &plans(), false).unwrap();
    let b = start(&form("annual", "ANA@example.com", TOKEN), &plans(), false).unwrap();
    assert_eq!(a.started.checkout_id, b.started.checkout_id);
    let other = "0b9f6a55-1111-4c2e-9a0e-5d1b2c3d4e5f";
    let c = start(&form("annual", "ana@example.com", other), &plans(), false).unwrap();
    assert_ne!(a.started.checkout_id, c.started.checkout_id);
}

#[test]
fn an_empty_address_and_an_unknown_plan_are_both_named_at_once() {
    let errors = start(&form("lifetime", "  ", TOKEN), &plans(), false).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("enter your email"), "{errors:?}");
    assert!(errors[1].contains("choose one of the plans"), "{errors:?}");
}

#[test]
fn an_address_that_is_not_one_is_refused_with_an_example() {
    let errors = start(&form("annual", "ana@", TOKEN), &plans(), false).unwrap_err();
    assert!(errors[0].contains("name@example.com"), "{errors:?}");
}

#[test]
fn a_form_without_its_token_has_expired() {
    let errors = start(
        &form("annual", "ana@example.com", "not-a-token"),
        &plans(),
        false,
    )
    .unwrap_err();
    assert_eq!(errors, ["This form has expired: please submit it again."]);
}

#[test]
fn a_started_checkout_opens_a_session_and_an_opened_one_goes_back_to_its_pay_page() {
    let d = start(&form("annual", "ana@example.com", TOKEN), &plans(), false).unwrap();
    let started: DomainEvent = d.started.clone().into();
    assert_eq!(next(std::slice::from_ref(&started)), Next::OpenSession);
    let opened: DomainEvent = ProcessorSessionOpened {
        checkout_id: d.started.checkout_id,
        session_id: "cs_1".into(),
        url: "https://pay.example/cs_1".into(),
    }
    .into();
    assert_eq!(
        next(&[started, opened]),
        Next::PayAt("https://pay.example/cs_1".into())
    );
}

#[test]
fn an_address_that_already_has_access_is_told_it_need_not_pay_again() {
    let errors = start(&form("annual", "ana@example.com", TOKEN), &plans(), true).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("already has access") && errors[0].contains("don't need to pay again"),
        "{errors:?}"
    );
}
