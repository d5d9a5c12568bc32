//! `migrate`, `serve`, `work` and `run`: the commands that keep running.

use super::Cli;
use anyhow::Context;
use payledger::db::Database;
use std::process::ExitCode;

pub async fn migrate(cli: &Cli) -> anyhow::Result<ExitCode> {
    let url = cli.database_url()?;
    if payledger::db::create_database_if_missing(&url).await? {
        println!("{}: created the database", payledger::db::redact_url(&url));
    }
    let db = cli.connect().await?;
    let applied = db.migrate().await?;
    db.install_read_models().await?;
    db.record_view_settings(payledger::config::past_due_access()?)
        .await?;
    if applied.is_empty() {
        println!("{}: already up to date", db.shown_url());
    } else {
        println!("{}: applied {}", db.shown_url(), applied.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn work(cli: &Cli) -> anyhow::Result<ExitCode> {
    let mut config = payledger::worker::WorkerConfig::from_env()?;
    config.clock = payledger::sim_clock::clock_from_env().await?;
    let db = cli.connect().await?;
    db.migrate().await?;
    tracing::info!(database = %db.shown_url(), "worker started");
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        payledger::shutdown::signal().await;
        let _ = stop_tx.send(true);
    });
    payledger::worker::run(db.pool.clone(), db.config.clone(), config, stop).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn serve(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::from_env()?;
    let db = cli.connect().await?;
    db.migrate().await?;
    db.install_read_models().await?;
    db.record_view_settings(payledger::config::past_due_access()?)
        .await?;
    let clock = payledger::sim_clock::clock_from_env().await?;
    let (state, listener) = serving_state(&db, config, clock).await?;
    payledger::http::serve(listener, state, payledger::shutdown::signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let serve = ServeConfig::from_env()?;
    let mut config = payledger::worker::WorkerConfig::from_env()?;
    config.clock = payledger::sim_clock::clock_from_env().await?;
    let db = cli.connect().await?;
    db.migrate().await?;
    db.install_read_models().await?;
    db.record_view_settings(payledger::config::past_due_access()?)
        .await?;
    let (state, listener) = serving_state(&db, serve, config.clock.clone()).await?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut server_stop = stop.clone();
    let server = tokio::spawn(payledger::http::serve(listener, state, async move {
        let _ = server_stop.changed().await;
    }));
    tokio::spawn(async move {
        payledger::shutdown::signal().await;
        tracing::info!("stopping: no new requests; finishing in-flight appends");
        let _ = stop_tx.send(true);
    });
    tracing::info!(database = %db.shown_url(), "running serve and work in one process");
    payledger::worker::run(db.pool.clone(), db.config.clone(), config, stop).await?;
    server.await??;
    Ok(ExitCode::SUCCESS)
}

/// Everything `serve` needs from the environment — read before touching
/// the database, so a missing setting stops start-up with nothing changed.
struct ServeConfig {
    bind: std::net::SocketAddr,
    secrets: Vec<String>,
    site: payledger::pages::Site,
    group_commit: Option<payledger::store::GroupCommitConfig>,
}

impl ServeConfig {
    fn from_env() -> anyhow::Result<Self> {
        let bind = payledger::config::bind_address()?;
        Ok(ServeConfig {
            bind,
            secrets: payledger::config::webhook_secrets()?,
            site: payledger::pages::Site::from_env(bind)?,
            group_commit: payledger::config::group_commit()?,
        })
    }
}

async fn serving_state(
    db: &Database,
    config: ServeConfig,
    clock: std::sync::Arc<dyn payledger::clock::Clock>,
) -> anyhow::Result<(payledger::http::AppState, tokio::net::TcpListener)> {
    payledger::pages::install_metrics();
    let bind = config.bind;
    let mut store = payledger::store::PgEventStore::new(db.pool.clone(), clock.clone());
    if let Some(group) = config.group_commit {
        store = store.with_group_commit(group);
    }
    let state = payledger::http::AppState::new(store, clock, config.secrets).with_site(config.site);
    payledger::plans::record_offers(&state.store, &state.site.plans)
        .await
        .context("recording the plans file's prices (PlanOffered)")?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on PAYLEDGER_BIND={bind}"))?;
    tracing::info!(%bind, database = %db.shown_url(), "serving");
    Ok((state, listener))
}
