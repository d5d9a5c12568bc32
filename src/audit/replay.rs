//! A read model as the log says it was: folded in memory, then printed by
//! PostgreSQL (through temporary tables in a transaction that is rolled
//! back, or — for the auditor, who may not create even temporary tables —
//! as parameters of one SELECT), so the live tables are never touched and
//! nothing is left behind.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use payledger_events::Checkpoint;
use payledger_projections::{feed, Projection};

/// Rows of `table` (as JSON, sorted) after replaying every event recorded
/// up to `until` (or up to `checkpoint`, whichever is given).
pub async fn replay(
    pool: &Pool,
    projection: &dyn Projection,
    table: &str,
    until: Option<DateTime<Utc>>,
    checkpoint: Option<Checkpoint>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut client = pool.get().await?;
    // The log is folded in memory (nothing is looked up: the tables start
    // empty), then written into temporary tables to be read back as rows.
    let mut state = projection.rows();
    state.in_memory_only();
    let mut at = Checkpoint::default();
    'replay: loop {
        let batch = {
            let tx = client.transaction().await?;
            let batch = feed::read_after(&tx, at, 5000).await?;
            tx.commit().await?;
            batch
        };
        if batch.is_empty() {
            break;
        }
        for event in &batch {
            if checkpoint.is_some_and(|c| event.checkpoint() > c) {
                break 'replay;
            }
            at = event.checkpoint();
            if until.is_some_and(|u| event.recorded_at > u)
                || !projection.handles(&event.event_type)
            {
                continue;
            }
            let decoded = event.decode()?;
            state.apply(None, event, &decoded).await?;
        }
    }
    client.statement_cache.clear();
    let may_create_temp: bool = client
        .query_one(
            "SELECT has_database_privilege(current_database(), 'TEMPORARY')",
            &[],
        )
        .await?
        .get(0);
    let rows: Vec<String> = {
        let tx = client.transaction().await?;
        let rows = if may_create_temp {
            // pg_temp first: the projection's unqualified CREATE TABLEs and
            // COPYs land in this session's temporary schema.
            tx.batch_execute("SET LOCAL search_path = pg_temp, public")
                .await?;
            tx.batch_execute(projection.schema_sql()).await?;
            state.copy_into(&tx).await?;
            tx.query(
                &format!("SELECT row_to_json(t)::text FROM pg_temp.{table} t ORDER BY 1"),
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
        } else {
            // The auditor may not create even temporary tables: the rows go
            // to PostgreSQL as parameters, printed by the same row_to_json
            // and sorted by the same collation as the live tables.
            let rows = state
                .table_json(&tx, table)
                .await?
                .ok_or_else(|| anyhow::anyhow!("{} has no table {table}", projection.name()))?;
            tx.query("SELECT r FROM unnest($1::text[]) r ORDER BY 1", &[&rows])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        tx.rollback().await?;
        rows
    };
    client.statement_cache.clear();
    rows.iter().map(|r| Ok(serde_json::from_str(r)?)).collect()
}
