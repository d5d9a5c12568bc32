//! The log cannot be changed through SQL, and auditors can only read.

use crate::common::{any_event, TestDb};
use payledger::store::{seal_pending, EventStore, ExpectedVersion};
use payledger_events::StreamId;

#[tokio::test]
async fn update_delete_and_truncate_of_the_log_are_refused_by_the_database() {
    let t = TestDb::new().await;
    t.store()
        .append_to_stream(
            StreamId::payment("pi_imm"),
            ExpectedVersion::Any,
            vec![any_event()],
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while seal_pending(&t.db.pool, 100).await.unwrap() == 0 && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let c = t.client().await;
    for table in ["events", "event_chain"] {
        for sql in [
            format!("UPDATE {table} SET transaction_id = transaction_id"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
        ] {
            let err = c.batch_execute(&sql).await.expect_err(&sql);
            let msg = err
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_default();
            assert!(msg.contains("append-only"), "{sql}: {msg}");
        }
        let left: i64 = c
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 1, "{table} lost a row");
    }
}

#[tokio::test]
async fn the_auditor_role_can_read_and_cannot_write() {
    let t = TestDb::new().await;
    t.store()
        .append_to_stream(
            StreamId::payment("pi_aud"),
            ExpectedVersion::Any,
            vec![any_event()],
        )
        .await
        .unwrap();
    let mut config = t.db.config.clone();
    config.user("payledger_auditor");
    let (auditor, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("auditor can log in");
    tokio::spawn(conn);

    let n: i64 = auditor
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    auditor
        .query_one("SELECT count(*) FROM event_chain", &[])
        .await
        .unwrap();

    let err = auditor
        .batch_execute(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, payload, metadata, recorded_at)
             VALUES ('payment-x', 1, gen_random_uuid(), 'X', '{}', '{}', now())",
        )
        .await
        .expect_err("auditor must not insert");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{err}"
    );
    let err = auditor.batch_execute("INSERT INTO event_chain (seq, position, transaction_id, hash) VALUES (99, 1, 1, '\\x00')").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{err}"
    );
}
