//! Given a payment's row (and its queue entry), its situation — and the
//! promises each situation's words may make.
use super::*;
use chrono::TimeZone;
use words::Details;

fn row(state: PaymentState) -> CustomerStatusRow {
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 11, 28, 10, 0, 0)
        .unwrap();
    CustomerStatusRow {
        reference: "PL-AAAA-BBBB-CCCC-DDDD".into(),
        checkout_id: Some("c1".into()),
        payment_id: Some("pi_1".into()),
        session_id: None,
        email: Some("ana@example.com".into()),
        plan: Some("annual".into()),
        amount: Some(24900),
        currency: Some("usd".into()),
        started_at: at,
        returned_at: None,
        paid_at: Some(at),
        state,
        activation: Some("checkout".into()),
        period_end: None,
        refunded_amount: 0,
        dispute: None,
    }
}

fn situation(row: &CustomerStatusRow, open: Option<DiscrepancyKind>, minutes: i64) -> Situation {
    of_payment(&Facts {
        row,
        open,
        now: row.started_at + Duration::minutes(minutes),
        pending_window: Duration::minutes(3),
        renewal: None,
    })
}

#[test]
fn waiting_is_pending_then_not_yet_recorded_without_promising_a_person() {
    let r = row(PaymentState::AwaitingPayment);
    assert_eq!(situation(&r, None, 1), Situation::AwaitingPayment);
    assert_eq!(situation(&r, None, 10), Situation::NotYetRecorded);
    assert!(!Situation::NotYetRecorded.promises_a_person());
}

#[test]
fn an_unexplained_charge_is_confirming_then_with_a_person_only_while_queued() {
    let r = row(PaymentState::PaidUnmatched);
    let unmatched = Some(DiscrepancyKind::UnmatchedCharge);
    assert_eq!(situation(&r, unmatched, 1), Situation::PaidConfirming);
    assert_eq!(situation(&r, unmatched, 10), Situation::WithAPerson);
    // Resolved by support without a match: nobody is on it any more.
    assert_eq!(situation(&r, None, 10), Situation::PaidNotActive);
    assert!(!Situation::PaidNotActive.promises_a_person());
}

#[test]
fn a_second_charge_in_the_queue_is_a_duplicate_with_access_from_the_first() {
    let r = row(PaymentState::NeedsAttention);
    let s = situation(&r, Some(DiscrepancyKind::DuplicateCharge), 0);
    assert_eq!(s, Situation::DuplicateCharge);
    assert!(s.has_access() && s.promises_a_person());
}

#[test]
fn refunds_and_disputes_each_have_their_own_situation() {
    let mut r = row(PaymentState::Active);
    r.refunded_amount = 12000;
    assert_eq!(situation(&r, None, 0), Situation::PartiallyRefunded);
    let r = row(PaymentState::Refunded);
    assert_eq!(situation(&r, None, 0), Situation::Refunded);
    let mut r = row(PaymentState::Disputed);
    r.dispute = Some(DisputeState::Open);
    assert_eq!(situation(&r, None, 0), Situation::DisputeOpen);
    r.dispute = Some(DisputeState::Lost);
    assert_eq!(situation(&r, None, 0), Situation::DisputeLost);
    let mut r = row(PaymentState::Active);
    r.dispute = Some(DisputeState::Won);
    assert_eq!(situation(&r, None, 0), Situation::DisputeWon);
    assert!(Situation::DisputeWon.has_access());
    assert!(!Situation::DisputeOpen.has_access() && !Situation::DisputeLost.has_access());
}

#[test]
fn a_rescued_payment_is_active_after_a_delay() {
    let mut r = row(PaymentState::Active);
    r.activation = Some("rescue".into());
    assert_eq!(situation(&r, None, 0), Situation::ActiveAfterDelay);
}

fn details() -> Details {
    let (paid, refunded, net) = Details::money(Some(24900), Some("usd"), 12000);
    Details {
        reference: "PL-AAAA-BBBB-CCCC-DDDD".into(),
        plan: "One year of access".into(),
        paid,
        refunded,
        net,
        paid_on: Some("28 November 2026".into()),
        started_on: "28 November 2026".into(),
        access_until: Some("28 November 2027".into()),
        masked_email: "a***@example.com".into(),
        support_email: "help@shop.example".into(),
    }
}

#[test]
fn only_situations_in_the_queue_promise_a_person_in_any_voice() {
    let d = details();
    for s in Situation::ALL {
        let page = s.page(&d, 5);
        let all = format!(
            "{} {} {}",
            page.paragraphs.join(" "),
            s.reply(&d),
            s.email_line(&d)
        );
        let promises = all.contains("A person on our team")
            || all.contains("I am activating")
            || all.contains("a person is activating")
            || all.contains("I am refunding");
        assert_eq!(promises, s.promises_a_person(), "{}: {all}", s.name());
    }
}

