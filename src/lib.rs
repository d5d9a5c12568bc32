//! payledger: the event store, ingestion, reconciliation, support and audit.
//! See `docs/architecture.md` for the flow.

pub mod audit;
pub use payledger_store::clock;
pub mod config;
pub mod db;
pub mod failpoint;
pub mod http;
pub mod http_limits;
pub mod pages;
pub mod plans;
pub mod processor;
pub mod reactors;
pub mod reconcile;
pub mod shutdown;
pub mod sim_clock;
pub mod situation;
pub mod state;
pub use payledger_store as store;
pub mod support;
pub mod webhook;
pub mod worker;

/// Readable events not yet applied, summed over every projection.
pub async fn projections_lag(pool: &deadpool_postgres::Pool) -> anyhow::Result<i64> {
    Ok(payledger_projections::runner::status(pool)
        .await?
        .iter()
        .map(|s| s.lag)
        .sum())
}
