//! `bench`: measurements against the local PostgreSQL, each printed as
//! ratios against a baseline run in the same process.

use super::{output, Cli};
use crate::tooling::bench;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Appends/s beside raw INSERTs at 1, 8 and 32 writers, and batched appends.
    Append {
        /// Seconds per measured run.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long)]
        json: bool,
    },
    /// Append to the application's verified 2xx at a steady rate (p50/p99),
    /// and messages/s to a fast receiver beside the email sender's.
    AppWebhooks {
        /// Changes of access per second during the latency run.
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Seconds of the latency run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Messages (and confirmation emails) owed at once in the throughput run.
        #[arg(long, default_value_t = 5_000)]
        messages: usize,
        #[arg(long)]
        json: bool,
    },
    /// The rules alone, no database: each projection's in-memory fold over
    /// one generated history, beside the payment rules every one repeats.
    Fold {
        /// Customers of the generated mixed history (as `bench projections`).
        #[arg(long, default_value_t = 50_000)]
        purchases: u64,
        #[arg(long)]
        json: bool,
    },
    /// Projection rebuild speed beside a plain read, and append-to-row latency.
    Projections {
        /// Customers of the generated mixed history (about 3 events each:
        /// checkouts, charges, orphans, matches, duplicates, mismatches,
        /// refunds, disputes, grants, email results, unparsed callbacks).
        #[arg(long, default_value_t = 50_000)]
        purchases: u64,
        /// Appends per second during the latency run.
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Seconds of the latency run.
        #[arg(long, default_value_t = 10)]
        latency_seconds: u64,
        /// Only the plain read and `rebuild --all` (in
        /// PAYLEDGER_REBUILD_MEMORY): for histories of millions of events.
        #[arg(long)]
        rebuild_all_only: bool,
        #[arg(long)]
        json: bool,
    },
    /// One reconciliation run over N charges (all in the ledger, and 1%
    /// missing) beside walking the same pages; time and peak memory.
    Reconcile {
        #[arg(long, default_value_t = 100_000)]
        charges: usize,
        #[arg(long)]
        json: bool,
    },
    /// A month-end burst: N renewals due at one instant of the simulator's
    /// clock, until applied, visible and emailed, beside the same callbacks
    /// through the webhook alone; `run`'s memory at N/10 and N.
    Renewals {
        #[arg(long, default_value_t = 100_000)]
        renewals: usize,
        #[arg(long)]
        json: bool,
    },
    /// Signed webhooks/s over loopback HTTP beside raw INSERTs, 8 and 32 clients.
    Webhook {
        /// Seconds per measured run.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cli: &Cli, command: &BenchCommand) -> anyhow::Result<ExitCode> {
    let url = cli.database_url_or_default();
    match *command {
        BenchCommand::Append { seconds, json } => {
            let report = bench::append::run_append_bench(&url, seconds).await?;
            output::print(json, &report, bench::append::print_append_report)?;
        }
        BenchCommand::AppWebhooks {
            rate,
            seconds,
            messages,
            json,
        } => {
            let report =
                bench::app_webhooks::run_app_webhook_bench(&url, rate, seconds, messages).await?;
            output::print(json, &report, bench::app_webhooks::print_app_webhook_report)?;
        }
        BenchCommand::Fold { purchases, json } => {
            let bar = output::progress_unless(json, purchases, "generating the history");
            let report = bench::fold::run_fold_bench(&url, purchases, &bar).await?;
            output::print(json, &report, bench::fold::print_fold_report)?;
        }
        BenchCommand::Projections {
            purchases,
            rate,
            latency_seconds,
            rebuild_all_only,
            json,
        } => {
            let bar = output::progress_unless(json, purchases, "generating the history");
            let report = bench::projections::run_projection_bench(
                &url,
                purchases,
                rate,
                latency_seconds,
                rebuild_all_only,
                &bar,
            )
            .await?;
            output::print(json, &report, bench::projections::print_projection_report)?;
        }
        BenchCommand::Renewals { renewals, json } => {
            let bar = output::progress_unless(json, renewals as u64, "renewals");
            let rows = bench::renewals::run_renewal_bench(&url, renewals, &bar).await?;
            output::print(json, &rows, |rows| {
                bench::renewals::print_renewal_report(rows)
            })?;
        }
        BenchCommand::Reconcile { charges, json } => {
            let rows = bench::reconcile::run_reconcile_bench(&url, charges).await?;
            output::print(json, &rows, |rows| {
                bench::reconcile::print_reconcile_report(rows)
            })?;
        }
        BenchCommand::Webhook { seconds, json } => {
            let rows = bench::webhook::run_webhook_bench(&url, seconds).await?;
            output::print(json, &rows, |rows| {
                bench::webhook::print_webhook_report(rows, seconds)
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