#[test]
fn a_partial_refund_shows_paid_refunded_and_kept_everywhere() {
    let d = details();
    let s = Situation::PartiallyRefunded;
    let page = s.page(&d, 5);
    let rows: Vec<(&str, &str)> = page
        .receipt
        .iter()
        .map(|r| (r.label, r.value.as_str()))
        .collect();
    assert!(rows.contains(&("Amount paid", "249.00 USD")), "{rows:?}");
    assert!(rows.contains(&("Refunded", "120.00 USD")), "{rows:?}");
    assert!(rows.contains(&("Kept", "129.00 USD")), "{rows:?}");
    assert!(s.reply(&d).contains("120.00 USD") && s.reply(&d).contains("129.00 USD"));
    assert!(s.email_line(&d).contains("120.00 USD refunded"));
}

#[test]
fn words_without_a_payment_never_claim_one() {
    let d = Details {
        paid_on: None,
        ..details()
    };
    for s in [
        Situation::AwaitingPayment,
        Situation::NotYetRecorded,
        Situation::NotCompleted,
    ] {
        let reply = s.reply(&d);
        assert!(
            !reply.contains("We can see your payment"),
            "{}: {reply}",
            s.name()
        );
        assert!(!reply.contains("249.00"), "{}: {reply}", s.name());
    }
}

#[test]
fn docs_communication_md_holds_the_situations_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/communication.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start =
        "<!-- situations: generated by situation::table_markdown(); a test keeps it equal -->\n";
    let end = "<!-- /situations -->";
    let from = doc.find(start).expect("the situations markers") + start.len();
    let to = doc[from..].find(end).unwrap() + from;
    assert_eq!(
        &doc[from..to],
        table_markdown(),
        "docs/communication.md is out of date; paste situation::table_markdown() between the markers"
    );
}

#[test]
fn dates_are_in_the_configured_zone_and_the_end_of_access_agrees_with_the_api_to_the_minute() {
    // Paid at 21:16 on 27 November in New York, which is 02:16 UTC on the 28th.
    let paid = chrono::Utc
        .with_ymd_and_hms(2026, 11, 28, 2, 16, 59)
        .unwrap();
    let mut r = row(PaymentState::Active);
    r.paid_at = Some(paid);
    let plans = crate::plans::Plans::default();
    let ctx = |zone| load::Context {
        plans: &plans,
        support_email: "help@shop.example",
        now: paid,
        pending_window: Duration::minutes(3),
        zone,
    };
    let end = paid + Duration::days(365);
    let ny = load::details(&r, Some(end), &ctx(chrono_tz::America::New_York));
    assert_eq!(ny.paid_on.as_deref(), Some("27 November 2026"));
    assert_eq!(
        ny.access_until.as_deref(),
        Some("27 November 2027, 21:16 EST")
    );
    let utc = load::details(&r, Some(end), &ctx(chrono_tz::UTC));
    assert_eq!(utc.paid_on.as_deref(), Some("28 November 2026"));
    assert_eq!(
        utc.access_until.as_deref(),
        Some("28 November 2027, 02:16 UTC")
    );
}

#[test]
fn texts_say_what_is_true_now_and_read_as_sentences() {
    let d = details();
    let page = Situation::Active.page(&d, 5);
    let active = format!("{} {}", page.paragraphs.join(" "), page.next.join(" "));
    // Not "your One year of access is active", and not an email "on its
    // way" on a page that is read for a year.
    assert!(!active.contains("your One year of access"), "{active}");
    assert!(!active.contains("on its way"), "{active}");
    // A rescued customer got the rescue email before support replies.
    let rescued = Situation::ActiveAfterDelay.reply(&d);
    assert!(!rescued.contains("You will also get an email"), "{rescued}");
}

#[test]
fn a_renewing_plan_s_payment_says_where_its_subscription_stands() {
    use super::Renewal;
    use payledger_projections::states::SubscriptionStatus as S;
    let active = row(PaymentState::Active);
    let of = |status, late| {
        of_payment(&Facts {
            row: &active,
            open: None,
            now: active.started_at,
            pending_window: Duration::minutes(3),
            renewal: Some(Renewal { status, late }),
        })
    };
    assert_eq!(of(S::PastDue, false), Situation::PastDue);
    assert_eq!(of(S::Canceled, false), Situation::Canceled);
    assert_eq!(of(S::Ended, false), Situation::Ended);
    assert_eq!(of(S::Active, true), Situation::RenewalNotApplied);
    assert_eq!(of(S::Active, false), Situation::Active);
    // Access: kept while the processor retries and until a cancellation's end.
    assert!(Situation::PastDue.has_access() && Situation::Canceled.has_access());
    assert!(!Situation::Ended.has_access());
    // The customer who can fix it is shown how.
    assert!(Situation::PastDue.page(&details(), 5).update_card);
}
