//! The support desk and the auditor's desk, through the real CLI, against
//! real PostgreSQL, the simulator and an SMTP server.

use crate::common::ledger::*;
use crate::common::shop::PLANS;
use crate::common::smtp::SmtpSink;
use crate::common::*;
use payledger::reactors::mail::Mailer;
use payledger::reactors::sender::{send_due, SenderConfig};
use std::process::Output;

struct Desk {
    url: String,
    plans_file: std::path::PathBuf,
    sim_base: Option<String>,
}

impl Desk {
    fn new(t: &TestDb, sim_base: Option<String>) -> Desk {
        let plans_file = std::env::temp_dir().join(format!("plans-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&plans_file, PLANS).unwrap();
        Desk {
            url: t.url.clone(),
            plans_file,
            sim_base,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"));
        c.args(args)
            .env("DATABASE_URL", &self.url)
            .env("PAYLEDGER_PLANS", &self.plans_file)
            .env_remove("PAYLEDGER_ACTOR")
            .env("RUST_LOG", "error")
            .stdin(std::process::Stdio::null());
        match &self.sim_base {
            Some(b) => c
                .env("STRIPE_API_BASE", b)
                .env("STRIPE_API_KEY", "sk_test_desk"),
            None => c.env_remove("STRIPE_API_KEY"),
        };
        c.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Fails with exactly one line naming the problem.
    fn refused(&self, args: &[&str], says: &str) {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(says), "{says:?} not in {err}");
    }
}

fn sender_config() -> SenderConfig {
    SenderConfig {
        public_url: "https://shop.example".into(),
        support_email: "help@shop.example".into(),
        plans: payledger::plans::Plans::parse(PLANS, "test").unwrap(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_story_from_supports_side() {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    let mailer = Mailer::smtp(&sink.url(), "payments@shop.example".parse().unwrap()).unwrap();
    // The orphan: charged, no checkout recorded, and (say) auto-rescue off.
    append(
        &store,
        vec![charge("pi_seed", None, Some("seed@example.com"), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    let desk = Desk::new(&t, None);

    let queue: serde_json::Value =
        serde_json::from_str(&desk.ok(&["support", "queue", "--json"])).unwrap();
    assert_eq!(queue[0]["kind"], "unmatched_charge");
    assert_eq!(
        queue[0]["command"],
        "payledger support rescue pi_seed --email seed@example.com --plan annual --as NAME"
    );
    let found = desk.ok(&["support", "find", "seed@example.com"]);
    assert!(found.contains("subscription: none"), "{found}");
    assert!(
        found.contains("pi_seed") && found.contains("249.00 USD"),
        "{found}"
    );

    let rescued = desk.ok(&["support", "rescue", "pi_seed", "--as", "alice", "--yes"]);
    assert!(rescued.contains("done: match payment pi_seed"), "{rescued}");
    project_everything(&t.db.pool).await;
    send_due(&store, &mailer, &sender_config()).await.unwrap();
    let status: String = t
        .client()
        .await
        .query_one(
            "SELECT status FROM subscriptions WHERE email = 'seed@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "active");
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert!(got[0]
        .header("Subject")
        .unwrap()
        .contains("Your account is active"));
    let d: String = t
        .client()
        .await
        .query_one(
            "SELECT status FROM discrepancies WHERE id = 'unmatched_charge:pi_seed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(d, "resolved");
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
    assert_eq!(actor, "support:alice");

    let again = desk.ok(&["support", "rescue", "pi_seed", "--as", "alice", "--yes"]);
    assert!(again.contains("already matched"), "{again}");
    assert_eq!(
        count_events(&t, "ChargeMatched").await,
        1,
        "changes nothing"
    );

    let reply = desk.ok(&["support", "reply", "seed@example.com", "--sign", "Alice"]);
    assert!(
        reply.contains("a fault on our side")
            && reply.contains("249.00 USD")
            && reply.contains("PL-"),
        "{reply}"
    );

    // As of before the rescue, and after.
    let before = chrono::Utc::now() - chrono::Duration::hours(1);
    let past: serde_json::Value = serde_json::from_str(&desk.ok(&[
        "audit",
        "as-of",
        &before.to_rfc3339(),
        "subscriptions",
        "--json",
    ]))
    .unwrap();
    assert_eq!(past.as_array().unwrap().len(), 0);
    let now = chrono::Utc::now() + chrono::Duration::seconds(5);
    let present: serde_json::Value = serde_json::from_str(&desk.ok(&[
        "audit",
        "as-of",
        &now.to_rfc3339(),
        "subscriptions",
        "--json",
    ]))
    .unwrap();
    assert_eq!(present[0]["email"], "seed@example.com");
    assert_eq!(present[0]["activation"], "rescue");
    assert!(desk
        .ok(&["audit", "invariants"])
        .contains("OK: no violations"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunding_twice_refunds_once_with_one_email() {
    let t = TestDb::new().await;
    let store = t.store();
    let sink = SmtpSink::start().await;
    let mailer = Mailer::smtp(&sink.url(), "payments@shop.example".parse().unwrap()).unwrap();
    let (sim, sim_base) = start_sim(None, 51).await;
    let checkout = uuid::Uuid::new_v4();
    append(
        &store,
        vec![checkout_started(checkout, "ref@example.com", 24900)],
    )
    .await;
    let paid = sim_charge(&sim_base, serde_json::json!({"email": "ref@example.com", "amount": 24900, "currency": "usd", "client_reference_id": checkout.to_string()})).await;
    let pi = paid["payment_intent_id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now();
    payledger::reconcile::reconcile(
        &store,
        &processor_client(&sim_base),
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
        false,
    )
    .await
    .unwrap();
    project_everything(&t.db.pool).await;
    send_due(&store, &mailer, &sender_config()).await.unwrap();

    let desk = Desk::new(&t, Some(sim_base.clone()));
    for _ in 0..2 {
        desk.ok(&[
            "support",
            "refund",
            &pi,
            "--reason",
            "customer asked",
            "--as",
            "bob",
            "--yes",
        ]);
    }
    assert_eq!(sim.lock().refunds.len(), 1, "one refund at the processor");
    desk.refused(
        &[
            "support", "refund", "pi_nope", "--reason", "x", "--as", "bob", "--yes",
        ],
        "payment pi_nope is unknown",
    );
    assert_eq!(count_events(&t, "ChargeRefunded").await, 1);
    project_everything(&t.db.pool).await;
    send_due(&store, &mailer, &sender_config()).await.unwrap();
    let status: String = t
        .client()
        .await
        .query_one(
            "SELECT status FROM subscriptions WHERE email = 'ref@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "refunded");
    let refunds: Vec<_> = sink
        .received()
        .into_iter()
        .filter(|m| m.header("Subject").unwrap().contains("refund"))
        .collect();
    assert_eq!(refunds.len(), 1, "one refund email");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_by_every_key_finds_the_same_customer_and_bad_input_is_one_line() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = uuid::Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "keys@example.com", 24900),
            charge(
                "pi_keys",
                Some(checkout),
                Some("keys@example.com"),
                24900,
                0,
            ),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    let reference: String = t
        .client()
        .await
        .query_one(
            "SELECT reference FROM customer_status WHERE payment_id = 'pi_keys'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let desk = Desk::new(&t, None);
    for key in [
        "keys@example.com",
        "pi_keys",
        &checkout.to_string(),
        &reference,
    ] {
        let c: serde_json::Value =
            serde_json::from_str(&desk.ok(&["support", "find", key, "--json"])).unwrap();
        assert_eq!(c["email"], "keys@example.com", "by {key}");
        assert_eq!(c["subscription"]["status"], "active");
    }
    desk.refused(
        &["support", "find", "nobody@example.com"],
        "nothing matches",
    );
    desk.refused(
        &["support", "find", "pi_unknown"],
        "nothing matches \"pi_unknown\"",
    );
    desk.refused(
        &["support", "find", "not an email@"],
        "not an email address",
    );
    desk.refused(&["support", "rescue", "pi_keys", "--yes"], "--as NAME");
    desk.refused(
        &["support", "rescue", "pi_nope", "--as", "alice", "--yes"],
        "payment pi_nope is unknown",
    );
    desk.refused(
        &[
            "support", "refund", "pi_nope", "--reason", "x", "--as", "alice", "--yes",
        ],
        "not configured",
    );
    desk.refused(
        &[
            "support",
            "resolve",
            "unmatched_charge:none",
            "--note",
            "x",
            "--as",
            "alice",
        ],
        "no discrepancy",
    );
    desk.refused(
        &[
            "support", "grant", "--email", "bad", "--plan", "annual", "--reason", "x", "--as",
            "alice",
        ],
        "not an email address",
    );
    desk.refused(
        &[
            "support",
            "resend-email",
            "confirmation:pi_none",
            "--as",
            "alice",
        ],
        "no email is known",
    );
    assert_eq!(
        count_events(&t, "ChargeMatched").await
            + count_events(&t, "DiscrepancyResolved").await
            + count_events(&t, "SubscriptionGranted").await,
        0,
        "nothing appended"
    );

    // Resolving twice: the second changes nothing and says who did it.
    append(&store, vec![charge("pi_lone", None, None, 100, 1)]).await;
    project_everything(&t.db.pool).await;
    desk.ok(&[
        "support",
        "resolve",
        "unmatched_charge:pi_lone",
        "--note",
        "test charge",
        "--as",
        "alice",
    ]);
    project_everything(&t.db.pool).await;
    let again = desk.ok(&[
        "support",
        "resolve",
        "unmatched_charge:pi_lone",
        "--note",
        "again",
        "--as",
        "bob",
    ]);
    assert!(
        again.contains("already resolved by support:alice"),
        "{again}"
    );
    assert_eq!(count_events(&t, "DiscrepancyResolved").await, 1);
    // A grant is shown as a grant.
    desk.ok(&[
        "support",
        "grant",
        "--email",
        "friend@example.com",
        "--plan",
        "annual",
        "--reason",
        "press",
        "--as",
        "alice",
    ]);
    project_everything(&t.db.pool).await;
    let activation: String = t
        .client()
        .await
        .query_one(
            "SELECT activation FROM subscriptions WHERE email = 'friend@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(activation, "grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_fail_when_a_charge_has_no_read_model_effect() {
    let t = TestDb::new().await;
    let store = t.store();
    append(
        &store,
        vec![charge("pi_before", None, Some("x@example.com"), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    let desk = Desk::new(&t, None);
    assert!(desk.ok(&["audit", "invariants"]).contains("OK"));
    // A stuck projection: the charge is in the log, nothing downstream knows.
    append(
        &store,
        vec![charge("pi_stuck", None, Some("y@example.com"), 24900, 1)],
    )
    .await;
    let out = desk.run(&["audit", "invariants", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = report["violations"].as_array().unwrap();
    assert!(
        v.iter()
            .any(|v| v["guarantee"] == 2 && v["subject"] == "pi_stuck"),
        "{v:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_streams_as_valid_json_and_csv() {
    let t = TestDb::new().await;
    let store = t.store();
    append_batched(&store, mixed_history(300), 100).await;
    let desk = Desk::new(&t, None);
    let json: serde_json::Value =
        serde_json::from_str(&desk.ok(&["audit", "log", "--json"])).unwrap();
    let total = count_events(&t, "ChargeSucceeded").await;
    assert!(json.as_array().unwrap().len() > 300);
    let charges: serde_json::Value =
        serde_json::from_str(&desk.ok(&["audit", "log", "--type", "ChargeSucceeded", "--json"]))
            .unwrap();
    assert_eq!(charges.as_array().unwrap().len() as i64, total);
    let csv = desk.ok(&["audit", "log", "--csv"]);
    assert_eq!(
        csv.lines().count(),
        json.as_array().unwrap().len() + 1,
        "a header and one line per event"
    );
    assert!(csv.starts_with("position,transaction_id,recorded_at"));
}

/// Runs a command, reads its first line and closes the pipe (as `head -1`
/// does); the command must end with success and say nothing.
fn first_line_then_close(t: &TestDb, args: &[&str]) -> String {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .args(args)
        .env("DATABASE_URL", &t.url)
        .env_remove("PAYLEDGER_PLANS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    first
}

#[tokio::test]
async fn output_piped_into_head_ends_quietly_and_successfully() {
    let t = TestDb::new().await;
    append_batched(&t.store(), mixed_history(2000), 500).await;
    project_everything(&t.db.pool).await;
    // Both well past a pipe's 64 KiB buffer, so the writer sees it close.
    let csv = first_line_then_close(&t, &["audit", "log", "--csv"]);
    assert!(csv.starts_with("position,"), "{csv}");
    let queue = first_line_then_close(&t, &["support", "queue", "--all"]);
    assert!(!queue.trim().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_role_reads_and_postgres_refuses_it_any_append() {
    let t = TestDb::new().await;
    let store = t.store();
    append(
        &store,
        vec![charge("pi_aud", None, Some("a@example.com"), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    let auditor_url = t
        .url
        .replacen("postgres://postgres@", "postgres://payledger_auditor@", 1);
    let desk = Desk {
        url: auditor_url.clone(),
        ..Desk::new(&t, None)
    };
    assert!(desk.ok(&["audit", "log", "--json"]).contains("pi_aud"));
    assert!(
        desk.ok(&["audit", "verify"]).to_lowercase().contains("ok")
            || desk.run(&["audit", "verify"]).status.success()
    );
    let asof = desk.ok(&[
        "audit",
        "as-of",
        &(chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339(),
        "discrepancies",
        "--json",
    ]);
    assert!(asof.contains("unmatched_charge:pi_aud"), "{asof}");
    // The auditor's replay prints exactly what the application's does.
    let admin = Desk::new(&t, None);
    let at = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339();
    for model in ["discrepancies", "subscriptions"] {
        assert_eq!(
            desk.ok(&["audit", "as-of", &at, model, "--json"]),
            admin.ok(&["audit", "as-of", &at, model, "--json"]),
            "{model}"
        );
    }
    // It may create nothing, temporary tables included.
    let (auditor, conn) = tokio_postgres::connect(&auditor_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let refused = auditor
        .batch_execute("CREATE TEMP TABLE scratch (x int)")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("permission denied")
            || refused
                .as_db_error()
                .is_some_and(|e| e.message().contains("permission denied")),
        "{refused}"
    );
    let out = desk.run(&[
        "support",
        "resolve",
        "unmatched_charge:pi_aud",
        "--note",
        "x",
        "--as",
        "mallory",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied") || err.contains("insufficient"),
        "{err}"
    );
    assert_eq!(count_events(&t, "DiscrepancyResolved").await, 0);
}

/// Issue 14, defect 8: customer data inside the commands staff paste is
/// quoted, so the shell passes it through unchanged and runs nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_the_queue_prints_is_safe_to_paste_into_a_shell() {
    let t = TestDb::new().await;
    let hostile = "a$({touch,pwned})`touch pwned2`;touch pwned3|x&@x.com";
    append(
        &t.store(),
        vec![charge("pi_hostile", None, Some(hostile), 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    let desk = Desk::new(&t, None);
    let queue = desk.ok(&["support", "queue"]);
    let run = queue
        .lines()
        .find_map(|l| l.trim().strip_prefix("run: "))
        .unwrap_or_else(|| panic!("no run line: {queue}"))
        .to_string();
    let dir = std::env::temp_dir().join(format!("paste-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    // The pasted command with `payledger` swapped for a printer of its
    // arguments, one per line.
    let pasted = run.replacen("payledger ", "printf '%s\\n' ", 1);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&pasted)
        .current_dir(&dir)
        .output()
        .unwrap();
    let args = String::from_utf8_lossy(&out.stdout);
    assert!(
        args.lines().any(|a| a == hostile),
        "the value did not pass through unchanged: {run}\n{args}"
    );
    let created: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert!(created.is_empty(), "pasting ran something: {run}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `support grant` for a customer who paid would have replaced their paid
/// subscription with a grant (new period end, activation "grant"): it is
/// refused, says why, and the paid subscription stays as it was.
#[tokio::test]
async fn a_grant_never_replaces_a_paid_subscription() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = uuid::Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "paid@example.com", 24900),
            charge(
                "pi_paid",
                Some(checkout),
                Some("paid@example.com"),
                24900,
                0,
            ),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    let before = t
        .client()
        .await
        .query_one(
            "SELECT activation, period_end FROM subscriptions WHERE email = 'paid@example.com'",
            &[],
        )
        .await
        .unwrap();
    let desk = Desk::new(&t, None);
    desk.refused(
        &[
            "support",
            "grant",
            "--email",
            "paid@example.com",
            "--plan",
            "annual",
            "--reason",
            "vip",
            "--as",
            "alice",
        ],
        "already has paid access",
    );
    project_everything(&t.db.pool).await;
    let after = t
        .client()
        .await
        .query_one(
            "SELECT activation, period_end FROM subscriptions WHERE email = 'paid@example.com'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(after.get::<_, String>(0), before.get::<_, String>(0));
    assert_eq!(
        after.get::<_, chrono::DateTime<chrono::Utc>>(1),
        before.get::<_, chrono::DateTime<chrono::Utc>>(1)
    );
    assert_eq!(count_events(&t, "SubscriptionGranted").await, 0);
}

/// Refunds of 50.00 and then 70.00: support can refund part of a payment,
/// the ledger keeps both, `find` shows no false difference, a refund of the
/// rest takes what is left, and asking for more than is left is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_refunds_are_refunded_recorded_and_shown_without_a_false_difference() {
    let t = TestDb::new().await;
    let store = t.store();
    let (sim, sim_base) = start_sim(None, 52).await;
    let checkout = uuid::Uuid::new_v4();
    append(
        &store,
        vec![checkout_started(checkout, "part@example.com", 24900)],
    )
    .await;
    let paid = sim_charge(&sim_base, serde_json::json!({"email": "part@example.com", "amount": 24900, "currency": "usd", "client_reference_id": checkout.to_string()})).await;
    let pi = paid["payment_intent_id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now();
    payledger::reconcile::reconcile(
        &store,
        &processor_client(&sim_base),
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
        false,
    )
    .await
    .unwrap();
    let desk = Desk::new(&t, Some(sim_base.clone()));
    let refund = |amount: &'static str| {
        vec![
            "support", "refund", &pi, "--amount", amount, "--reason", "partly", "--as", "bob",
            "--yes",
        ]
    };
    let first = desk.ok(&refund("50.00"));
    assert!(first.contains("refund 50.00 USD of payment"), "{first}");
    let second = desk.ok(&refund("70"));
    assert!(
        second.contains("50.00 USD already refunded") && second.contains("leaving 129.00 USD"),
        "{second}"
    );
    desk.refused(&refund("200.00"), "more than what is left");
    desk.refused(&refund("12.345"), "--amount");
    desk.refused(&refund("0"), "must be more than zero");
    assert_eq!(count_events(&t, "ChargeRefunded").await, 2);
    project_everything(&t.db.pool).await;
    let found = desk.ok(&["support", "find", &pi]);
    assert!(!found.contains("DIFFERENCE"), "{found}");
    assert!(
        found.contains("partially_refunded") && found.contains("refunded 120.00 USD"),
        "{found}"
    );
    let reply = desk.ok(&["support", "reply", &pi]);
    assert!(
        reply.contains("120.00 USD") && reply.contains("129.00 USD"),
        "{reply}"
    );
    let rest = desk.ok(&[
        "support", "refund", &pi, "--reason", "the rest", "--as", "bob", "--yes",
    ]);
    assert!(rest.contains("refund 129.00 USD"), "{rest}");
    let refunded: i64 = sim.lock().refunds.iter().map(|r| r.amount).sum();
    assert_eq!(refunded, 24900, "the processor refunded exactly the charge");
    let again = desk.ok(&[
        "support", "refund", &pi, "--reason", "again", "--as", "bob", "--yes",
    ]);
    assert!(again.contains("already refunded in full"), "{again}");
}

/// Every command `support queue` prints, for a queue holding every kind,
/// runs as printed (placeholders filled in): the read-only ones find what
/// they name, the ones that act parse and reach their decision (nothing is
/// confirmed, so nothing is done), and the advice text names the same flags
/// as the run line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_the_queue_prints_runs_as_printed_for_every_kind() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = uuid::Uuid::new_v4();
    let short = uuid::Uuid::new_v4();
    append(
        &store,
        vec![
            charge("pi_named", None, Some("named@example.com"), 24900, 0),
            charge("pi_nameless", None, None, 24900, 1),
            checkout_started(checkout, "twice@example.com", 24900),
            charge(
                "pi_first",
                Some(checkout),
                Some("twice@example.com"),
                24900,
                2,
            ),
            charge(
                "pi_second",
                Some(checkout),
                Some("twice@example.com"),
                24900,
                3,
            ),
            checkout_started(short, "short@example.com", 24900),
            charge("pi_short", Some(short), Some("short@example.com"), 12000, 4),
            dispute_opened("pi_first", "dp_queue"),
            refunded("pi_ghost", "re_ghost", 500),
            unparsed("evt_unreadable"),
            email_result("confirmation:pi_first", false, true),
        ],
    )
    .await;
    let usd = payledger_events::Currency::new("usd").unwrap();
    let disagreement = payledger_events::ProcessorDisagreement {
        payment_id: "pi_named".into(),
        kind: "amount_differs".into(),
        ledger_amount: Some(24900),
        ledger_currency: Some(usd.clone()),
        processor_amount: 20000,
        processor_currency: usd,
        processor_object_id: "ch_named".into(),
        detail: "the processor shows 200.00 USD".into(),
    };
    let conflict = payledger_events::ProcessorEventConflict {
        processor_event_id: "evt_twice".into(),
        stored_body_sha256: "a".repeat(64),
        received_body_sha256: "b".repeat(64),
        received_at: chrono::Utc::now(),
    };
    append(
        &store,
        vec![
            (
                payledger_events::StreamId::payment("pi_named"),
                fact(disagreement, "pi_named:amount_differs"),
            ),
            (
                payledger_events::StreamId::processor_event("evt_twice"),
                fact(conflict, "evt_twice:conflict"),
            ),
        ],
    )
    .await;
    project_everything(&t.db.pool).await;
    let desk = Desk::new(&t, None);
    let queue: serde_json::Value =
        serde_json::from_str(&desk.ok(&["support", "queue", "--json"])).unwrap();
    let items = queue.as_array().unwrap();
    let kinds: std::collections::BTreeSet<&str> =
        items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    for kind in [
        "unmatched_charge",
        "duplicate_charge",
        "amount_mismatch",
        "dispute_opened",
        "refund_without_charge",
        "unparsed_processor_event",
        "email_undeliverable",
        "processor_disagreement",
        "processor_event_conflict",
    ] {
        assert!(kinds.contains(kind), "{kind} missing from {kinds:?}");
    }
    for item in items {
        let command = item["command"].as_str().unwrap();
        let advice = item["suggested_action"].as_str().unwrap();
        if command.contains("--reason") {
            let reason = command.split("--reason ").nth(1).unwrap();
            let reason = &reason[..reason.find(" --").unwrap_or(reason.len())];
            assert!(
                advice.contains(reason) || !advice.contains("--reason"),
                "the advice says another reason than the command: {advice} / {command}"
            );
        }
        assert!(!advice.contains("wait for auto-rescue"), "{advice}");
        // The first alternative of the run line, placeholders filled in.
        let line = command.split("   (or:").next().unwrap().trim();
        let filled = line
            .replace("--as NAME", "--as alice")
            .replace("--email EMAIL", "--email found@example.com")
            .replace("--plan PLAN", "--plan annual")
            .replace("\"REASON\"", "\"checked\"");
        let args = shell_words(&filled);
        assert_eq!(args[0], "payledger", "{command}");
        let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let out = desk.run(&args);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match args[..2] {
            ["support", "find"] | ["audit", "log"] => {
                assert!(out.status.success(), "{filled}: {said}");
                assert!(
                    !said.contains("nothing matches") && !said.trim().is_empty(),
                    "{filled}: {said}"
                );
            }
            // A usage error prints the usage; a decision, or a processor
            // that is not configured here, is one line saying why.
            _ => assert!(
                !said.contains("Usage:") && !said.contains("unexpected argument"),
                "{filled} does not parse: {said}"
            ),
        }
    }
}

/// Splits a command line the way `sh` would for the quoting the queue uses
/// (single and double quotes, no expansions).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = vec![];
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, ' ') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Resending the receipt of a payment that was refunded since would tell
/// the customer their access is active: refused, saying why, nothing sent.
#[tokio::test]
async fn a_receipt_of_a_refunded_payment_is_not_resent() {
    let t = TestDb::new().await;
    let store = t.store();
    let checkout = uuid::Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(checkout, "gone@example.com", 24900),
            charge(
                "pi_gone",
                Some(checkout),
                Some("gone@example.com"),
                24900,
                0,
            ),
        ],
    )
    .await;
    append(&store, vec![refunded("pi_gone", "re_gone", 24900)]).await;
    project_everything(&t.db.pool).await;
    let desk = Desk::new(&t, None);
    desk.refused(
        &[
            "support",
            "resend-email",
            "confirmation:pi_gone",
            "--as",
            "alice",
        ],
        "pi_gone is refunded now",
    );
    assert_eq!(count_events(&t, "EmailResendRequested").await, 0);
}

/// An orphan charge with no address has no timeline rows by address:
/// `find` by its payment id tells its story from its stream, with the id
/// exactly as the processor wrote it (so it can be pasted back).
#[tokio::test]
async fn finding_an_orphan_by_payment_id_shows_its_story_with_pasteable_ids() {
    let t = TestDb::new().await;
    append(
        &t.store(),
        vec![charge("pi_NoMail7Xy", None, None, 24900, 0)],
    )
    .await;
    project_everything(&t.db.pool).await;
    let desk = Desk::new(&t, None);
    let found = desk.ok(&["support", "find", "pi_NoMail7Xy"]);
    assert!(
        found.contains("charged 249.00 USD (payment pi_NoMail7Xy, via webhook)"),
        "{found}"
    );
    let again = desk.ok(&["support", "find", "pi_NoMail7Xy", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert!(!v["timeline"].as_array().unwrap().is_empty(), "{again}");
}

/// A customer with a grant and no payment: the reply says what they have,
/// and never asks for card digits for a payment that does not exist.
#[tokio::test]
async fn the_reply_to_a_granted_customer_states_the_grant_and_asks_for_no_card() {
    let t = TestDb::new().await;
    append(&t.store(), vec![granted("press@example.com")]).await;
    project_everything(&t.db.pool).await;
    let desk = Desk::new(&t, None);
    let reply = desk.ok(&["support", "reply", "press@example.com", "--sign", "Sam"]);
    assert!(
        reply.contains("as a courtesy, with nothing to pay"),
        "{reply}"
    );
    assert!(
        !reply.contains("four digits") && !reply.contains("card"),
        "{reply}"
    );
}

/// The queue's commands, run as printed (placeholders filled in, confirmed
/// with --yes) against a ledger the simulator's charges built, do what they
/// say: the orphan is rescued, the duplicate refunded at the processor, the
/// short payment forced through — and each leaves the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acting_command_the_queue_prints_does_what_it_says() {
    let t = TestDb::new().await;
    let store = t.store();
    let (sim, sim_base) = start_sim(None, 71).await;
    let twice = uuid::Uuid::new_v4();
    let short = uuid::Uuid::new_v4();
    append(
        &store,
        vec![
            checkout_started(twice, "twice@example.com", 24900),
            checkout_started(short, "short@example.com", 24900),
        ],
    )
    .await;
    let charge_at_sim = |body: serde_json::Value| sim_charge(&sim_base, body);
    charge_at_sim(
        serde_json::json!({"email": "orphan@example.com", "amount": 24900, "currency": "usd"}),
    )
    .await;
    for _ in 0..2 {
        charge_at_sim(serde_json::json!({"email": "twice@example.com", "amount": 24900, "currency": "usd", "client_reference_id": twice.to_string()})).await;
    }
    charge_at_sim(serde_json::json!({"email": "short@example.com", "amount": 12000, "currency": "usd", "client_reference_id": short.to_string()})).await;
    let now = chrono::Utc::now();
    payledger::reconcile::reconcile(
        &store,
        &processor_client(&sim_base),
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
        false,
    )
    .await
    .unwrap();
    project_everything(&t.db.pool).await;
    let desk = Desk::new(&t, Some(sim_base.clone()));
    let queue: serde_json::Value =
        serde_json::from_str(&desk.ok(&["support", "queue", "--json"])).unwrap();
    let items = queue.as_array().unwrap().clone();
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    for item in &items {
        let command = item["command"].as_str().unwrap();
        let line = command.split("   (or:").next().unwrap().trim();
        let filled = format!(
            "{} --yes",
            line.replace("--as NAME", "--as alice")
                .replace("--plan PLAN", "--plan annual")
                .replace("\"REASON\"", "\"customer agreed to pay the rest later\"")
        );
        let args = shell_words(&filled);
        let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let said = desk.ok(&args);
        assert!(said.contains("done:"), "{filled}: {said}");
    }
    project_everything(&t.db.pool).await;
    let after: serde_json::Value =
        serde_json::from_str(&desk.ok(&["support", "queue", "--json"])).unwrap();
    assert_eq!(
        after.as_array().unwrap().len(),
        0,
        "the queue is empty: {after}"
    );
    assert_eq!(
        sim.lock().refunds.len(),
        1,
        "the duplicate was refunded at the processor"
    );
    for email in [
        "orphan@example.com",
        "short@example.com",
        "twice@example.com",
    ] {
        let access: bool = t
            .client()
            .await
            .query_one(
                "SELECT active FROM payledger_access WHERE email = $1",
                &[&email],
            )
            .await
            .unwrap()
            .get(0);
        assert!(access, "{email} has access");
    }
}

/// The processor's charge stays `disputed` after a dispute is won: `find`
/// must not call that a difference once the ledger has the dispute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_won_dispute_is_no_difference_in_find() {
    let t = TestDb::new().await;
    let store = t.store();
    let (_sim, sim_base) = start_sim(None, 73).await;
    let checkout = uuid::Uuid::new_v4();
    append(
        &store,
        vec![checkout_started(checkout, "won@example.com", 24900)],
    )
    .await;
    let paid = sim_charge(&sim_base, serde_json::json!({"email": "won@example.com", "amount": 24900, "currency": "usd", "client_reference_id": checkout.to_string()})).await;
    let pi = paid["payment_intent_id"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let dispute: serde_json::Value = http
        .post(format!("{sim_base}/_sim/disputes"))
        .json(&serde_json::json!({"payment_intent": pi}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dp = dispute["id"].as_str().unwrap();
    http.post(format!("{sim_base}/_sim/disputes/{dp}/close"))
        .json(&serde_json::json!({"status": "won"}))
        .send()
        .await
        .unwrap();
    let now = chrono::Utc::now();
    payledger::reconcile::reconcile(
        &store,
        &processor_client(&sim_base),
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
        false,
    )
    .await
    .unwrap();
    project_everything(&t.db.pool).await;
    let desk = Desk::new(&t, Some(sim_base.clone()));
    let found = desk.ok(&["support", "find", &pi]);
    assert!(found.contains("dispute_won"), "{found}");
    assert!(!found.contains("DIFFERENCE"), "{found}");
}
