//! Helpers for projection runner tests.
#![allow(dead_code)]

use super::{dump_read_models, TestDb};
use payledger_projections::runner;
use std::process::{Child, Command, Stdio};

pub fn spawn_worker(t: &TestDb, batch: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_payledger"))
        .arg("work")
        .env("DATABASE_URL", &t.url)
        .env("PAYLEDGER_PROJECTION_BATCH", batch)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn payledger work")
}

pub fn kill9(child: &mut Child) {
    // SIGKILL: no destructor, no graceful anything.
    let _ = child.kill();
    let _ = child.wait();
}

pub async fn assert_rebuild_equals_live(t: &TestDb) {
    let live = dump_read_models(&t.db.pool).await;
    for p in payledger_projections::all() {
        runner::rebuild(&t.db.pool, p.as_ref(), 1000).await.unwrap();
    }
    let rebuilt = dump_read_models(&t.db.pool).await;
    for ((table, a), (_, b)) in live.iter().zip(rebuilt.iter()) {
        assert!(
            !a.is_empty(),
            "{table} is empty: the history should fill it"
        );
        assert_eq!(
            a.len(),
            b.len(),
            "{table}: live and rebuilt row counts differ"
        );
        assert!(a == b, "{table}: live and rebuilt rows differ");
    }
}

/// Every projection's generation, by name.
pub async fn generations(t: &TestDb) -> Vec<(String, i32)> {
    t.client()
        .await
        .query(
            "SELECT name, generation FROM projection_state ORDER BY name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

pub async fn checkpoints(t: &TestDb) -> Vec<(String, i64)> {
    t.client()
        .await
        .query(
            "SELECT name, checkpoint_pos FROM projection_state ORDER BY name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}
