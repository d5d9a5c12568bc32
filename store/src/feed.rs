//! Reading the log in its gap-safe global order. The store's `read_all` and
//! the projection runner both read through here, so there is one definition
//! of the order.

use deadpool_postgres::GenericClient;
use payledger_events::{Checkpoint, Metadata, RecordedEvent, StreamId};
use tokio_postgres::Row;

const READ_ALL_SQL: &str = include_str!("read_all.sql");
const READ_ALL_WITHOUT_SQL: &str = include_str!("read_all_without.sql");

/// Why the global order could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A stored event whose row cannot be read.
    #[error("event at position {position} is unreadable: {reason}")]
    Corrupt {
        /// Its position in the log.
        position: i64,
        /// What is wrong with the row.
        reason: String,
    },
    /// The database refused the read.
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// The next `limit` events after `after`, in (transaction id, position)
/// order, never past a transaction that could still commit behind them.
pub async fn read_after<C: GenericClient>(
    client: &C,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<RecordedEvent>, FeedError> {
    let statement = client.prepare_cached(READ_ALL_SQL).await?;
    let rows = client
        .query(
            &statement,
            &[&after.transaction_id, &after.position, &limit],
        )
        .await?;
    rows.iter().map(recorded_event).collect()
}

/// Like [`read_after`], but the events of the types in `unread` come with
/// a `null` payload: for readers (projections) that skip those types.
pub async fn read_after_without<C: GenericClient>(
    client: &C,
    after: Checkpoint,
    limit: i64,
    unread: &[&str],
) -> Result<Vec<RecordedEvent>, FeedError> {
    if unread.is_empty() {
        return read_after(client, after, limit).await;
    }
    let statement = client.prepare_cached(READ_ALL_WITHOUT_SQL).await?;
    let rows = client
        .query(
            &statement,
            &[&after.transaction_id, &after.position, &limit, &unread],
        )
        .await?;
    rows.iter().map(recorded_event).collect()
}

/// The newest readable checkpoint (the head a reader can reach now).
pub async fn head<C: GenericClient>(client: &C) -> Result<Checkpoint, FeedError> {
    let row = client
        .query_opt(
            "SELECT transaction_id, position FROM events
             WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
             ORDER BY transaction_id DESC, position DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(row
        .map(|r| Checkpoint {
            transaction_id: r.get(0),
            position: r.get(1),
        })
        .unwrap_or(Checkpoint::START))
}

/// One `events` row as the event it holds.
pub fn recorded_event(row: &Row) -> Result<RecordedEvent, FeedError> {
    let position: i64 = row.get("position");
    let metadata: Metadata =
        serde_json::from_value(row.get("metadata")).map_err(|e| FeedError::Corrupt {
            position,
            reason: format!("metadata: {e}"),
        })?;
    Ok(RecordedEvent {
        position,
        transaction_id: row.get("transaction_id"),
        stream: StreamId::from_stored(row.get("stream_id")),
        stream_version: row.get("stream_version"),
        event_id: row.get("event_id"),
        event_type: row.get("event_type"),
        payload: row.get("payload"),
        metadata,
        recorded_at: row.get("recorded_at"),
    })
}
