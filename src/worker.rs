//! `payledger work`: the background side — projections, the hash-chain
//! sealer and the reconciliation schedule — until told to stop.

use crate::clock::SystemClock;
use crate::processor::client::ProcessorClient;
use crate::reconcile::schedule::{self, ScheduleConfig};
use crate::store::{seal_pending, AppendListener, PgEventStore};
use deadpool_postgres::Pool;
use payledger_projections::runner;
use std::time::Duration;
use tokio::sync::watch;

pub const PROJECTION_BATCH: i64 = 500;

pub struct WorkerConfig {
    pub poll: Duration,
    pub seal_every: Duration,
    pub batch: i64,
    /// After a batch smaller than `batch`, how long a projection waits for
    /// more events to gather.
    pub linger: Duration,
    /// The processor to reconcile against, and how often; `None` when the
    /// schedule is off.
    pub reconcile: Option<(ProcessorClient, ScheduleConfig)>,
    /// The email sender, auto-rescue and alerts.
    pub reactors: crate::reactors::Reactors,
    /// Signed audit checkpoints, when a key and a directory are set.
    pub checkpoints: Option<crate::audit::schedule::CheckpointSchedule>,
    /// The reactors' and reconciliation's "now" (the machine's, or the
    /// simulator's with PAYLEDGER_FOLLOW_SIM_CLOCK).
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// Group commit for the reactors' and reconciliation's appends.
    pub group_commit: Option<crate::store::GroupCommitConfig>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            poll: Duration::from_secs(1),
            seal_every: Duration::from_millis(500),
            batch: PROJECTION_BATCH,
            linger: Duration::ZERO,
            reconcile: None,
            reactors: Default::default(),
            checkpoints: None,
            clock: std::sync::Arc::new(SystemClock),
            group_commit: None,
        }
    }
}

impl WorkerConfig {
    /// Defaults, with `PAYLEDGER_PROJECTION_BATCH` (events per projection
    /// transaction) when set, and the reconciliation schedule when the
    /// processor's API key is set and `PAYLEDGER_RECONCILE_EVERY` is not `off`.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let mut config = WorkerConfig::default();
        if let Some(raw) = crate::config::var("PAYLEDGER_PROJECTION_BATCH") {
            config.batch = raw.trim().parse().ok().filter(|n| *n > 0).ok_or(
                crate::config::ConfigError::Invalid {
                    name: "PAYLEDGER_PROJECTION_BATCH",
                    reason: format!("{raw:?} is not a positive number"),
                },
            )?;
        }
        config.linger = crate::config::projection_linger()?;
        if let Some(every) = ScheduleConfig::from_env()? {
            match crate::config::processor_api() {
                Ok(api) => {
                    let client = api.client();
                    config.reconcile = Some((client, every));
                }
                // A worker without the processor still runs projections; say
                // plainly that the safety net is off.
                Err(e) => tracing::warn!(error = %e, "the reconciliation schedule is off"),
            }
        }
        config.reactors = crate::reactors::Reactors::from_env()?;
        config.group_commit = crate::config::group_commit()?;
        payledger_projections::runner::set_memory_budget(crate::config::rebuild_memory()?);
        let database = crate::config::var("DATABASE_URL")
            .and_then(|u| u.parse::<tokio_postgres::Config>().ok())
            .and_then(|c| c.get_dbname().map(str::to_string))
            .unwrap_or_else(|| "payledger".into());
        config.checkpoints = crate::audit::schedule::CheckpointSchedule::from_env(&database)?;
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
    let mut store = PgEventStore::new(pool.clone(), config.clock.clone());
    if let Some(group) = config.group_commit {
        store = store.with_group_commit(group);
    }
    let reconciler = config.reconcile.map(|(processor, every)| {
        tokio::spawn(schedule::run(store.clone(), processor, every, stop.clone()))
    });
    let reactors = config.reactors.spawn(store, stop.clone());
    let checkpoints = config
        .checkpoints
        .map(|s| tokio::spawn(crate::audit::schedule::run(pool.clone(), s, stop.clone())));
    let pace = runner::Pace {
        batch: config.batch,
        poll: config.poll,
        linger: config.linger,
    };
    runner::run_paced(pool, projections, pace, wake, stop).await;
    if let Some(c) = checkpoints {
        let _ = c.await;
    }
    for r in reactors {
        let _ = r.await;
    }
    listen.abort();
    let _ = sealer.await;
    if let Some(r) = reconciler {
        let _ = r.await;
    }
    Ok(())
}
