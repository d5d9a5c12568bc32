//! Alerts: support hears once about each newly opened discrepancy — by a
//! Slack-compatible JSON POST to `PAYLEDGER_ALERT_WEBHOOK` and/or an email
//! to `PAYLEDGER_SUPPORT_EMAIL`. A burst becomes one message per interval;
//! a failed delivery is retried on the next tick, never dropped.

use super::mail::Mailer;
use crate::store::{PgEventStore, StoreError};
use chrono::Duration;
use lettre::message::Mailbox;
use lettre::Message;
use payledger_projections::states::{DiscrepancyStatus, ProjectionState};
use sha2::Digest;

#[derive(Clone)]
pub struct AlertConfig {
    pub webhook: Option<url::Url>,
    /// The support address, with the mailer to reach it.
    pub email: Option<(Mailbox, Mailer)>,
    /// At most one message per interval (default a minute).
    pub interval: Duration,
    pub tick: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("alert delivery failed: {0}")]
    Delivery(String),
}

impl From<tokio_postgres::Error> for AlertError {
    fn from(e: tokio_postgres::Error) -> Self {
        AlertError::Store(e.into())
    }
}

/// One tick: `Ok(n)` discrepancies announced in one message (0 when there
/// was nothing new or the interval has not passed).
pub async fn alert_due(store: &PgEventStore, config: &AlertConfig) -> Result<usize, AlertError> {
    let now = store.clock().now();
    let mut client = store.connection_for_own_tables().await?;
    let tx = client.transaction().await?;
    // One alerter at a time across workers.
    let held: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtext('payledger:alerts'))",
            &[],
        )
        .await?
        .get(0);
    if !held {
        return Ok(0);
    }
    let last: Option<chrono::DateTime<chrono::Utc>> = tx
        .query_opt("SELECT last_sent_at FROM alert_schedule", &[])
        .await?
        .map(|r| r.get(0));
    if last.is_some_and(|t| now - t < config.interval) {
        // Explicitly: a dropped transaction's rollback is not waited for,
        // and the next tick, on another pooled connection, would find the
        // lock still held and skip.
        tx.rollback().await?;
        return Ok(0);
    }
    let rows = tx
        .query(
            "SELECT d.id, d.kind, d.amount, d.currency, d.customer_email, d.suggested_action FROM discrepancies d
             WHERE d.status = $1 AND NOT EXISTS (SELECT 1 FROM alert_deliveries a WHERE a.discrepancy_id = d.id)
             ORDER BY d.first_seen, d.id",
            &[&DiscrepancyStatus::Open.as_str()],
        )
        .await?;
    // A stopped projection is announced once per stop (its key names the
    // position it stopped at), beside the discrepancies.
    let stopped = tx
        .query(
            "SELECT 'projection_stopped:' || s.name || ':' || COALESCE(s.error_position, 0) AS id,
                    s.name, s.error_position, s.error_event_type, s.last_error
             FROM projection_state s
             WHERE s.status = $1 AND NOT EXISTS (
                 SELECT 1 FROM alert_deliveries a
                 WHERE a.discrepancy_id = 'projection_stopped:' || s.name || ':' || COALESCE(s.error_position, 0))
             ORDER BY s.name",
            &[&ProjectionState::Stopped.as_str()],
        )
        .await?;
    if rows.is_empty() && stopped.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let mut lines = vec![];
    let mut ids: Vec<String> = vec![];
    for r in &stopped {
        lines.push(format!(
            "• PROJECTION STOPPED: {} at position {} ({}): {} — read models are no longer updated; payledger projections status\n  id: {}",
            r.get::<_, String>("name"),
            r.get::<_, Option<i64>>("error_position").unwrap_or_default(),
            r.get::<_, Option<String>>("error_event_type").unwrap_or_default(),
            r.get::<_, Option<String>>("last_error").unwrap_or_default(),
            r.get::<_, String>("id"),
        ));
        ids.push(r.get("id"));
    }
    for r in &rows {
        let id: String = r.get("id");
        let amount = crate::support::queue::amount_text(
            r.get::<_, Option<i64>>("amount"),
            r.get::<_, Option<String>>("currency").as_deref(),
        );
        let email: Option<String> = r.get("customer_email");
        lines.push(format!(
            "• {} — {amount} — {} — {}\n  id: {id}",
            r.get::<_, String>("kind"),
            email.as_deref().unwrap_or("no email"),
            r.get::<_, String>("suggested_action"),
        ));
        ids.push(id);
    }
    let discrepancies = ids.len() - stopped.len();
    let text = format!(
        "payledger: {}{discrepancies} new discrepanc{} need{} a look (payledger support queue):\n{}",
        if stopped.is_empty() {
            String::new()
        } else {
            format!("{} projection(s) STOPPED, ", stopped.len())
        },
        if discrepancies == 1 { "y" } else { "ies" },
        if discrepancies == 1 { "s" } else { "" },
        lines.join("\n")
    );
    if let Err(e) = deliver(config, &text, &ids).await {
        // Release the lock now, not whenever the dropped transaction's
        // rollback reaches the server.
        tx.rollback().await?;
        return Err(e);
    }
    crate::failpoint::hit("alerts.after_delivery");
    tx.execute(
        "INSERT INTO alert_deliveries (discrepancy_id, alerted_at) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING",
        &[&ids, &now],
    )
    .await?;
    tx.execute(
        "INSERT INTO alert_schedule (id, last_sent_at) VALUES (true, $1) ON CONFLICT (id) DO UPDATE SET last_sent_at = $1",
        &[&now],
    )
    .await?;
    tx.commit().await?;
    Ok(ids.len())
}

async fn deliver(config: &AlertConfig, text: &str, ids: &[String]) -> Result<(), AlertError> {
    let n = ids.len();
    if let Some(url) = &config.webhook {
        let r = reqwest::Client::new()
            .post(url.clone())
            .timeout(std::time::Duration::from_secs(10))
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            // The URL holds a secret token: name the host only.
            .map_err(|e| {
                AlertError::Delivery(format!(
                    "{}: {}",
                    url.host_str().unwrap_or("webhook"),
                    e.without_url()
                ))
            })?;
        if !r.status().is_success() {
            return Err(AlertError::Delivery(format!(
                "{} answered {}",
                url.host_str().unwrap_or("webhook"),
                r.status()
            )));
        }
    }
    if let Some((to, mailer)) = &config.email {
        // From what it announces: an alert sent again after a crash (before
        // it was recorded) carries the same Message-ID, and clients merge it.
        let digest = hex::encode(sha2::Sha256::digest(ids.join("\n").as_bytes()));
        let message = Message::builder()
            .message_id(Some(format!(
                "<alert.{}@{}>",
                &digest[..32],
                mailer.domain()
            )))
            .from(mailer.from.clone())
            .to(to.clone())
            .subject(format!(
                "payledger: {n} discrepanc{} need{} a look",
                if n == 1 { "y" } else { "ies" },
                if n == 1 { "s" } else { "" }
            ))
            .body(text.to_string())
            .map_err(|e| AlertError::Delivery(e.to_string()))?;
        mailer
            .send(message)
            .await
            .map_err(|e| AlertError::Delivery(e.message))?;
    }
    Ok(())
}

pub async fn run(
    store: PgEventStore,
    config: AlertConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match alert_due(&store, &config).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(discrepancies = n, "support alerted"),
            Err(e) => tracing::warn!(error = %e, "alert not delivered; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.tick) => {}
            _ = stop.changed() => return,
        }
    }
}
