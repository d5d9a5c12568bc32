//! The read models' typed queries: each file owns one table's reads and
//! returns rows with typed states. Pages, reactors, support and audit read
//! the read models only through here.

pub mod customer_status;
pub mod discrepancies;
pub mod outgoing_emails;
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
