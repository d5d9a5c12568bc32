//! The sender killed with SIGKILL at random moments while 1,500 emails are
//! due: every email is delivered at least once, and a duplicate is only
//! possible in the window between the SMTP server's acceptance and the
//! `EmailSent` commit — so a kill duplicates at most as many emails as one
//! sender has in flight (`PAYLEDGER_MAIL_CONCURRENCY`, one per recipient).

use crate::common::ledger::*;
use crate::common::smtp::SmtpSink;
use crate::common::*;
use rand::Rng;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use uuid::Uuid;

const EMAILS: usize = 1500;

fn spawn_worker(t: &TestDb, sink: &SmtpSink) -> Child {
    Command::new(env!("CARGO_BIN_EXE_payledger"))
        .arg("work")
        .env("DATABASE_URL", &t.url)
        .env("SMTP_URL", sink.url())
        .env("PAYLEDGER_MAIL_FROM", "payments@shop.example")
        .env("PAYLEDGER_MAIL_LEASE", "2s")
        .env("PAYLEDGER_MAIL_BACKOFF", "1s")
        .env("PAYLEDGER_RECONCILE_EVERY", "off")
        .env_remove("PAYLEDGER_PLANS")
        .env_remove("PAYLEDGER_SUPPORT_EMAIL")
        .env_remove("PAYLEDGER_ALERT_WEBHOOK")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn payledger work")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_killed_twenty_times_delivers_every_email_with_duplicates_only_from_kills() {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    let mut history = vec![];
    for i in 0..EMAILS {
        let checkout = Uuid::new_v4();
        let email = format!("crash{i}@example.com");
        history.push(checkout_started(checkout, &email, 24900));
        history.push(charge(
            &format!("pi_crash_{i}"),
            Some(checkout),
            Some(&email),
            24900,
            0,
        ));
    }
    append_batched(&store, history, 200).await;
    // The outbox is full before the first worker starts: every life of the
    // worker goes straight to sending.
    project_everything(&t.db.pool).await;

    let mut kills = 0;
    let mut kills_while_due = 0;
    let mut rng = rand::rng();
    while kills < 25 && sink.received().len() < EMAILS {
        let mut worker = spawn_worker(&t, &sink);
        let ms = rng.random_range(200..900);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        let due = sink.received().len() < EMAILS;
        let _ = worker.kill();
        let _ = worker.wait();
        kills += 1;
        if due {
            kills_while_due += 1;
        }
    }
    let before_last_run = sink.received().len();
    // A last, uninterrupted run finishes whatever is left (after any lease
    // a killed sender held has expired).
    let mut worker = spawn_worker(&t, &sink);
    let done = eventually(90, || async {
        count_events(&t, "EmailSent").await >= EMAILS as i64
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(done, "every email recorded as sent");

    let mut per_message: BTreeMap<String, usize> = BTreeMap::new();
    for m in sink.received() {
        *per_message
            .entry(m.header("Message-ID").unwrap())
            .or_default() += 1;
    }
    let delivered = per_message.len();
    let duplicates: usize = per_message.values().map(|n| n - 1).sum();
    eprintln!(
        "email crash test: {EMAILS} emails, {kills} kills ({kills_while_due} while emails were due), {before_last_run} received before the last uninterrupted run, {delivered} distinct delivered, {duplicates} duplicates"
    );
    assert!(
        kills_while_due >= 20,
        "only {kills_while_due} kills landed while emails were due"
    );
    assert_eq!(delivered, EMAILS, "every email delivered at least once");
    let in_flight = payledger::reactors::sender::SenderConfig::default().concurrency;
    assert!(
        duplicates <= kills_while_due * in_flight,
        "{duplicates} duplicates > {kills_while_due} kills × {in_flight} emails in flight"
    );
}
