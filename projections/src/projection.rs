use crate::table::Db;
use deadpool_postgres::Transaction;
use payledger_events::{DomainEvent, RecordedEvent};
use std::future::Future;
use std::pin::Pin;

pub type ApplyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a>>;

/// A table's rows as `row_to_json` text, `None` when no table has that name.
pub type JsonFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Vec<String>>, tokio_postgres::Error>> + Send + 'a>>;

/// A read model: a deterministic function of the event sequence. Its SQL
/// names tables unqualified: the runner sets `search_path` to the
/// projection's generation schema.
pub trait Projection: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Bump when the tables or the rules change: `work` then rebuilds.
    fn version(&self) -> i32;
    fn handles(&self, event_type: &str) -> bool;
    /// `CREATE TABLE` statements, unqualified.
    fn schema_sql(&self) -> &'static str;
    /// Tables exposed to readers as `public.<table>` views.
    fn public_tables(&self) -> &'static [&'static str];
    /// Statements run after the public views are (re)pointed, e.g. stable
    /// views other applications read; names fully qualified.
    fn public_sql(&self) -> &'static str {
        ""
    }
    /// Its rules run on the payment ledger, which it then shares with the
    /// other such projections (`crate::group`): they run in lockstep.
    fn shares_ledger(&self) -> bool {
        false
    }
    /// Empty working rows: for one live batch (rows come from the
    /// database as needed) or for a whole rebuild (everything in memory).
    fn rows(&self) -> Box<dyn ProjectionRows>;
}

/// The event types none of `projections` handles: they read those events
/// without their payloads.
pub fn unread_types(projections: &[&dyn Projection]) -> Vec<&'static str> {
    payledger_events::DomainEvent::TYPES
        .iter()
        .copied()
        .filter(|t| !projections.iter().any(|p| p.handles(t)))
        .collect()
}

/// A projection's rows in memory and its rules over them.
pub trait ProjectionRows: Send {
    fn apply<'a>(
        &'a mut self,
        db: Db<'a>,
        event: &'a RecordedEvent,
        decoded: &'a DomainEvent,
    ) -> ApplyFuture<'a>;
    /// The ledger the payment rules run on, when they do: a group of
    /// projections swaps one shared ledger in for each event
    /// (`crate::group`).
    fn ledger_slot(&mut self) -> Option<&mut crate::ledger::Ledger> {
        None
    }
    /// Writes the rows changed since the last write (live).
    fn flush<'a>(&'a mut self, tx: &'a Transaction<'a>) -> ApplyFuture<'a>;
    /// Look nothing up from now on; remember what was wanted (a rehearsal
    /// of a batch, see [`crate::table::Wanted`]).
    fn rehearse(&mut self) {}
    /// What a rehearsal looked up.
    fn wanted(&mut self) -> crate::table::Wanted {
        crate::table::Wanted::new()
    }
    /// Reads what a rehearsal wanted, a statement per table and index.
    fn prefetch<'a>(
        &'a mut self,
        _tx: &'a Transaction<'a>,
        _wanted: &'a crate::table::Wanted,
    ) -> ApplyFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    /// Writes every row into empty tables (rebuild, replay).
    fn copy_into<'a>(&'a mut self, tx: &'a Transaction<'a>) -> ApplyFuture<'a>;
    /// The rows as parts each written to its own schema (a group: its
    /// ledger, then each member), so a rebuild can write them at once.
    fn into_parts(self: Box<Self>) -> Vec<Box<dyn ProjectionRows>>;
    /// The rows will be written whole by `copy_into`: stop remembering
    /// which changed (memory a large rebuild would otherwise spend).
    fn in_memory_only(&mut self);
    /// Remember changed rows again, to `flush` them (a rebuild that spilled).
    fn track_changes(&mut self) {}
    /// From now on every statement names its table in `schema` (a group's
    /// members share one transaction, each in its own schema).
    fn set_schema(&mut self, _schema: &std::sync::Arc<str>) {}
    /// About how many bytes the rows in memory take.
    fn resident_bytes(&self) -> usize {
        0
    }
    /// Forgets the rows in memory (written already); they are read again
    /// from the tables when needed.
    fn evict(&mut self) {}
    /// Forgets the rows not used since the last call (written already).
    fn evict_cold(&mut self) {
        self.evict();
    }
    /// Every table's rows in memory, printed, in key order (tests compare
    /// folds of the same events delivered differently).
    fn snapshot(&self) -> crate::fold::TableRows {
        vec![]
    }
    /// One table's rows as `row_to_json` prints them, without writing them
    /// anywhere (replays by roles that may not create tables).
    fn table_json<'a>(&'a self, _tx: &'a Transaction<'a>, _table: &'a str) -> JsonFuture<'a> {
        Box::pin(async { Ok(None) })
    }
}
