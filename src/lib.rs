//! payledger: the event store, ingestion, reconciliation, support and audit.
//! See `docs/architecture.md` for the flow.

pub mod bench;
pub mod clock;
pub mod db;
pub mod store;
