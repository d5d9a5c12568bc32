use super::ExpectedVersion;
use payledger_events::StreamId;

/// Why an append or a read did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer got there first; re-read the stream and decide again.
    #[error("version conflict on stream {stream}: expected {expected}, but the stream is at version {actual}")]
    Conflict {
        /// The stream that moved.
        stream: StreamId,
        /// Where the writer believed it was.
        expected: ExpectedVersion,
        /// Where it is.
        actual: i64,
    },
    /// A concurrent transaction stored the same event or stream version; the
    /// transaction must be retried from the start. `append` retries by itself.
    #[error("a concurrent append wrote the same event or stream version; retry the transaction")]
    WriteRace,
    /// An append with no event at all.
    #[error("an append needs at least one event")]
    EmptyAppend,
    /// An append that cannot mean anything (two expectations for one stream).
    #[error("invalid append: {0}")]
    InvalidBatch(String),
    /// PostgreSQL is going away or refusing work: try again later.
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// A stored event that does not decode.
    #[error("event at position {position} is unreadable: {reason}")]
    Corrupt {
        /// Its position in the log.
        position: i64,
        /// Why it does not decode.
        reason: String,
    },
    /// A read model's row holds what the code cannot read (a state it does
    /// not know): the read model and the code disagree.
    #[error("a row of {table} is unreadable: {reason}")]
    UnreadableRow {
        /// The read model's table.
        table: &'static str,
        /// What the code could not read.
        reason: String,
    },
    /// An event that cannot be written as JSON.
    #[error("could not encode event: {0}")]
    Encode(#[from] serde_json::Error),
    /// Any other database error, with the server's own words.
    #[error("database error: {}", db_detail(.0))]
    Database(tokio_postgres::Error),
}

/// The server's own message ("permission denied for table events"), which
/// tokio-postgres' Display hides behind "db error".
fn db_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            if code == &SqlState::UNIQUE_VIOLATION {
                return StoreError::WriteRace;
            }
            // The server is going away or refusing work: the caller should
            // answer "try again later", not "your request was wrong".
            if [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code)
            {
                return StoreError::Unavailable(e.to_string());
            }
            return StoreError::Database(e);
        }
        let io_failure = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if e.is_closed() || io_failure {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Database(e)
        }
    }
}

impl From<crate::feed::FeedError> for StoreError {
    fn from(e: crate::feed::FeedError) -> Self {
        match e {
            crate::feed::FeedError::Corrupt { position, reason } => {
                StoreError::Corrupt { position, reason }
            }
            crate::feed::FeedError::Database(e) => StoreError::from(e),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::from(e),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}
