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
        /// From this moment (RFC 3339, or a day: 2026-11-28 is its start, UTC).
        #[arg(long, value_parser = moment)]
        from: Option<DateTime<Utc>>,
        /// Up to this moment (as --from).
        #[arg(long, value_parser = moment)]
        to: Option<DateTime<Utc>>,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// A read model as it was at a time, replayed from the log (live tables untouched).
    AsOf {
        /// The moment: RFC 3339 (2026-11-28T12:00:00Z), or a day (2026-11-28,
        /// meaning its end: everything recorded that day counts).
        #[arg(value_parser = moment_or_end_of_day)]
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

/// A moment as people type it: RFC 3339, or a day (its start, UTC).
pub fn moment(text: &str) -> Result<DateTime<Utc>, String> {
    parse_moment(text, false)
}

/// As [`moment`], but a day means its last instant: "as of 28 November"
/// includes what happened on the 28th.
fn moment_or_end_of_day(text: &str) -> Result<DateTime<Utc>, String> {
    parse_moment(text, true)
}

fn parse_moment(text: &str, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        format!("{text:?} is neither a moment (2026-11-28T12:00:00Z) nor a day (2026-11-28)")
    })?;
    let at = if end_of_day {
        day.and_hms_nano_opt(23, 59, 59, 999_999_999)
    } else {
        day.and_hms_opt(0, 0, 0)
    };
    at.map(|t| t.and_utc())
        .ok_or_else(|| format!("{text:?} is not a day"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_a_moment_and_as_of_a_day_includes_that_day() {
        assert_eq!(
            moment("2026-11-28").unwrap().to_rfc3339(),
            "2026-11-28T00:00:00+00:00"
        );
        assert_eq!(
            moment_or_end_of_day("2026-11-28")
                .unwrap()
                .format("%H:%M:%S")
                .to_string(),
            "23:59:59"
        );
        assert_eq!(
            moment("2026-11-28T12:00:00+01:00").unwrap().to_rfc3339(),
            "2026-11-28T11:00:00+00:00"
        );
        let e = moment("yesterday").unwrap_err();
        assert!(e.contains("neither a moment"), "{e}");
    }
}
