//! `timeline`: one customer's story, in log order.

use super::ReadModels;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};
use payledger_store::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub struct TimelineRow {
    pub at: DateTime<Utc>,
    pub event_type: String,
    pub actor: String,
    pub summary: String,
}

pub async fn of_email(
    read: &ReadModels,
    email: Option<&str>,
) -> Result<Vec<TimelineRow>, StoreError> {
    let connection = read.connection().await?;
    let client: &Client = &connection;
    Ok(client
        .query(
            "SELECT recorded_at, event_type, actor, summary FROM timeline WHERE email = $1 ORDER BY position",
            &[&email],
        )
        .await?
        .iter()
        .map(|r| TimelineRow {
            at: r.get(0),
            event_type: r.get(1),
            actor: r.get(2),
            summary: r.get(3),
        })
        .collect())
}
