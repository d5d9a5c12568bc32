//! Given the payment's events, when a command is decided, then it
//! appends this or refuses with that — no database.
use super::*;
use crate::plans::Plan;
use chrono::TimeZone;
use payledger_events::{ChargeSource, Currency};
use payledger_projections::states::{DiscrepancyStatus, EmailStatus};

fn usd() -> Currency {
    Currency::new("usd").unwrap()
}

fn plans() -> Plans {
    Plans::new(vec![
        Plan {
            id: "annual".into(),
            name: "One year".into(),
            amount: 24900,
            currency: usd(),
            period: payledger_events::Period::Year,
            renews: false,
            processor_price_id: None,
        },
        Plan {
            id: "annual-team".into(),
            name: "One year, team".into(),
            amount: 99900,
            currency: usd(),
            period: payledger_events::Period::Year,
            renews: false,
            processor_price_id: None,
        },
    ])
}

fn charge(amount: i64, email: Option<&str>) -> DomainEvent {
    ChargeSucceeded {
        payment_id: "pi_1".into(),
        charge_id: None,
        session_id: None,
        checkout_reference: None,
        customer_email: email.map(str::to_string),
        amount,
        currency: usd(),
        paid_at: chrono::Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
        source: ChargeSource::Webhook,
        invoice_id: None,
    }
    .into()
}

fn refund(amount: i64) -> DomainEvent {
    ChargeRefunded {
        payment_id: "pi_1".into(),
        refund_id: format!("re_{amount}"),
        amount,
        currency: usd(),
        refunded_at: chrono::Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap(),
        reason: None,
        source: ChargeSource::Webhook,
    }
    .into()
}

fn given(events: Vec<DomainEvent>) -> PaymentFacts {
    PaymentFacts::fold("pi_1", events.into_iter().zip(1..).map(|(e, v)| (v, e)))
}

fn rescue_of(
    facts: &PaymentFacts,
    activated: bool,
    email: Option<&str>,
    plan: Option<&str>,
    force: Option<&str>,
) -> Result<Rescue, Refusal> {
    rescue(
        facts,
        activated,
        &plans(),
        &RescueRequest {
            payment_id: "pi_1",
            email,
            plan,
            force,
        },
        &Actor::Support("alice".into()),
    )
}

#[test]
fn facts_fold_to_the_last_version_and_sum_partial_refunds() {
    let facts = given(vec![charge(24900, None), refund(100), refund(200)]);
    assert_eq!(facts.version, 3);
    assert_eq!(facts.refunded_minor(), 300);
    assert_eq!(given(vec![]).version, 0);
}

#[test]
fn a_charge_that_fits_one_plan_is_rescued_to_its_own_email() {
    let r = rescue_of(
        &given(vec![charge(24900, Some("A@Example.com"))]),
        false,
        None,
        None,
        None,
    )
    .unwrap();
    assert_eq!(r.matched.email, "a@example.com");
    assert_eq!(r.matched.plan, "annual");
    assert_eq!(r.matched.reason, "support rescue");
    assert!(r.what.contains("249.00 USD"), "{}", r.what);
}

#[test]
fn rescue_of_an_unknown_payment_is_not_found() {
    assert!(matches!(
        rescue_of(&given(vec![]), false, None, None, None),
        Err(Refusal::NotFound(_))
    ));
}

#[test]
fn rescue_of_a_matched_payment_is_already_done() {
    let matched = ChargeMatched {
        payment_id: "pi_1".into(),
        email: "a@example.com".into(),
        plan: "annual".into(),
        reason: "support rescue".into(),
        matched_by: Actor::Support("bob".into()),
    };
    let r = rescue_of(
        &given(vec![charge(24900, None), matched.into()]),
        false,
        None,
        None,
        None,
    );
    assert!(
        matches!(&r, Err(Refusal::Done(m)) if m.contains("already matched to a@example.com")),
        "{r:?}"
    );
}

#[test]
fn rescue_of_an_activated_payment_is_already_done() {
    let r = rescue_of(
        &given(vec![charge(24900, Some("a@example.com"))]),
        true,
        None,
        None,
        None,
    );
    assert!(matches!(r, Err(Refusal::Done(_))));
}

#[test]
fn rescue_of_a_refunded_payment_is_refused_even_in_part() {
    let r = rescue_of(
        &given(vec![charge(24900, Some("a@example.com")), refund(100)]),
        false,
        None,
        None,
        None,
    );
    assert!(
        matches!(&r, Err(Refusal::Refused(m)) if m.contains("was refunded")),
        "{r:?}"
    );
}

