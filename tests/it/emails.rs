//! The email sender and auto-rescue against real PostgreSQL and a real SMTP
//! server (aiosmtpd), reading what the server received.

use crate::common::ledger::*;
use crate::common::shop::PLANS;
use crate::common::smtp::SmtpSink;
use crate::common::*;
use payledger::clock::ManualClock;
use payledger::plans::Plans;
use payledger::reactors::mail::Mailer;
use payledger::reactors::rescue::rescue_due;
use payledger::reactors::sender::{send_due, SenderConfig};
use payledger::store::PgEventStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

fn mailer(sink: &SmtpSink) -> Mailer {
    Mailer::smtp(&sink.url(), "payments@shop.example".parse().unwrap()).unwrap()
}

fn config() -> SenderConfig {
    SenderConfig {
        first_backoff: chrono::Duration::milliseconds(100),
        max_backoff: chrono::Duration::milliseconds(500),
        max_attempts: 5,
        public_url: "https://shop.example".into(),
        support_email: "help@shop.example".into(),
        plans: Plans::parse(PLANS, "test").unwrap(),
        batch: 50,
        ..Default::default()
    }
}

fn paid_checkout(
    email: &str,
    payment: &str,
) -> Vec<(payledger_events::StreamId, payledger_events::EventData)> {
    let checkout = Uuid::new_v4();
    vec![
        checkout_started(checkout, email, 24900),
        charge(payment, Some(checkout), Some(email), 24900, 0),
    ]
}

