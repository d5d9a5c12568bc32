//! `app-webhooks`: the endpoints of the product's application (spec §13).

use super::{output, Cli};
use payledger::clock::SystemClock;
use payledger::reactors::app_webhooks::endpoints;
use payledger::store::PgEventStore;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Subcommand)]
pub enum AppWebhookCommand {
    /// Add an endpoint; prints its id and signing secret (shown once).
    Add {
        url: String,
        /// Message types it wants, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        #[arg(long = "as", env = "PAYLEDGER_ACTOR")]
        actor: String,
        #[arg(long)]
        json: bool,
    },
    /// The endpoints and their messages (pending, sent, failed).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop sending to an endpoint.
    Disable {
        endpoint_id: String,
        #[arg(long = "as", env = "PAYLEDGER_ACTOR")]
        actor: String,
    },
    /// A new secret; the old one keeps signing beside it for 24 hours.
    RotateSecret {
        endpoint_id: String,
        #[arg(long = "as", env = "PAYLEDGER_ACTOR")]
        actor: String,
        #[arg(long)]
        json: bool,
    },
    /// Send the messages since a moment again, with their original ids.
    Replay {
        endpoint_id: String,
        /// RFC 3339 moment or a day (2026-11-28).
        #[arg(long, value_parser = payledger::audit::cli::moment)]
        since: chrono::DateTime<chrono::Utc>,
        #[arg(long = "as", env = "PAYLEDGER_ACTOR")]
        actor: String,
    },
    /// Every attempt to an endpoint: status, latency, the answer's first bytes.
    Deliveries {
        endpoint_id: String,
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cli: &Cli, command: &AppWebhookCommand) -> anyhow::Result<ExitCode> {
    let db = cli.connect().await?;
    let store = PgEventStore::new(db.pool.clone(), Arc::new(SystemClock));
    let actor = |name: &str| payledger::support::actions::actor(name);
    match command {
        AppWebhookCommand::Add {
            url,
            types,
            actor: name,
            json,
        } => {
            let added = endpoints::add(&store, url, types.clone(), &actor(name)?).await?;
            output::print(*json, &added, |a| {
                println!("added endpoint {}", a.endpoint_id);
                println!(
                    "signing secret (shown once; keep it in the application): {}",
                    a.secret
                );
            })?;
        }
        AppWebhookCommand::List { json } => {
            let list = endpoints::list(&store).await?;
            output::print(*json, &list, |list| {
                if list.is_empty() {
                    println!("no endpoints (app-webhooks add <url> --as NAME)");
                }
                for e in list {
                    println!(
                        "{}  {}  {}  types: {}  pending {} · sent {} · failed {}{}",
                        e.endpoint_id,
                        if e.enabled { "enabled " } else { "disabled" },
                        e.url,
                        if e.types.is_empty() {
                            "all".into()
                        } else {
                            e.types.join(",")
                        },
                        e.pending,
                        e.sent,
                        e.failed,
                        e.disabled_reason
                            .as_ref()
                            .map(|r| format!("  ({r})"))
                            .unwrap_or_default()
                    );
                }
            })?;
        }
        AppWebhookCommand::Disable {
            endpoint_id,
            actor: name,
        } => {
            let who = actor(name)?;
            let reason = format!("disabled by {who}");
            if endpoints::disable(&store, endpoint_id, &reason, &who).await? {
                println!("disabled {endpoint_id}");
            } else {
                println!("{endpoint_id} was already disabled; nothing done");
            }
        }
        AppWebhookCommand::RotateSecret {
            endpoint_id,
            actor: name,
            json,
        } => {
            let secret = endpoints::rotate_secret(&store, endpoint_id, &actor(name)?).await?;
            output::print(
                *json,
                &serde_json::json!({"endpoint_id": endpoint_id, "secret": secret}),
                |_| {
                    println!("new signing secret for {endpoint_id} (shown once): {secret}");
                    println!(
                        "the previous secret keeps signing beside it for {} hours",
                        endpoints::ROTATION_OVERLAP_HOURS
                    );
                },
            )?;
        }
        AppWebhookCommand::Replay {
            endpoint_id,
            since,
            actor: name,
        } => {
            let n = endpoints::replay(&store, endpoint_id, *since, &actor(name)?).await?;
            println!("{n} messages since {since} queued again for {endpoint_id}, with their original ids");
        }
        AppWebhookCommand::Deliveries {
            endpoint_id,
            failed,
            json,
        } => {
            let attempts = endpoints::deliveries(&store, endpoint_id, *failed).await?;
            output::print(*json, &attempts, |list| {
                if list.is_empty() {
                    println!(
                        "no {}attempts to {endpoint_id} yet",
                        if *failed { "failed " } else { "" }
                    );
                }
                for a in list {
                    println!(
                        "{}  {}  attempt {}  {}  {} ms  {}{}",
                        a.attempted_at.format("%Y-%m-%d %H:%M:%S"),
                        a.message_id,
                        a.attempt,
                        a.status_code.map_or("no answer".into(), |s| s.to_string()),
                        a.latency_ms,
                        a.message_status,
                        a.error
                            .as_ref()
                            .or(a.response.as_ref())
                            .map(|t| format!("  {t}"))
                            .unwrap_or_default()
                    );
                }
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
