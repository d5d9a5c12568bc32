//! The command line: parsing, and one module per command family. Each
//! command reads its flags and settings first, so a wrong one changes
//! nothing, then connects and does its work.

mod app_webhooks;
mod audit;
mod bench;
mod output;
mod projections;
mod reconcile;
mod servers;
mod tools;

use anyhow::Context;
use clap::{Parser, Subcommand};
use payledger::db::Database;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "payledger",
    version,
    about = "An event-sourced payment ledger: no paying customer is ever lost."
)]
pub struct Cli {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Log progress (INFO) as well; commands other than serve, work, run and
    /// processor-sim print only warnings and errors by default (RUST_LOG
    /// overrides both).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the database migrations (running it twice is a no-op).
    Migrate,
    /// Run the background workers: projections, the hash-chain sealer, the
    /// reconciliation schedule, the email sender, auto-rescue and alerts.
    Work,
    /// `serve` and `work` in one process (the small-deployment default).
    Run,
    /// Purchases under faults and real crashes; checks every guarantee; prints a table.
    Chaos(tools::ChaosArgs),
    /// The seed story, end to end, narrated: a purchase, a crash, a lost
    /// webhook, a rescue, and the support desk.
    Demo(tools::DemoArgs),
    /// Projection checkpoints, lag and state; rebuilds.
    Projections {
        #[command(subcommand)]
        command: projections::ProjectionsCommand,
    },
    /// The HTTP server: processor webhooks, the customer's pages, the access API.
    Serve,
    /// Ask the processor what it charged and refunded; append what the ledger missed.
    Reconcile(reconcile::ReconcileArgs),
    /// A local stand-in for the card processor, in Stripe's wire format.
    ProcessorSim(tools::ProcessorSimArgs),
    /// The support desk: queue, find, rescue, refund, resend-email, resolve, grant, reply.
    Support {
        #[command(subcommand)]
        command: payledger::support::cli::SupportCommand,
    },
    /// Auditor's commands.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Every setting (environment variable), its default, and whether it
    /// is set here (secrets' values are never shown).
    Settings {
        /// Print docs/configuration.md instead.
        #[arg(long)]
        markdown: bool,
    },
    /// Every customer situation and what the page, the API and the status
    /// email say in it (the table of docs/communication.md).
    Situations,
    /// The product application's endpoints: add, list, disable,
    /// rotate-secret, replay, deliveries (spec §13).
    AppWebhooks {
        #[command(subcommand)]
        command: app_webhooks::AppWebhookCommand,
    },
    /// Benchmarks against the local PostgreSQL.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

impl Cli {
    /// Servers narrate at INFO; one-shot commands print their result and
    /// stay quiet.
    pub fn is_server(&self) -> bool {
        matches!(
            self.command,
            Command::Serve | Command::Work | Command::Run | Command::ProcessorSim(_)
        )
    }

    /// For the commands that make their own database (demo, chaos, benches):
    /// the given one, or the local server's default.
    fn database_url_or_default(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| payledger::db::DEFAULT_DATABASE_URL.to_string())
    }

    fn database_url(&self) -> anyhow::Result<String> {
        self.database_url.clone().context(
            "DATABASE_URL is not set: point it at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/payledger",
        )
    }

    async fn connect(&self) -> anyhow::Result<Database> {
        Ok(Database::connect(&self.database_url()?, 8).await?)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Migrate => servers::migrate(&cli).await,
        Command::Work => servers::work(&cli).await,
        Command::Serve => servers::serve(&cli).await,
        Command::Run => servers::run(&cli).await,
        Command::Support { command } => tools::support(&cli, command).await,
        Command::Projections { command } => projections::run(&cli, command).await,
        Command::Reconcile(args) => reconcile::run(&cli, args).await,
        Command::Audit { command } => audit::run(&cli, command).await,
        Command::Chaos(args) => tools::chaos(&cli, args).await,
        Command::Demo(args) => tools::demo(&cli, args).await,
        Command::ProcessorSim(args) => tools::processor_sim(args).await,
        Command::Bench { command } => bench::run(&cli, command).await,
        Command::AppWebhooks { command } => app_webhooks::run(&cli, command).await,
        Command::Settings { markdown } => Ok(tools::settings(*markdown)),
        Command::Situations => {
            print!("{}", payledger::situation::table_markdown());
            Ok(ExitCode::SUCCESS)
        }
    }
}
