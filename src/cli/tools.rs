//! The support desk, and the tools around the product: chaos, demo and
//! the processor simulator.

use super::{output, Cli};
use anyhow::Context;
use payledger::clock::SystemClock;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ChaosArgs {
    #[arg(long, default_value_t = 300)]
    purchases: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Drop the demo database first.
    #[arg(long)]
    reset: bool,
    /// Leave the server and the simulator running at the end.
    #[arg(long)]
    keep_running: bool,
}

#[derive(clap::Args)]
pub struct ProcessorSimArgs {
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
    /// The API version whose wire shapes to send: the current one by
    /// default; `2020-03-02` sends the older shapes (the period on the
    /// subscription, the subscription on the invoice).
    #[arg(long)]
    api_version: Option<String>,
}

pub async fn support(
    cli: &Cli,
    command: &payledger::support::cli::SupportCommand,
) -> anyhow::Result<ExitCode> {
    let db = cli.connect().await?;
    let ctx = payledger::support::cli::SupportContext {
        store: payledger::store::PgEventStore::new(
            db.pool.clone(),
            std::sync::Arc::new(SystemClock),
        ),
        plans: match payledger::config::var("PAYLEDGER_PLANS") {
            Some(_) => payledger::plans::Plans::from_env()?,
            None => Default::default(),
        },
        processor: payledger::config::processor_api()
            .ok()
            .map(|api| api.client()),
    };
    if let Err(e) = payledger::support::cli::run(&ctx, command).await {
        eprintln!("payledger support: {e}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn chaos(cli: &Cli, args: &ChaosArgs) -> anyhow::Result<ExitCode> {
    let bar = output::progress_unless(args.json, args.purchases as u64, "purchases through kills");
    let report = crate::tooling::chaos::run(
        &cli.database_url_or_default(),
        args.purchases,
        args.seed,
        &bar,
    )
    .await?;
    bar.finish_and_clear();
    output::print(args.json, &report, |r| r.print())?;
    Ok(output::exit_code(!report.violations.is_empty()))
}

pub async fn demo(cli: &Cli, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let ok = crate::tooling::demo::run(
        &cli.database_url_or_default(),
        args.reset,
        args.keep_running,
    )
    .await?;
    Ok(output::exit_code(!ok))
}

pub async fn processor_sim(args: &ProcessorSimArgs) -> anyhow::Result<ExitCode> {
    let bind = args.bind;
    let config = payledger_sim::SimConfig {
        webhook_url: args.webhook_url.clone(),
        webhook_secret: args.webhook_secret.clone(),
        seed: args.seed,
        public_url: args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bind}")),
        retry: Default::default(),
        api_version: args.api_version.clone(),
        // The renewing plans' prices, when PAYLEDGER_PLANS names them.
        prices: match payledger::config::var("PAYLEDGER_PLANS") {
            Some(_) => payledger::plans::Plans::from_env()?
                .all()
                .iter()
                .filter_map(|p| {
                    Some(payledger_sim::SimPrice {
                        id: p.processor_price_id.clone().filter(|_| p.renews)?,
                        amount: p.amount,
                        currency: p.currency.as_str().to_string(),
                        period: p.period,
                    })
                })
                .collect(),
            None => vec![],
        },
    };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    tracing::info!(%bind, webhook_url = ?args.webhook_url, seed = args.seed, "processor simulator listening");
    payledger_sim::serve(payledger_sim::Simulator::new(config), listener).await?;
    Ok(ExitCode::SUCCESS)
}

pub fn settings(markdown: bool) -> ExitCode {
    if markdown {
        print!("{}", payledger::config::settings_markdown());
        return ExitCode::SUCCESS;
    }
    for s in payledger::config::SETTINGS {
        let set = if payledger::config::var_os(s.name).is_some() {
            "set"
        } else {
            "-"
        };
        let default = if s.default.is_empty() { "-" } else { s.default };
        println!("{:<34} {set:<4} default {default:<24} {}", s.name, s.what);
    }
    ExitCode::SUCCESS
}
