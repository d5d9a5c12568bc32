//! The support desk: what a two-person team runs when a customer writes in.
//! Every command that changes anything appends an event with the person's
//! name as actor, says what it did, and is safe to run twice.

pub mod actions;
pub mod cancel;
pub mod cli;
pub mod decide;
pub mod find;
pub mod queue;
pub mod reply;

use crate::processor::client::ProcessorError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Invalid(String),
    /// The payment changed between the decision and the append; nothing
    /// was done.
    #[error("{0}")]
    Changed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Processor(#[from] ProcessorError),
    #[error("could not encode an event: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<tokio_postgres::Error> for SupportError {
    fn from(e: tokio_postgres::Error) -> Self {
        SupportError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for SupportError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        SupportError::Store(e.into())
    }
}

/// What the person asked for, in one word: used to shape messages.
pub fn looks_like_email(key: &str) -> bool {
    key.contains('@')
}
