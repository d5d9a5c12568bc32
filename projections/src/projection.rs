use deadpool_postgres::Transaction;
use payledger_events::{DomainEvent, RecordedEvent};
use std::future::Future;
use std::pin::Pin;

pub type ApplyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a>>;

/// A read model: a deterministic function of the event sequence. `apply`
/// runs inside the runner's transaction with `search_path` set to the
/// projection's generation schema, so its SQL names tables unqualified.
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
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        event: &'a RecordedEvent,
        decoded: &'a DomainEvent,
    ) -> ApplyFuture<'a>;
}
