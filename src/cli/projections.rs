//! `projections status` and `projections rebuild`.

use super::{output, Cli};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum ProjectionsCommand {
    /// Each projection's version, checkpoint, head, lag, state and last error.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Rebuild into fresh tables and swap them in one transaction.
    Rebuild {
        /// The projection to rebuild.
        name: Option<String>,
        /// Rebuild every projection.
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
}

pub async fn run(cli: &Cli, command: &ProjectionsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProjectionsCommand::Status { json } => status(cli, *json).await,
        ProjectionsCommand::Rebuild { name, all } => rebuild(cli, name.as_deref(), *all).await,
    }
}

async fn status(cli: &Cli, json: bool) -> anyhow::Result<ExitCode> {
    let db = cli.connect().await?;
    let rows = payledger_projections::runner::status(&db.pool).await?;
    output::print(json, &rows, |rows| {
        println!(
            "{:<16} {:>7} {:>4} {:>12} {:>12} {:>8}  {:<8} last error",
            "projection", "version", "gen", "checkpoint", "head", "lag", "state"
        );
        for r in rows {
            println!(
                "{:<16} {:>7} {:>4} {:>12} {:>12} {:>8}  {:<8} {}",
                r.name,
                r.version,
                r.generation,
                r.checkpoint.position,
                r.head.position,
                r.lag,
                r.state,
                match (r.error_position, &r.last_error) {
                    (Some(p), Some(e)) => format!("at position {p}: {e}"),
                    _ => String::new(),
                }
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn rebuild(cli: &Cli, name: Option<&str>, all: bool) -> anyhow::Result<ExitCode> {
    let chosen: Vec<_> = payledger_projections::all()
        .into_iter()
        .filter(|p| all || name == Some(p.name()))
        .collect();
    if chosen.is_empty() {
        let names: Vec<_> = payledger_projections::all()
            .iter()
            .map(|p| p.name())
            .collect();
        anyhow::bail!(
            "name a projection to rebuild ({}) or pass --all (which also rebuilds the ledger they share); got {:?}",
            names.join(", "),
            name.unwrap_or("nothing")
        );
    }
    payledger_projections::runner::set_memory_budget(payledger::config::rebuild_memory()?);
    let db = cli.connect().await?;
    db.migrate().await?;
    // One read of the log feeds every chosen projection.
    let started = std::time::Instant::now();
    let batch = payledger::worker::PROJECTION_BATCH;
    for p in &chosen {
        payledger_projections::runner::install(&db.pool, p.as_ref(), batch).await?;
    }
    let refs: Vec<&dyn payledger_projections::Projection> =
        chosen.iter().map(|p| p.as_ref()).collect();
    let head = payledger_projections::runner::status(&db.pool)
        .await?
        .first()
        .map_or(0, |s| s.head.position);
    let bar = output::progress(head.max(0) as u64, "reading the log");
    let read =
        payledger_projections::runner::rebuild_many_reporting(&db.pool, &refs, batch, &|at| {
            bar.set_position(at.position.max(0) as u64);
            if at.position >= head {
                bar.set_message("writing rows and swapping in");
            }
        })
        .await;
    bar.finish_and_clear();
    let read = read?;
    let names: Vec<_> = chosen.iter().map(|p| p.name()).collect();
    println!(
        "{}: rebuilt from {read} events in {:.1?} and swapped in",
        names.join(", "),
        started.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}