#[test]
fn rescue_without_an_email_anywhere_asks_for_one() {
    let r = rescue_of(&given(vec![charge(24900, None)]), false, None, None, None);
    assert!(
        matches!(&r, Err(Refusal::Invalid(m)) if m.contains("give --email")),
        "{r:?}"
    );
    let r = rescue_of(
        &given(vec![charge(24900, None)]),
        false,
        Some("b@example.com"),
        None,
        None,
    )
    .unwrap();
    assert_eq!(r.matched.email, "b@example.com");
}

#[test]
fn rescue_refuses_an_address_that_is_not_one() {
    let r = rescue_of(
        &given(vec![charge(24900, None)]),
        false,
        Some("b@example.com; rm -rf /"),
        None,
        None,
    );
    assert!(matches!(r, Err(Refusal::Invalid(_))));
}

#[test]
fn rescue_of_an_amount_no_plan_costs_needs_a_plan_and_then_force() {
    let facts = given(vec![charge(12345, Some("a@example.com"))]);
    assert!(
        matches!(rescue_of(&facts, false, None, None, None), Err(Refusal::Invalid(m)) if m.contains("fits no single plan"))
    );
    assert!(
        matches!(rescue_of(&facts, false, None, Some("annual"), None), Err(Refusal::Refused(m)) if m.contains("123.45 USD"))
    );
    let forced = rescue_of(
        &facts,
        false,
        None,
        Some("annual"),
        Some("customer paid by mistake"),
    )
    .unwrap();
    assert_eq!(
        forced.matched.reason,
        "support rescue (forced: customer paid by mistake)"
    );
}

#[test]
fn rescue_names_the_known_plans_when_given_another() {
    let r = rescue_of(
        &given(vec![charge(24900, Some("a@example.com"))]),
        false,
        None,
        Some("monthly"),
        None,
    );
    assert!(
        matches!(&r, Err(Refusal::Invalid(m)) if m.contains("annual, annual-team")),
        "{r:?}"
    );
}

#[test]
fn refund_needs_a_reason_a_charge_and_no_earlier_refund() {
    assert!(matches!(
        refund_of(vec![charge(24900, None)], " "),
        Err(Refusal::Invalid(_))
    ));
    assert!(matches!(
        refund_of(vec![], "asked"),
        Err(Refusal::NotFound(_))
    ));
    assert!(matches!(
        refund_of(vec![charge(24900, None), refund(24900)], "asked"),
        Err(Refusal::Done(_))
    ));
    let what = refund_of(vec![charge(24900, None)], "asked").unwrap();
    assert!(what.contains("in full (249.00 USD)"), "{what}");
}

#[test]
fn a_partial_refund_is_never_more_than_what_is_left_and_says_what_remains() {
    let facts = given(vec![charge(24900, None), refund(5000)]);
    let r = super::refund(&facts, "asked", Some(7000)).unwrap();
    assert_eq!(r.amount, Some(7000));
    assert!(
        r.what.contains("refund 70.00 USD of payment pi_1"),
        "{}",
        r.what
    );
    assert!(
        r.what.contains("50.00 USD already refunded") && r.what.contains("leaving 129.00 USD"),
        "{}",
        r.what
    );
    match super::refund(&facts, "asked", Some(20000)) {
        Err(Refusal::Refused(m)) => assert!(
            m.contains("more than what is left") && m.contains("199.00 USD of 249.00 USD"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        super::refund(&facts, "asked", Some(0)),
        Err(Refusal::Invalid(_))
    ));
    // Without --amount: the rest.
    let rest = super::refund(&facts, "asked", None).unwrap();
    assert!(rest.what.contains("refund 199.00 USD"), "{}", rest.what);
    assert_ne!(rest.key, r.key);
}

#[test]
fn a_partly_refunded_payment_is_not_already_refunded_but_a_fully_refunded_one_is() {
    let partly = given(vec![charge(24900, None), refund(5000), refund(7000)]);
    assert!(super::refund(&partly, "asked", None).is_ok());
    let fully = given(vec![charge(24900, None), refund(5000), refund(19900)]);
    assert!(
        matches!(super::refund(&fully, "asked", None), Err(Refusal::Done(m)) if m.contains("in full (249.00 USD)"))
    );
}

#[test]
fn a_disputed_charge_is_not_refunded_until_the_dispute_closes() {
    let opened: DomainEvent = payledger_events::DisputeOpened {
        payment_id: "pi_1".into(),
        dispute_id: "dp_1".into(),
        amount: 24900,
        currency: usd(),
        reason: None,
        opened_at: chrono::Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0).unwrap(),
    }
    .into();
    let facts = given(vec![charge(24900, None), opened.clone()]);
    assert!(
        matches!(super::refund(&facts, "asked", None), Err(Refusal::Refused(m)) if m.contains("disputed (dp_1)"))
    );
    let closed: DomainEvent = payledger_events::DisputeClosed {
        payment_id: "pi_1".into(),
        dispute_id: "dp_1".into(),
        status: "won".into(),
        closed_at: chrono::Utc
            .with_ymd_and_hms(2026, 11, 20, 12, 0, 0)
            .unwrap(),
    }
    .into();
    assert!(super::refund(
        &given(vec![charge(24900, None), opened, closed]),
        "asked",
        None
    )
    .is_ok());
}

