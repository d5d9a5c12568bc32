use anyhow::Context;
use clap::{Parser, Subcommand};
use payledger::clock::SystemClock;
use payledger::db::Database;
use payledger::store::verify_chain;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "payledger",
    version,
    about = "An event-sourced payment ledger: no paying customer is ever lost."
)]
struct Cli {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Log progress (INFO) as well; commands other than serve, work, run and
    /// processor-sim print only warnings and errors by default (RUST_LOG
    /// overrides both).
    #[arg(short, long, global = true)]
    verbose: bool,
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
    Chaos {
        #[arg(long, default_value_t = 300)]
        purchases: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// The seed story, end to end, narrated: a purchase, a crash, a lost
    /// webhook, a rescue, and the support desk.
    Demo {
        /// Drop the demo database first.
        #[arg(long)]
        reset: bool,
        /// Leave the server and the simulator running at the end.
        #[arg(long)]
        keep_running: bool,
    },
    /// Projection checkpoints, lag and state; rebuilds.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// The HTTP server: processor webhooks, the customer's pages, the access API.
    Serve,
    /// Ask the processor what it charged and refunded; append what the ledger missed.
    Reconcile {
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
    },
    /// A local stand-in for the card processor, in Stripe's wire format.
    ProcessorSim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:12111")]
        bind: std::net::SocketAddr,
        /// Where to deliver signed webhooks (payledger's /webhooks/stripe).
        #[arg(long)]
        webhook_url: Option<String>,
        /// The signing secret the webhook endpoint expects.
        #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: String,
        /// Seed for ids and fault decisions.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The simulator's own base URL as browsers reach it (default: http://BIND).
        #[arg(long)]
        public_url: Option<String>,
    },
    /// The support desk: queue, find, rescue, refund, resend-email, resolve, grant, reply.
    Support {
        #[command(subcommand)]
        command: payledger::support::cli::SupportCommand,
    },
    /// Auditor's commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Benchmarks against the local PostgreSQL.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit 1 and name the first broken position.
    Verify {
        #[arg(long)]
        json: bool,
        /// Signed checkpoints (from `audit checkpoint`) the log must still
        /// contain; checked with the key in PAYLEDGER_AUDIT_KEY.
        #[arg(long, num_args = 1..)]
        checkpoint: Vec<std::path::PathBuf>,
    },
    /// Print a new Ed25519 signing key (one line) for PAYLEDGER_AUDIT_KEY.
    Keygen,
    /// Write a signed checkpoint of the chain outside the database; prints its path.
    Checkpoint {
        /// Where to write it (default: PAYLEDGER_AUDIT_DIR, else the current directory).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    #[command(flatten)]
    Read(payledger::audit::cli::AuditReadCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Appends/s beside raw INSERTs at 1, 8 and 32 writers, and batched appends.
    Append {
        /// Seconds per measured run.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
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
    /// Signed webhooks/s over loopback HTTP beside raw INSERTs, 8 and 32 clients.
    Webhook {
        /// Seconds per measured run.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long)]
        json: bool,
    },
}

/// For the commands that make their own database (demo, chaos, benches):
/// the given one, or the local server's default.
fn database_url_or_default(cli: &Cli) -> String {
    cli.database_url
        .clone()
        .unwrap_or_else(|| payledger::db::DEFAULT_DATABASE_URL.to_string())
}

fn database_url(cli: &Cli) -> anyhow::Result<String> {
    cli.database_url.clone().context(
        "DATABASE_URL is not set: point it at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/payledger",
    )
}

/// Everything `serve` needs from the environment — read before touching
/// the database, so a missing setting stops start-up with nothing changed.
struct ServeConfig {
    bind: std::net::SocketAddr,
    secrets: Vec<String>,
    site: payledger::pages::Site,
}

fn serve_config() -> anyhow::Result<ServeConfig> {
    let bind = payledger::config::bind_address()?;
    Ok(ServeConfig {
        bind,
        secrets: payledger::config::webhook_secrets()?,
        site: payledger::pages::Site::from_env(bind)?,
    })
}

async fn serving_state(
    db: &Database,
    config: ServeConfig,
) -> anyhow::Result<(payledger::http::AppState, tokio::net::TcpListener)> {
    let clock: std::sync::Arc<dyn payledger::clock::Clock> = std::sync::Arc::new(SystemClock);
    payledger::pages::install_metrics();
    let bind = config.bind;
    let state = payledger::http::AppState::new(
        payledger::store::PgEventStore::new(db.pool.clone(), clock.clone()),
        clock,
        config.secrets,
    )
    .with_site(config.site);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on PAYLEDGER_BIND={bind}"))?;
    tracing::info!(%bind, database = %db.shown_url(), "serving");
    Ok((state, listener))
}

async fn connect(cli: &Cli) -> anyhow::Result<Database> {
    Ok(Database::connect(&database_url(cli)?, 8).await?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Migrate => {
            let url = database_url(&cli)?;
            if payledger::db::create_database_if_missing(&url).await? {
                println!("{}: created the database", payledger::db::redact_url(&url));
            }
            let db = connect(&cli).await?;
            let applied = db.migrate().await?;
            db.install_read_models().await?;
            if applied.is_empty() {
                println!("{}: already up to date", db.shown_url());
            } else {
                println!("{}: applied {}", db.shown_url(), applied.join(", "));
            }
        }
        Command::Work => {
            let config = payledger::worker::WorkerConfig::from_env()?;
            let db = connect(&cli).await?;
            db.migrate().await?;
            tracing::info!(database = %db.shown_url(), "worker started");
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                payledger::shutdown::signal().await;
                let _ = stop_tx.send(true);
            });
            payledger::worker::run(db.pool.clone(), db.config.clone(), config, stop).await?;
        }
        Command::Support { command } => {
            let db = connect(&cli).await?;
            let ctx = payledger::support::cli::SupportContext {
                store: payledger::store::PgEventStore::new(
                    db.pool.clone(),
                    std::sync::Arc::new(SystemClock),
                ),
                plans: match std::env::var("PAYLEDGER_PLANS") {
                    Ok(_) => payledger::plans::Plans::from_env()?,
                    Err(_) => Default::default(),
                },
                processor: payledger::config::processor_api().ok().map(|api| {
                    payledger::processor::client::ProcessorClient::new(
                        api.base,
                        api.api_key,
                        Default::default(),
                    )
                }),
            };
            if let Err(e) = payledger::support::cli::run(&ctx, command).await {
                eprintln!("payledger support: {e}");
                return Ok(ExitCode::from(1));
            }
        }
        Command::Audit {
            command: AuditCommand::Read(read),
        } => {
            let db = connect(&cli).await?;
            let code = payledger::audit::cli::run(&db.pool, read).await?;
            return Ok(ExitCode::from(code as u8));
        }
        Command::Projections {
            command: ProjectionsCommand::Status { json },
        } => {
            let db = connect(&cli).await?;
            let rows = payledger_projections::runner::status(&db.pool).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
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
                        match (r.error_position, r.last_error) {
                            (Some(p), Some(e)) => format!("at position {p}: {e}"),
                            _ => String::new(),
                        }
                    );
                }
            }
        }
        Command::Projections {
            command: ProjectionsCommand::Rebuild { name, all },
        } => {
            let db = connect(&cli).await?;
            db.migrate().await?;
            let chosen: Vec<_> = payledger_projections::all()
                .into_iter()
                .filter(|p| *all || name.as_deref() == Some(p.name()))
                .collect();
            if chosen.is_empty() {
                let names: Vec<_> = payledger_projections::all()
                    .iter()
                    .map(|p| p.name())
                    .collect();
                anyhow::bail!(
                    "name a projection to rebuild ({}) or pass --all; got {:?}",
                    names.join(", "),
                    name.as_deref().unwrap_or("nothing")
                );
            }
            // One read of the log feeds every chosen projection.
            let started = std::time::Instant::now();
            let batch = payledger::worker::PROJECTION_BATCH;
            for p in &chosen {
                payledger_projections::runner::install(&db.pool, p.as_ref(), batch).await?;
            }
            let refs: Vec<&dyn payledger_projections::Projection> =
                chosen.iter().map(|p| p.as_ref()).collect();
            let read = payledger_projections::runner::rebuild_many(&db.pool, &refs, batch).await?;
            let names: Vec<_> = chosen.iter().map(|p| p.name()).collect();
            println!(
                "{}: rebuilt from {read} events in {:.1?} and swapped in",
                names.join(", "),
                started.elapsed()
            );
        }
        Command::Reconcile {
            since,
            from,
            to,
            dry_run,
            json,
        } => {
            // Flags and settings first: a wrong one changes nothing.
            let window = parse_duration(since.as_deref().unwrap_or("2h"))?;
            let api = payledger::config::processor_api()?;
            let db = connect(&cli).await?;
            let processor = payledger::processor::client::ProcessorClient::new(
                api.base,
                api.api_key,
                Default::default(),
            );
            let now = chrono::Utc::now();
            let (from, to) = match (from, to) {
                (Some(f), Some(t)) => (*f, *t),
                _ => (now - window, now),
            };
            let store = payledger::store::PgEventStore::new(
                db.pool.clone(),
                std::sync::Arc::new(SystemClock),
            );
            let report =
                payledger::reconcile::reconcile(&store, &processor, from, to, *dry_run).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let verb = if *dry_run { "would append" } else { "appended" };
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
            }
        }
        Command::Serve => {
            let config = serve_config()?;
            let db = connect(&cli).await?;
            db.migrate().await?;
            db.install_read_models().await?;
            let (state, listener) = serving_state(&db, config).await?;
            payledger::http::serve(listener, state, payledger::shutdown::signal()).await?;
        }
        Command::Run => {
            let serve = serve_config()?;
            let config = payledger::worker::WorkerConfig::from_env()?;
            let db = connect(&cli).await?;
            db.migrate().await?;
            db.install_read_models().await?;
            let (state, listener) = serving_state(&db, serve).await?;
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
        }
        Command::Chaos {
            purchases,
            seed,
            json,
        } => {
            let url = database_url_or_default(&cli);
            let report = payledger::chaos::run(&url, *purchases, *seed).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                report.print();
            }
            if !report.violations.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Demo {
            reset,
            keep_running,
        } => {
            let url = database_url_or_default(&cli);
            let ok = payledger::demo::run(&url, *reset, *keep_running).await?;
            if !ok {
                return Ok(ExitCode::from(1));
            }
        }
        Command::ProcessorSim {
            bind,
            webhook_url,
            webhook_secret,
            seed,
            public_url,
        } => {
            let config = payledger::processor::sim::SimConfig {
                webhook_url: webhook_url.clone(),
                webhook_secret: webhook_secret.clone(),
                seed: *seed,
                public_url: public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{bind}")),
                retry: Default::default(),
            };
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            tracing::info!(%bind, webhook_url = ?webhook_url, seed, "processor simulator listening");
            payledger::processor::sim::serve(
                payledger::processor::sim::Simulator::new(config),
                listener,
            )
            .await?;
        }
        Command::Audit {
            command: AuditCommand::Keygen,
        } => println!("{}", payledger::audit::checkpoint::keygen()),
        Command::Audit {
            command: AuditCommand::Checkpoint { out },
        } => {
            use payledger::audit::checkpoint;
            let checkpoint::AuditKey::Signing(key) = checkpoint::key_from_env()? else {
                anyhow::bail!("PAYLEDGER_AUDIT_KEY holds a verifier key: signing needs the private key `audit keygen` printed");
            };
            let dir = out
                .clone()
                .or_else(|| std::env::var_os("PAYLEDGER_AUDIT_DIR").map(Into::into))
                .unwrap_or_else(|| ".".into());
            let db = connect(&cli).await?;
            let origin = checkpoint::origin(db.config.get_dbname().unwrap_or("payledger"));
            let (path, _) =
                checkpoint::write_checkpoint(&db.pool, &key, &origin, &dir, chrono::Utc::now())
                    .await?;
            println!("{}", path.display());
        }
        Command::Audit {
            command: AuditCommand::Verify { json, checkpoint },
        } => {
            let db = connect(&cli).await?;
            if !checkpoint.is_empty() {
                let broken =
                    payledger::audit::checkpoint::verify_files(&db.pool, checkpoint).await?;
                if broken > 0 {
                    return Ok(ExitCode::from(1));
                }
            }
            let report = verify_chain(&db.pool).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if let Some(b) = &report.first_break {
                println!(
                    "BROKEN at position {} (chain link {}): {}; {} links verified before it",
                    b.position, b.seq, b.reason, report.verified
                );
            } else {
                println!(
                    "OK: {} events verified; {} not sealed yet (the sealer in `work` seals them)",
                    report.verified, report.unsealed
                );
            }
            if report.first_break.is_some() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Bench {
            command: BenchCommand::Append { seconds, json },
        } => {
            let url = database_url_or_default(&cli);
            let report = payledger::bench::append::run_append_bench(&url, *seconds).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                payledger::bench::append::print_append_report(&report);
            }
        }
        Command::Bench {
            command:
                BenchCommand::Projections {
                    purchases,
                    rate,
                    latency_seconds,
                    json,
                },
        } => {
            let url = database_url_or_default(&cli);
            let report = payledger::bench::projections::run_projection_bench(
                &url,
                *purchases,
                *rate,
                *latency_seconds,
            )
            .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                payledger::bench::projections::print_projection_report(&report);
            }
        }
        Command::Bench {
            command: BenchCommand::Reconcile { charges, json },
        } => {
            let url = database_url_or_default(&cli);
            let rows = payledger::bench::reconcile::run_reconcile_bench(&url, *charges).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                payledger::bench::reconcile::print_reconcile_report(&rows);
            }
        }
        Command::Bench {
            command: BenchCommand::Webhook { seconds, json },
        } => {
            let url = database_url_or_default(&cli);
            let rows = payledger::bench::webhook::run_webhook_bench(&url, *seconds).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                payledger::bench::webhook::print_webhook_report(&rows, *seconds);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `90s`, `30m`, `2h`, `7d`.
fn parse_duration(text: &str) -> anyhow::Result<chrono::Duration> {
    payledger::config::parse_duration(text).map_err(|e| anyhow::anyhow!("--since {e}"))
}

// Rebuilds and replays hold a projection's whole state in many small rows;
// glibc's allocator spent a third of a rebuild's CPU (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo narrates on stdout; its log stays quiet unless asked.
    // Servers narrate; one-shot commands print their result and stay quiet.
    let server = matches!(
        cli.command,
        Command::Serve | Command::Work | Command::Run | Command::ProcessorSim { .. }
    );
    let default_level = if server || cli.verbose {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("payledger: {e:#}");
            ExitCode::from(2)
        }
    }
}
