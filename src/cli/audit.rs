//! The auditor's commands: verify, keygen, checkpoint, and the reads
//! (`log`, `replay`, `invariants`) in `payledger::audit::cli`.

use super::{output, Cli};
use payledger::audit::checkpoint;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
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

pub async fn run(cli: &Cli, command: &AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Read(read) => {
            let db = cli.connect().await?;
            // Only an export to a file counts on the terminal: with the log
            // on the terminal itself, the count would cut into it.
            let exporting = !std::io::IsTerminal::is_terminal(&std::io::stdout());
            let bar = output::counter("events written", !exporting);
            let code = payledger::audit::cli::run(&db.pool, read, &|n| bar.set_position(n)).await;
            bar.finish_and_clear();
            let code = code?;
            Ok(ExitCode::from(code as u8))
        }
        AuditCommand::Keygen => {
            println!("{}", checkpoint::keygen());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Checkpoint { out } => write_checkpoint(cli, out.clone()).await,
        AuditCommand::Verify { json, checkpoint } => verify(cli, *json, checkpoint).await,
    }
}

async fn write_checkpoint(cli: &Cli, out: Option<std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    let checkpoint::AuditKey::Signing(key) = checkpoint::key_from_env()? else {
        anyhow::bail!("PAYLEDGER_AUDIT_KEY holds a verifier key: signing needs the private key `audit keygen` printed");
    };
    let dir = out
        .or_else(|| payledger::config::var_os("PAYLEDGER_AUDIT_DIR").map(Into::into))
        .unwrap_or_else(|| ".".into());
    let db = cli.connect().await?;
    let origin = checkpoint::origin(db.config.get_dbname().unwrap_or("payledger"));
    let (path, _) =
        checkpoint::write_checkpoint(&db.pool, &key, &origin, &dir, chrono::Utc::now()).await?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

async fn verify(
    cli: &Cli,
    json: bool,
    checkpoints: &[std::path::PathBuf],
) -> anyhow::Result<ExitCode> {
    let db = cli.connect().await?;
    if !checkpoints.is_empty() && checkpoint::verify_files(&db.pool, checkpoints).await? > 0 {
        return Ok(ExitCode::from(1));
    }
    let links = payledger::store::chain_length(&db.pool).await?;
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        output::progress(links, "verifying the hash chain")
    };
    let report = payledger::store::verify_chain_reporting(&db.pool, &|n| bar.set_position(n)).await;
    bar.finish_and_clear();
    let report = report?;
    output::print(json, &report, |report| match &report.first_break {
        Some(b) => println!(
            "BROKEN at position {} (chain link {}): {}; {} links verified before it",
            b.position, b.seq, b.reason, report.verified
        ),
        None => println!(
            "OK: {} events verified; {} not sealed yet (the sealer in `work` seals them)",
            report.verified, report.unsealed
        ),
    })?;
    Ok(output::exit_code(report.first_break.is_some()))
}
