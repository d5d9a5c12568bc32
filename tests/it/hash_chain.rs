//! Guarantee 6: the hash chain verifies, and a tampered row is found.

use crate::common::{any_event, TestDb};
use payledger::store::{
    seal_pending, verify_chain, EventStore, ExpectedVersion, PgEventStore, StreamAppend,
};
use payledger_events::StreamId;
use std::time::{Duration, Instant};
use uuid::Uuid;

const EVENTS: usize = 10_000;

async fn append_concurrently(store: &PgEventStore, writers: usize, events: usize) {
    let mut tasks = vec![];
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut written = 0;
            while written < events / writers {
                let n = 5.min(events / writers - written);
                let stream = StreamId::payment(&format!("chain_{w}_{}", Uuid::new_v4().simple()));
                let batch = StreamAppend::new(
                    stream,
                    ExpectedVersion::NoStream,
                    (0..n).map(|_| any_event()).collect(),
                );
                store.append(vec![batch]).await.unwrap();
                written += n;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Seals until the whole log is in the chain (other tests' transactions can
/// hold the gap-safe horizon back for a moment).
async fn seal_everything(t: &TestDb, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        seal_pending(&t.db.pool, 1_000).await.unwrap();
        let report = verify_chain(&t.db.pool).await.unwrap();
        if report.verified >= expected || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chain_over_ten_thousand_concurrent_appends_verifies_and_names_a_tampered_position() {
    let t = TestDb::with_pool_size(12).await;
    let store = t.store();

    // The sealer runs while the writers write, as it does in `work`.
    let sealer = {
        let pool = t.db.pool.clone();
        tokio::spawn(async move {
            loop {
                let _ = seal_pending(&pool, 1_000).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    append_concurrently(&store, 8, EVENTS).await;
    seal_everything(&t, EVENTS as u64).await;
    sealer.abort();

    let report = verify_chain(&t.db.pool).await.unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.verified, EVENTS as u64);
    assert_eq!(report.unsealed, 0);

    // A superuser edits one payload behind the trigger's back.
    let c = t.client().await;
    let victim: i64 = c
        .query_one("SELECT position FROM event_chain WHERE seq = 4321", &[])
        .await
        .unwrap()
        .get(0);
    c.batch_execute(&format!(
        "ALTER TABLE events DISABLE TRIGGER events_refuse_update_delete;
         UPDATE events SET payload = jsonb_set(payload, '{{email}}', '\"mallory@example.com\"') WHERE position = {victim};
         ALTER TABLE events ENABLE TRIGGER events_refuse_update_delete;"
    ))
    .await
    .unwrap();

    let report = verify_chain(&t.db.pool).await.unwrap();
    let broken = report.first_break.expect("the tampered row must be found");
    assert_eq!(broken.position, victim);
    assert_eq!(broken.seq, 4321);
    assert_eq!(report.verified, 4320);

    // The CLI says the same and exits 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &t.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("position {victim}")), "{stdout}");
}

#[tokio::test]
async fn a_deleted_event_breaks_the_chain_at_its_position() {
    let t = TestDb::new().await;
    let store = t.store();
    append_concurrently(&store, 2, 20).await;
    seal_everything(&t, 20).await;
    let c = t.client().await;
    let victim: i64 = c
        .query_one("SELECT position FROM event_chain WHERE seq = 7", &[])
        .await
        .unwrap()
        .get(0);
    c.batch_execute(&format!(
        "ALTER TABLE events DISABLE TRIGGER events_refuse_update_delete;
         DELETE FROM events WHERE position = {victim};
         ALTER TABLE events ENABLE TRIGGER events_refuse_update_delete;"
    ))
    .await
    .unwrap();
    let broken = verify_chain(&t.db.pool)
        .await
        .unwrap()
        .first_break
        .expect("break");
    assert_eq!((broken.seq, broken.position), (7, victim));
}

#[tokio::test]
async fn an_intact_chain_passes_the_cli_with_exit_zero() {
    let t = TestDb::new().await;
    append_concurrently(&t.store(), 2, 10).await;
    seal_everything(&t, 10).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &t.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with("OK: 10 events verified"), "{stdout}");
}

fn cli(t: &TestDb, args: &[&str], key: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .args(args)
        .env("DATABASE_URL", &t.url)
        .env("PAYLEDGER_AUDIT_KEY", key)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// What a superuser can do that the chain alone cannot see, and what a
/// signed checkpoint kept outside the database does see.
#[tokio::test]
async fn a_signed_checkpoint_catches_a_truncated_or_rewritten_history_that_the_chain_alone_misses()
{
    let dir = std::env::temp_dir().join(format!("payledger-cp-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("audit.key");
    for attack in ["truncate", "rewrite"] {
        let t = TestDb::new().await;
        append_concurrently(&t.store(), 2, 20).await;
        seal_everything(&t, 20).await;
        let (ok, keyline) = cli(&t, &["audit", "keygen"], &key);
        assert!(
            ok && keyline.starts_with("PRIVATE+KEY+payledger+"),
            "{keyline}"
        );
        std::fs::write(&key, &keyline).unwrap();
        let out_dir = dir.join(attack);
        let (ok, path) = cli(
            &t,
            &["audit", "checkpoint", "--out", out_dir.to_str().unwrap()],
            &key,
        );
        assert!(ok, "{path}");
        let path = path.trim().to_string();
        let note = std::fs::read_to_string(&path).unwrap();
        assert!(
            note.contains("\n20\n") && note.contains("\n— payledger "),
            "{note}"
        );
        let (ok, text) = cli(&t, &["audit", "verify", "--checkpoint", &path], &key);
        assert!(ok && text.contains("OK (20 events"), "{text}");

        let c = t.client().await;
        match attack {
            // Delete the last five events and their links: the shorter
            // chain is consistent with itself.
            "truncate" => c
                .batch_execute(
                    "SET session_replication_role = replica;
                     DELETE FROM events WHERE (transaction_id, position) IN
                       (SELECT transaction_id, position FROM event_chain WHERE seq > 15);
                     DELETE FROM event_chain WHERE seq > 15;
                     SET session_replication_role = origin;",
                )
                .await
                .unwrap(),
            // Rewrite an early event and recompute the whole chain.
            _ => {
                c.batch_execute(
                    "SET session_replication_role = replica;
                     UPDATE events SET payload = jsonb_set(payload, '{email}', '\"mallory@example.com\"')
                       WHERE position = (SELECT position FROM event_chain WHERE seq = 3);
                     DELETE FROM event_chain;
                     SET session_replication_role = origin;",
                )
                .await
                .unwrap();
                seal_everything(&t, 20).await;
            }
        }
        let (ok, text) = cli(&t, &["audit", "verify"], &key);
        assert!(ok, "{attack}: the chain alone should not see it: {text}");
        let (ok, text) = cli(&t, &["audit", "verify", "--checkpoint", &path], &key);
        assert!(!ok, "{attack}: the checkpoint did not catch it: {text}");
        let want = if attack == "truncate" {
            "shorter"
        } else {
            "no longer hash"
        };
        assert!(
            text.contains(&path) && text.contains(want),
            "{attack}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn work_writes_a_signed_checkpoint_and_mails_it_off_the_machine() {
    let t = TestDb::new().await;
    append_concurrently(&t.store(), 2, 10).await;
    seal_everything(&t, 10).await;
    let dir = std::env::temp_dir().join(format!("payledger-cps-{}", Uuid::new_v4().simple()));
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let payledger::audit::checkpoint::AuditKey::Signing(key) =
        payledger::audit::checkpoint::parse_key(&payledger::audit::checkpoint::keygen()).unwrap()
    else {
        panic!("keygen made no signing key");
    };
    let verifying = key.verifying_key();
    let schedule = payledger::audit::schedule::CheckpointSchedule {
        key,
        dir: dir.join("checkpoints"),
        every: Duration::from_secs(3600),
        origin: "payledger/test".into(),
        email: Some((
            "auditor@example.com".parse().unwrap(),
            payledger::reactors::mail::Mailer::files(
                mail.clone(),
                "payments@example.com".parse().unwrap(),
            )
            .unwrap(),
        )),
    };
    let path = payledger::audit::schedule::checkpoint_once(&t.db.pool, &schedule)
        .await
        .unwrap();
    let note = std::fs::read_to_string(&path).unwrap();
    let cp = payledger::audit::checkpoint::open_note(&note, &verifying).unwrap();
    assert_eq!(cp.size, 10);
    let mailed: Vec<String> = std::fs::read_dir(&mail)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(mailed.len(), 1);
    assert!(
        mailed[0].contains("auditor@example.com") && mailed[0].contains(&cp.head),
        "{}",
        mailed[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