fn refund_of(events: Vec<DomainEvent>, reason: &str) -> Result<String, Refusal> {
    super::refund(&given(events), reason, None).map(|r| r.what)
}

#[test]
fn a_grant_names_a_real_address_a_real_plan_and_a_reason() {
    let by = Actor::Support("alice".into());
    let g = grant(
        &plans(),
        " Press@Example.com ",
        "annual",
        " launch ",
        &by,
        None,
        &[],
    )
    .unwrap();
    assert_eq!(
        (g.email.as_str(), g.plan.as_str(), g.reason.as_str()),
        ("press@example.com", "annual", "launch")
    );
    assert!(
        matches!(grant(&plans(), "press", "annual", "x", &by, None, &[]), Err(Refusal::Invalid(m)) if m.contains("--email"))
    );
    assert!(
        matches!(grant(&plans(), "p@example.com", "gold", "x", &by, None, &[]), Err(Refusal::Invalid(m)) if m.contains("--plan"))
    );
    assert!(
        matches!(grant(&plans(), "p@example.com", "annual", "  ", &by, None, &[]), Err(Refusal::Invalid(m)) if m.contains("--reason"))
    );
}

#[test]
fn a_grant_never_silently_replaces_paid_access() {
    let by = Actor::Support("alice".into());
    let until = chrono::Utc.with_ymd_and_hms(2027, 11, 28, 0, 0, 0).unwrap();
    let paid = CurrentAccess {
        plan: "annual".into(),
        activation: "checkout".into(),
        until,
        active: true,
    };
    match grant(
        &plans(),
        "ana@example.com",
        "annual",
        "vip",
        &by,
        Some(&paid),
        &[],
    ) {
        Err(Refusal::Refused(m)) => {
            assert!(
                m.contains("already has paid access") && m.contains("2027-11-28"),
                "{m}"
            );
            assert!(m.contains("nothing was done"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // Paid access that ended, or an earlier grant, is no obstacle.
    let ended = CurrentAccess {
        active: false,
        ..paid.clone()
    };
    assert!(grant(
        &plans(),
        "ana@example.com",
        "annual",
        "vip",
        &by,
        Some(&ended),
        &[]
    )
    .is_ok());
    let granted = CurrentAccess {
        activation: "grant".into(),
        ..paid
    };
    assert!(grant(
        &plans(),
        "ana@example.com",
        "annual-team",
        "vip",
        &by,
        Some(&granted),
        &[]
    )
    .is_ok());
}

#[test]
fn a_second_grant_of_the_same_plan_says_who_granted_it() {
    let alice = Actor::Support("alice".into());
    let first = grant(
        &plans(),
        "ana@example.com",
        "annual",
        "vip",
        &alice,
        None,
        &[],
    )
    .unwrap();
    let bob = Actor::Support("bob".into());
    match grant(
        &plans(),
        "ana@example.com",
        "annual",
        "vip",
        &bob,
        None,
        &[written(first, "support:alice", 9)],
    ) {
        Err(Refusal::Done(m)) => assert!(
            m.contains("already granted annual by support:alice at 2026-11-28 10:09 UTC"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

fn written(event: impl Into<DomainEvent>, by: &str, minute: u32) -> Written {
    Written {
        event: event.into(),
        by: by.into(),
        at: chrono::Utc
            .with_ymd_and_hms(2026, 11, 28, 10, minute, 0)
            .unwrap(),
    }
}

#[test]
fn resolving_needs_a_note_and_an_unresolved_discrepancy() {
    let by = Actor::Support("alice".into());
    assert!(matches!(
        resolve(Some(DiscrepancyStatus::Open), &[], "d1", "", &by),
        Err(Refusal::Invalid(_))
    ));
    assert!(matches!(
        resolve(None, &[], "d1", "done", &by),
        Err(Refusal::NotFound(_))
    ));
    assert!(matches!(
        resolve(Some(DiscrepancyStatus::Resolved), &[], "d1", "done", &by),
        Err(Refusal::Done(m)) if m.contains("cleared by itself")
    ));
    for open in [DiscrepancyStatus::Open, DiscrepancyStatus::Acknowledged] {
        assert_eq!(
            resolve(Some(open), &[], "d1", "refunded", &by)
                .unwrap()
                .note,
            "refunded"
        );
    }
}

#[test]
fn a_second_resolution_says_who_resolved_it_and_when_even_before_the_read_model_knows() {
    let alice = Actor::Support("alice".into());
    let first = resolve(Some(DiscrepancyStatus::Open), &[], "d1", "refunded", &alice).unwrap();
    let bob = Actor::Support("bob".into());
    // The read model still says open: the stream is what counts.
    let again = resolve(
        Some(DiscrepancyStatus::Open),
        &[written(first, "support:alice", 7)],
        "d1",
        "again",
        &bob,
    );
    match again {
        Err(Refusal::Done(m)) => {
            assert!(
                m.contains("already resolved by") && m.contains("alice"),
                "{m}"
            );
            assert!(m.contains("2026-11-28 10:07 UTC"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_resend_of_a_waiting_email_is_already_done_and_says_who_asked() {
    let by = Actor::Support("alice".into());
    let key = "confirmation:pi_1";
    assert!(matches!(
        resend(None, None, &[], key, &by),
        Err(Refusal::NotFound(_))
    ));
    assert!(matches!(
        resend(Some((key, EmailStatus::Pending, 0)), None, &[], key, &by),
        Err(Refusal::Done(_))
    ));
    let first = resend(Some((key, EmailStatus::Sent, 0)), None, &[], key, &by).unwrap();
    assert_eq!(first.email_key, key);
    // Asked, not yet sent: a second request (the read model still says
    // sent) is the same request.
    let asked = [written(first.clone(), "support:alice", 3)];
    let bob = Actor::Support("bob".into());
    match resend(Some((key, EmailStatus::Sent, 0)), None, &asked, key, &bob) {
        Err(Refusal::Done(m)) => {
            assert!(m.contains("alice") && m.contains("already asked"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // Once the resend went out, another one is a new request.
    let sent = payledger_events::EmailSent {
        email_key: key.into(),
        message_id: "<m@x>".into(),
        attempt: 1,
    };
    let answered = [
        written(first, "support:alice", 3),
        written(sent, "system:sender", 4),
    ];
    assert!(resend(
        Some((key, EmailStatus::Sent, 1)),
        None,
        &answered,
        key,
        &bob
    )
    .is_ok());
}

#[test]
fn a_receipt_whose_payment_was_refunded_is_not_sent_again() {
    let by = Actor::Support("alice".into());
    let key = "confirmation:pi_1";
    let sent = Some((key, EmailStatus::Sent, 0));
    assert!(resend(sent, Some(PaymentState::Active), &[], key, &by).is_ok());
    match resend(sent, Some(PaymentState::Refunded), &[], key, &by) {
        Err(Refusal::Refused(m)) => {
            assert!(
                m.contains("pi_1 is refunded now") && m.contains("support reply pi_1"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn auto_rescue_matches_only_a_named_exactly_priced_unrefunded_charge() {
    let m = auto_rescue(
        &given(vec![charge(24900, Some("A@example.com"))]),
        &plans(),
        false,
    )
    .unwrap();
    assert_eq!(
        (m.email.as_str(), m.plan.as_str()),
        ("a@example.com", "annual")
    );
    assert_eq!(m.matched_by, Actor::auto_rescue());
    let refused = |events, access| match auto_rescue(&given(events), &plans(), access) {
        Err(Refusal::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(refused(vec![charge(24900, None)], false).contains("no email"));
    assert!(refused(vec![charge(12345, Some("a@example.com"))], false).contains("fits no plan"));
    assert!(refused(
        vec![charge(24900, Some("a@example.com")), refund(24900)],
        false
    )
    .contains("refunded"));
    assert!(refused(vec![charge(24900, Some("a@example.com"))], true).contains("duplicate"));
    assert!(matches!(
        auto_rescue(&given(vec![]), &plans(), false),
        Err(Refusal::NotFound(_))
    ));
}
