//! `payledger audit log | as-of | invariants` (verify lives beside them in
//! main, with the hash chain).

use super::log::{write_log, Format, LogFilter};
use super::{invariants, replay};
use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};
use deadpool_postgres::Pool;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReadModel {
    Subscriptions,
    Discrepancies,
}

#[derive(Subcommand, Debug)]
pub enum AuditReadCommand {
    /// The event log, streamed in order, filtered.
    Log {
        #[arg(long)]
        stream: Option<String>,
        #[arg(long = "type")]
        event_type: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// A read model as it was at a time, replayed from the log (live tables untouched).
    AsOf {
        at: DateTime<Utc>,
        model: ReadModel,
        #[arg(long)]
        json: bool,
    },
    /// Check guarantees 1, 2, 3 and 5 on the live database; exit 1 on any violation.
    Invariants {
        #[arg(long)]
        json: bool,
    },
}

/// Returns the exit code. `progress` hears how many events an export has
/// written so far.
pub async fn run(
    pool: &Pool,
    command: &AuditReadCommand,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> anyhow::Result<i32> {
    match command {
        AuditReadCommand::Log {
            stream,
            event_type,
            actor,
            from,
            to,
            json,
            csv,
        } => {
            let filter = LogFilter {
                stream: stream.clone(),
                event_type: event_type.clone(),
                actor: actor.clone(),
                from: *from,
                to: *to,
            };
            let format = if *json {
                Format::Json
            } else if *csv {
                Format::Csv
            } else {
                Format::Text
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            write_log(pool, &filter, format, &mut out, progress).await?;
            Ok(0)
        }
        AuditReadCommand::AsOf { at, model, json } => {
            let (projection, table): (std::sync::Arc<dyn payledger_projections::Projection>, &str) =
                match model {
                    ReadModel::Subscriptions => (
                        std::sync::Arc::new(payledger_projections::subscriptions::Subscriptions),
                        "subscriptions",
                    ),
                    ReadModel::Discrepancies => (
                        std::sync::Arc::new(payledger_projections::discrepancies::Discrepancies),
                        "discrepancies",
                    ),
                };
            let rows = replay::replay(pool, projection.as_ref(), table, Some(*at), None).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{table} as of {at} ({} rows):", rows.len());
                for r in rows {
                    println!("  {r}");
                }
            }
            Ok(0)
        }
        AuditReadCommand::Invariants { json } => {
            let report = invariants::check(pool).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for c in &report.checked {
                    println!("checked {c}");
                }
                if report.violations.is_empty() {
                    println!("OK: no violations");
                }
                for v in &report.violations {
                    println!(
                        "VIOLATION of guarantee {}: {}: {}",
                        v.guarantee, v.subject, v.detail
                    );
                }
            }
            Ok(if report.violations.is_empty() { 0 } else { 1 })
        }
    }
}