/// Sends until nothing is due or `secs` pass.
async fn send_all(
    store: &PgEventStore,
    mailer: &Mailer,
    config: &SenderConfig,
    expected: usize,
    sink: &SmtpSink,
    secs: u64,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while sink.received().len() < expected && std::time::Instant::now() < deadline {
        project_everything(store.pool()).await;
        send_due(store, mailer, config).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matched_charge_gets_exactly_one_confirmation_with_the_receipt() {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    append(&store, paid_checkout("ann@example.com", "pi_ann")).await;
    project_everything(&t.db.pool).await;
    let first = send_due(&store, &mailer(&sink), &config()).await.unwrap();
    assert_eq!(first.sent, 1);
    let receipt = sink.received()[0].text();
    assert!(
        !receipt.contains("(one year)") && !receipt.contains("your One year of access is active"),
        "{receipt}"
    );
    project_everything(&t.db.pool).await;
    let again = send_due(&store, &mailer(&sink), &config()).await.unwrap();
    assert_eq!(again.sent, 0, "sent once, never twice");

    let got = sink.received();
    assert_eq!(got.len(), 1);
    let mail = &got[0];
    assert_eq!(mail.to, "ann@example.com");
    let body = mail.text();
    for needle in [
        "249.00 USD",
        "1 March 2026",
        "PL-",
        "One year of access",
        "Access until",
        "https://shop.example/status/PL-",
    ] {
        assert!(body.contains(needle), "{needle:?} missing from {body}");
    }
    assert_eq!(
        mail.header("Reply-To").as_deref(),
        Some("help@shop.example")
    );
    assert!(mail
        .header("Message-ID")
        .unwrap()
        .ends_with("@shop.example>"));
    assert_eq!(count_events(&t, "EmailSent").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_with_an_email_and_a_plan_price_is_rescued_after_the_grace_period_with_one_rescue_email(
) {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    let plans = Plans::parse(PLANS, "test").unwrap();
    append(
        &store,
        vec![charge(
            "pi_orphan",
            None,
            Some("orphan@example.com"),
            24900,
            0,
        )],
    )
    .await;
    project_everything(&t.db.pool).await;

    let grace = chrono::Duration::minutes(2);
    let early = rescue_due(&store, &plans, grace).await.unwrap();
    assert!(
        early.matched.is_empty(),
        "the normal path gets its grace period"
    );
    let later = PgEventStore::new(
        t.db.pool.clone(),
        Arc::new(ManualClock::new(
            chrono::Utc::now() + chrono::Duration::minutes(3),
        )),
    );
    let rescued = rescue_due(&later, &plans, grace).await.unwrap();
    assert_eq!(rescued.matched, vec!["pi_orphan".to_string()]);
    let actor: String = t
        .client()
        .await
        .query_one(
            "SELECT metadata->>'actor' FROM events WHERE event_type = 'ChargeMatched'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(actor, "system:auto-rescue");

    send_all(&store, &mailer(&sink), &config(), 1, &sink, 10).await;
    project_everything(&t.db.pool).await;
    send_due(&store, &mailer(&sink), &config()).await.unwrap();
    let got = sink.received();
    assert_eq!(got.len(), 1, "exactly one email");
    let body = got[0].text();
    assert!(body.contains("a fault on our side"), "{body}");
    assert!(body.contains("We are sorry"));
    assert!(got[0]
        .header("Subject")
        .unwrap()
        .contains("Your account is active"));
    let kinds: Vec<String> = t
        .client()
        .await
        .query("SELECT kind FROM outgoing_emails", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        kinds,
        vec!["rescue_confirmation".to_string()],
        "no plain confirmation"
    );
    let status: String = t
        .client()
        .await
        .query_one(
            "SELECT status FROM discrepancies WHERE id = 'unmatched_charge:pi_orphan'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_orphans_are_left_for_a_person() {
    let t = TestDb::new().await;
    let store = t.store();
    let two_plans = Plans::parse(
        &format!("{PLANS}\n[[plan]]\nid = \"annual-eu\"\nname = \"EU\"\namount = 24900\ncurrency = \"usd\"\nperiod = \"year\"\n"),
        "test",
    )
    .unwrap();
    let one_plan = Plans::parse(PLANS, "test").unwrap();
    let mut history = paid_checkout("dup@example.com", "pi_first");
    history.extend([
        charge("pi_noemail", None, None, 24900, 1),
        charge("pi_odd", None, Some("odd@example.com"), 1234, 2),
        charge("pi_dup", None, Some("dup@example.com"), 24900, 3),
        charge("pi_two", None, Some("two@example.com"), 24900, 4),
    ]);
    append(&store, history).await;
    project_everything(&t.db.pool).await;

    let report = rescue_due(&store, &one_plan, chrono::Duration::zero())
        .await
        .unwrap();
    let left: BTreeMap<String, String> = report.left.into_iter().collect();
    assert!(left["pi_noemail"].contains("no email"));
    assert!(left["pi_odd"].contains("fits no plan"));
    assert!(left["pi_dup"].contains("possibly a duplicate"));
    assert_eq!(report.matched, vec!["pi_two".to_string()]);

    let ambiguous = rescue_due(&store, &two_plans, chrono::Duration::zero())
        .await
        .unwrap();
    assert!(ambiguous.left.iter().all(|(_, why)| !why.is_empty()));
    let t2 = TestDb::new().await;
    let store2 = t2.store();
    append(
        &store2,
        vec![charge("pi_two", None, Some("two@example.com"), 24900, 4)],
    )
    .await;
    project_everything(&t2.db.pool).await;
    let report = rescue_due(&store2, &two_plans, chrono::Duration::zero())
        .await
        .unwrap();
    assert!(report.matched.is_empty());
    assert!(
        report.left[0].1.contains("fits 2 plans"),
        "{:?}",
        report.left
    );
    assert_eq!(count_events(&t2, "ChargeMatched").await, 0);
    assert_eq!(
        count_events(&t, "ChargeMatched").await,
        1,
        "only the unambiguous one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_smtp_down_emails_are_retried_and_all_delivered_once_it_is_back() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut sink = SmtpSink::start().await;
    sink.stop();
    let mut history = vec![];
    for i in 0..10 {
        history.extend(paid_checkout(
            &format!("c{i}@example.com"),
            &format!("pi_{i}"),
        ));
    }
    append(&store, history).await;
    project_everything(&t.db.pool).await;
    let down = send_due(&store, &mailer(&sink), &config()).await.unwrap();
    assert_eq!((down.sent, down.failed, down.given_up), (0, 10, 0));
    let permanent: i64 = t
        .client()
        .await
        .query_one("SELECT count(*) FROM events WHERE event_type = 'EmailFailed' AND (payload->>'permanent')::boolean", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(permanent, 0, "a server that is down is a transient failure");

    sink.resume().await;
    send_all(&store, &mailer(&sink), &config(), 10, &sink, 20).await;
    project_everything(&t.db.pool).await;
    send_due(&store, &mailer(&sink), &config()).await.unwrap();
    let got = sink.received();
    let recipients: std::collections::BTreeSet<String> = got.iter().map(|m| m.to.clone()).collect();
    assert_eq!(got.len(), 10, "none lost, none doubled");
    assert_eq!(recipients.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_address_is_given_up_and_opens_email_undeliverable() {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    append(&store, paid_checkout("refuse-me@example.com", "pi_refused")).await;
    project_everything(&t.db.pool).await;
    let report = send_due(&store, &mailer(&sink), &config()).await.unwrap();
    assert_eq!(report.given_up, 1);
    project_everything(&t.db.pool).await;
    let status: String = t
        .client()
        .await
        .query_one(
            "SELECT status FROM discrepancies WHERE kind = 'email_undeliverable'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "open");
    let again = send_due(&store, &mailer(&sink), &config()).await.unwrap();
    assert_eq!(
        again,
        Default::default(),
        "given up: not tried again until a resend"
    );
    assert!(sink.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_senders_at_once_never_send_the_same_row() {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    let mut history = vec![];
    for i in 0..100 {
        history.extend(paid_checkout(
            &format!("two{i}@example.com"),
            &format!("pi_two_{i}"),
        ));
    }
    append_batched(&store, history, 100).await;
    project_everything(&t.db.pool).await;
    let senders = (0..2).map(|n| {
        let (store, mailer) = (store.clone(), mailer(&sink));
        let config = SenderConfig {
            worker_id: format!("sender-{n}"),
            batch: 5,
            ..config()
        };
        tokio::spawn(async move {
            let mut sent = 0;
            loop {
                let r = send_due(&store, &mailer, &config).await.unwrap();
                if r.sent == 0 {
                    return sent;
                }
                sent += r.sent;
            }
        })
    });
    let counts: Vec<u32> = futures_util::future::join_all(senders)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u32>(), 100, "{counts:?}");
    assert!(
        counts.iter().all(|c| *c > 0),
        "both senders took part: {counts:?}"
    );
    let ids: std::collections::BTreeSet<String> = sink
        .received()
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    assert_eq!(sink.received().len(), 100);
    assert_eq!(ids.len(), 100, "no row was sent by both");
}

/// Issue 14, defect 2(d): a receipt that would say "your  is active" is
/// not sent; it fails naming what is missing, and support sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_missing_its_fields_is_never_sent_and_opens_a_discrepancy() {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    project_everything(&t.db.pool).await;
    // The read model the receipt is written from stops (as a panicking rule
    // once stopped it): the outbox asks for the email, the row is missing.
    t.client()
        .await
        .execute(
            "UPDATE projection_state SET status = 'stopped' WHERE name = 'customer_status'",
            &[],
        )
        .await
        .unwrap();
    append(&store, paid_checkout("blank@example.com", "pi_blank")).await;
    project_everything(&t.db.pool).await;
    let config = SenderConfig {
        max_attempts: 1,
        ..config()
    };
    let report = send_due(&store, &mailer(&sink), &config).await.unwrap();
    assert_eq!(report.given_up, 1, "{report:?}");
    assert!(sink.received().is_empty(), "a blank receipt was sent");
    let error: String = t
        .client()
        .await
        .query_one(
            "SELECT payload->>'error' FROM events WHERE event_type = 'EmailFailed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        error.contains("missing its") && error.contains("reference"),
        "{error}"
    );
    project_everything(&t.db.pool).await;
    let open: i64 = t
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM discrepancies WHERE kind = 'email_undeliverable' AND status = 'open'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 1);
}

/// The outbox can ask for a receipt before customer_status has the row it
/// is written from — they run in lockstep, but not while customer_status,
/// left behind, is rebuilt to rejoin: that is not a failure (no
/// EmailFailed, no attempt spent); it is sent once the row is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_asked_for_before_its_row_is_projected_waits_without_failing() {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    project_everything(&t.db.pool).await;
    t.client()
        .await
        .execute(
            "UPDATE projection_state SET status = 'stopped' WHERE name = 'customer_status'",
            &[],
        )
        .await
        .unwrap();
    append(&store, paid_checkout("early@example.com", "pi_early")).await;
    // Every projection but customer_status catches up — until the outbox
    // shows the receipt: another test's open transaction can make the
    // gap-safe order hold the new events back for a moment.
    let caught_up = eventually(30, || async {
        project_everything(&t.db.pool).await;
        let owed: i64 = t
            .client()
            .await
            .query_one("SELECT count(*) FROM outgoing_emails", &[])
            .await
            .unwrap()
            .get(0);
        owed > 0
    })
    .await;
    assert!(caught_up, "the receipt reached the outbox");
    // Running again but behind the group, as while a restart rebuilds it
    // to rejoin.
    t.client()
        .await
        .execute(
            "UPDATE projection_state SET status = 'running' WHERE name = 'customer_status'",
            &[],
        )
        .await
        .unwrap();
    let early = send_due(&store, &mailer(&sink), &config()).await.unwrap();
    assert_eq!(
        (early.sent, early.failed, early.deferred),
        (0, 0, 1),
        "{early:?}"
    );
    assert_eq!(count_events(&t, "EmailFailed").await, 0);
    let attempts: i32 = t
        .client()
        .await
        .query_one("SELECT attempts FROM email_deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 0, "waiting spent no attempt");

    // A restart rebuilds it into the group, at the group's checkpoint.
    payledger_projections::runner::resume_stopped(&t.db.pool)
        .await
        .unwrap();
    project_everything(&t.db.pool).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let later = send_due(&store, &mailer(&sink), &config()).await.unwrap();
    assert_eq!(later.sent, 1, "{later:?}");
    assert!(
        sink.received()[0].text().contains("PL-"),
        "with its reference"
    );
    assert_eq!(count_events(&t, "EmailFailed").await, 0);
}

/// A dispute is news the customer must hear from us: when it opens (what
/// it means, that access is paused), and how it ended (won: access back;
/// lost: access ended) — once each, with the amount and reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispute_is_told_to_the_customer_when_it_opens_and_when_it_ends() {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    append(&store, paid_checkout("dee@example.com", "pi_dee")).await;
    append(&store, vec![dispute_opened("pi_dee", "dp_dee")]).await;
    send_all(&store, &mailer(&sink), &config(), 2, &sink, 10).await;
    append(&store, vec![dispute_closed("pi_dee", "dp_dee", "lost")]).await;
    send_all(&store, &mailer(&sink), &config(), 3, &sink, 10).await;
    project_everything(&t.db.pool).await;
    send_due(&store, &mailer(&sink), &config()).await.unwrap();
    let subjects: Vec<String> = sink
        .received()
        .iter()
        .map(|m| m.header("Subject").unwrap())
        .collect();
    assert_eq!(subjects.len(), 3, "once each: {subjects:?}");
    for said in [
        "Your receipt",
        "Your bank is disputing your payment of 249.00 USD",
        "Your bank returned your payment of 249.00 USD",
    ] {
        assert!(
            subjects.iter().any(|s| s.contains(said)),
            "{said}: {subjects:?}"
        );
    }
    let received = sink.received();
    let opened = received
        .iter()
        .find(|m| m.header("Subject").unwrap().contains("disputing"))
        .unwrap();
    assert!(opened.text().contains("paused"), "{}", opened.text());
    assert!(opened.text().contains("PL-"), "{}", opened.text());
}

/// Refunding a duplicate charge: the refund email says the customer's
/// access goes on from their other payment, so they do not think they lost it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refund_of_a_duplicate_says_access_continues_from_the_other_payment() {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    let checkout = Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "twice@example.com", 24900),
            charge(
                "pi_one",
                Some(checkout),
                Some("twice@example.com"),
                24900,
                0,
            ),
            charge(
                "pi_two",
                Some(checkout),
                Some("twice@example.com"),
                24900,
                1,
            ),
        ],
    )
    .await;
    append(&store, vec![refunded("pi_two", "re_two", 24900)]).await;
    send_all(&store, &mailer(&sink), &config(), 2, &sink, 10).await;
    let received = sink.received();
    let refund = received
        .iter()
        .find(|m| m.header("Subject").unwrap().contains("refund"))
        .expect("a refund email");
    assert!(
        refund.text().contains("Your access continues until")
            && refund.text().contains("from your other payment"),
        "{}",
        refund.text()
    );
}
