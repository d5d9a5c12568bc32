//! `reconcile`: one manual run over a window.

use super::{output, Cli};
use payledger::clock::SystemClock;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ReconcileArgs {
    /// How far back to look, e.g. 2h, 30m, 7d (default 2h).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    since: Option<String>,
    /// Window start (RFC 3339), with --to.
    #[arg(long, requires = "to")]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Window end (RFC 3339), with --from.
    #[arg(long, requires = "from")]
    to: Option<chrono::DateTime<chrono::Utc>>,
    /// Show what would be appended, append nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(cli: &Cli, args: &ReconcileArgs) -> anyhow::Result<ExitCode> {
    // Flags and settings first: a wrong one changes nothing.
    let window = payledger::config::parse_duration(args.since.as_deref().unwrap_or("2h"))
        .map_err(|e| anyhow::anyhow!("--since {e}"))?;
    let api = payledger::config::processor_api()?;
    let db = cli.connect().await?;
    let processor = api.client();
    let now = chrono::Utc::now();
    let (from, to) = match (args.from, args.to) {
        (Some(f), Some(t)) => (f, t),
        _ => (now - window, now),
    };
    let store =
        payledger::store::PgEventStore::new(db.pool.clone(), std::sync::Arc::new(SystemClock));
    let bar = output::counter("objects seen at the processor", args.json);
    let report = payledger::reconcile::reconcile_reporting(
        &store,
        &processor,
        from,
        to,
        args.dry_run,
        payledger::reconcile::RunKind::Manual,
        Some(&|n| bar.set_position(n)),
    )
    .await;
    bar.finish_and_clear();
    let report = report?;
    output::print(args.json, &report, |report| {
        let verb = if args.dry_run {
            "would append"
        } else {
            "appended"
        };
        println!(
            "reconciled {} .. {}: {} objects seen at the processor, {verb} {} missing, {} differences, {} ms",
            report.window_from, report.window_to, report.objects_seen, report.missing_appended, report.differences, report.duration_ms
        );
        for line in &report.appended {
            println!("  {verb}: {line}");
        }
        for line in &report.problems {
            println!("  difference: {line}");
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
