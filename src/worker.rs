//! `payledger work`: the background side — projections and the hash-chain
//! sealer — until told to stop.

use crate::store::{seal_pending, AppendListener};
use deadpool_postgres::Pool;
use payledger_projections::runner;
use std::time::Duration;
use tokio::sync::watch;

pub const PROJECTION_BATCH: i64 = 500;

pub struct WorkerConfig {
    pub poll: Duration,
    pub seal_every: Duration,
    pub batch: i64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            poll: Duration::from_secs(1),
            seal_every: Duration::from_millis(500),
            batch: PROJECTION_BATCH,
        }
    }
}

impl WorkerConfig {
    /// Defaults, with `PAYLEDGER_PROJECTION_BATCH` (events per projection
    /// transaction) when set.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let mut config = WorkerConfig::default();
        if let Ok(raw) = std::env::var("PAYLEDGER_PROJECTION_BATCH") {
            config.batch = raw.trim().parse().ok().filter(|n| *n > 0).ok_or(
                crate::config::ConfigError::Invalid {
                    name: "PAYLEDGER_PROJECTION_BATCH",
                    reason: format!("{raw:?} is not a positive number"),
                },
            )?;
        }
        Ok(config)
    }
}

/// Installs (or rebuilds, on a version change) every projection, then runs
/// them and the sealer until `stop` turns true.
pub async fn run(
    pool: Pool,
    pg_config: tokio_postgres::Config,
    config: WorkerConfig,
    stop: watch::Receiver<bool>,
) -> Result<(), runner::RunnerError> {
    let projections = payledger_projections::all();
    for p in &projections {
        runner::install(&pool, p.as_ref(), config.batch).await?;
    }
    let resumed = runner::resume_stopped(&pool).await?;
    if resumed > 0 {
        tracing::info!(resumed, "retrying projections stopped by a poison event");
    }

    // NOTIFY → a watch tick every projection task can see; polling covers
    // a lost connection.
    let (tick, wake) = watch::channel(0u64);
    let listen = {
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut listener = AppendListener::connect(pg_config).await;
            loop {
                tokio::select! {
                    woke = listener.wait(Duration::from_secs(5)) => {
                        if woke {
                            tick.send_modify(|n| *n += 1);
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
        })
    };
    let sealer = {
        let (pool, mut stop) = (pool.clone(), stop.clone());
        let every = config.seal_every;
        tokio::spawn(async move {
            loop {
                if let Err(e) = seal_pending(&pool, 1000).await {
                    tracing::warn!(error = %e, "sealing failed; will retry");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    };
    runner::run(pool, projections, config.batch, config.poll, wake, stop).await;
    listen.abort();
    let _ = sealer.await;
    Ok(())
}
