//! Reconciliation on a timer inside `work`. Each window starts a margin
//! before the end of the last *completed* scheduled run, so a failed run
//! (recorded as `ReconciliationFailed`) never moves the cursor past what it
//! did not see: the next tick simply covers it again.

use super::{reconcile_as, ReconcileReport, RunFailed, RunKind};
use crate::config::{duration_setting, ConfigError};
use crate::processor::client::ProcessorClient;
use crate::store::{PgEventStore, StoreError};
use chrono::{DateTime, Duration, Utc};
use payledger_events::StreamId;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub every: Duration,
    /// How far each window reaches back into the previous one.
    pub overlap: Duration,
    /// The first scheduled run's reach (Stripe retries webhooks for three
    /// days, so anything older had its chance to be delivered).
    pub first_window: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            every: Duration::minutes(10),
            overlap: Duration::minutes(5),
            first_window: Duration::days(3),
        }
    }
}

impl ScheduleConfig {
    /// `PAYLEDGER_RECONCILE_EVERY` (default 10m; `off` disables the
    /// schedule), `PAYLEDGER_RECONCILE_OVERLAP` (5m),
    /// `PAYLEDGER_RECONCILE_FIRST_WINDOW` (3d).
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        if crate::config::var("PAYLEDGER_RECONCILE_EVERY").is_some_and(|v| v == "off") {
            return Ok(None);
        }
        let d = ScheduleConfig::default();
        let config = ScheduleConfig {
            every: duration_setting("PAYLEDGER_RECONCILE_EVERY", d.every)?,
            overlap: duration_setting("PAYLEDGER_RECONCILE_OVERLAP", d.overlap)?,
            first_window: duration_setting("PAYLEDGER_RECONCILE_FIRST_WINDOW", d.first_window)?,
        };
        if config.every <= Duration::zero() {
            return Err(ConfigError::Invalid {
                name: "PAYLEDGER_RECONCILE_EVERY",
                reason: "must be more than zero (or off)".into(),
            });
        }
        Ok(Some(config))
    }
}

#[derive(Debug)]
pub enum ScheduledRun {
    /// Another worker is running the schedule right now.
    Skipped,
    Completed(ReconcileReport),
    Failed(RunFailed),
}

/// The window the next scheduled run covers, ending at `now`.
pub async fn next_window(
    store: &PgEventStore,
    config: &ScheduleConfig,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), StoreError> {
    let last = store
        .last_of_type(
            &StreamId::reconciliation_schedule(),
            "ReconciliationCompleted",
        )
        .await?;
    let last_to = match last {
        Some(payledger_events::DomainEvent::ReconciliationCompleted(c)) => Some(c.window_to),
        _ => None,
    };
    let from = match last_to {
        Some(t) => t - config.overlap,
        None => now - config.first_window,
    };
    Ok((from.min(now), now))
}

/// One tick: under a transaction-scoped advisory lock (released by
/// PostgreSQL if this process dies), reconcile from the cursor to now.
pub async fn run_once(
    store: &PgEventStore,
    processor: &ProcessorClient,
    config: &ScheduleConfig,
) -> Result<ScheduledRun, StoreError> {
    let mut client = store.connection_for_own_tables().await?;
    let lock = client.transaction().await?;
    let held: bool = lock
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtext('payledger:reconcile-schedule'))",
            &[],
        )
        .await?
        .get(0);
    if !held {
        return Ok(ScheduledRun::Skipped);
    }
    let (from, to) = next_window(store, config, store.clock().now()).await?;
    let outcome = match reconcile_as(store, processor, from, to, false, RunKind::Scheduled).await {
        Ok(report) => ScheduledRun::Completed(report),
        Err(failed) => ScheduledRun::Failed(failed),
    };
    lock.rollback().await?;
    Ok(outcome)
}

/// Ticks every `config.every` until `stop` turns true.
pub async fn run(
    store: PgEventStore,
    processor: ProcessorClient,
    config: ScheduleConfig,
    mut stop: watch::Receiver<bool>,
) {
    let every = config
        .every
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(600));
    loop {
        // Stopping mid-run is safe: every fact is its own append, and an
        // unrecorded run leaves the cursor where it was.
        let tick = tokio::select! {
            outcome = run_once(&store, &processor, &config) => outcome,
            _ = stop.changed() => return,
        };
        match tick {
            Ok(ScheduledRun::Completed(r)) => tracing::info!(
                window_from = %r.window_from, window_to = %r.window_to,
                objects_seen = r.objects_seen, missing_appended = r.missing_appended,
                differences = r.differences, duration_ms = r.duration_ms,
                "scheduled reconciliation completed"
            ),
            Ok(ScheduledRun::Failed(f)) => {
                tracing::error!(error = %f, "scheduled reconciliation failed; the next run covers the same window again")
            }
            Ok(ScheduledRun::Skipped) => {
                tracing::debug!("another worker holds the reconciliation schedule")
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduled reconciliation could not start; will retry")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
