//! The payledger event vocabulary: what can be said in the log, and how it is
//! identified. Pure data: no I/O, no async runtime, no clock.
#![warn(missing_docs)]

pub mod email;
mod envelope;
mod ids;
mod metadata;
mod money;
pub mod period;
mod shell;
mod streams;
mod vocabulary;

pub use email::{Email, EmailError};
pub use envelope::{Checkpoint, EventData, RecordedEvent};
pub use ids::{deterministic_event_id, EVENT_ID_NAMESPACE};
pub use metadata::{Actor, Metadata};
pub use money::{Currency, CurrencyError, Money, MoneyError};
pub use period::{period_end, Period};
pub use shell::shell_word;
pub use streams::StreamId;
pub use vocabulary::*;
