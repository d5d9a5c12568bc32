//! The read models' typed queries: each file owns one table's reads and
//! returns rows with typed states. Pages, reactors, support and audit read
//! the read models only through here.

pub mod customer_status;
pub mod discrepancies;
pub mod outgoing_emails;
pub mod subscription_changes;
pub mod subscriptions;
pub mod timeline;

use payledger_store::StoreError;
use std::str::FromStr;

/// A state column parsed into its type, or an error naming the table.
fn state<T: FromStr<Err = crate::states::UnknownState>>(
    table: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    text.parse()
        .map_err(|e: crate::states::UnknownState| StoreError::UnreadableRow {
            table,
            reason: e.to_string(),
        })
}

/// The door to the read models for everything downstream of them: pages,
/// reactors, support and audit hold this, not a database pool, and read only
/// through this module's typed queries (each takes a connection for itself).
#[derive(Clone)]
pub struct ReadModels {
    pool: deadpool_postgres::Pool,
}

impl ReadModels {
    pub fn new(pool: deadpool_postgres::Pool) -> Self {
        ReadModels { pool }
    }

    /// The read models beside this log (one database holds both).
    pub fn of(store: &payledger_store::PgEventStore) -> Self {
        ReadModels::new(store.pool().clone())
    }

    async fn connection(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Every projection's position, lag and state.
    pub async fn projections(
        &self,
    ) -> Result<Vec<crate::runner::Status>, crate::runner::RunnerError> {
        crate::runner::status(&self.pool).await
    }

    /// The projections that stopped, and where and why.
    pub async fn stopped_projections(
        &self,
    ) -> Result<Vec<crate::runner::Stopped>, crate::runner::RunnerError> {
        crate::runner::stopped(&self.pool).await
    }
}
