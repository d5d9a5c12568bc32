//! Signed checkpoints on a schedule inside `work`: with `PAYLEDGER_AUDIT_KEY`
//! (a signing key) and `PAYLEDGER_AUDIT_DIR` set, one checkpoint every
//! `PAYLEDGER_AUDIT_EVERY` (default 1h) is written to the directory and,
//! with `PAYLEDGER_AUDIT_EMAIL`, mailed there — so a copy leaves the machine
//! the database runs on.

use super::checkpoint::{self, AuditKey};
use crate::config::{duration_setting, ConfigError};
use crate::reactors::mail::Mailer;
use deadpool_postgres::Pool;
use ed25519_dalek::SigningKey;
use lettre::message::Mailbox;
use lettre::Message;
use tokio::sync::watch;

pub struct CheckpointSchedule {
    pub key: SigningKey,
    pub dir: std::path::PathBuf,
    pub every: std::time::Duration,
    pub origin: String,
    pub email: Option<(Mailbox, Mailer)>,
}

impl CheckpointSchedule {
    /// `None` (and a line in the log saying so) unless both the key and the
    /// directory are set.
    pub fn from_env(database_name: &str) -> Result<Option<Self>, ConfigError> {
        let (Some(_), Some(dir)) = (
            crate::config::var("PAYLEDGER_AUDIT_KEY"),
            crate::config::var_os("PAYLEDGER_AUDIT_DIR"),
        ) else {
            tracing::info!("signed audit checkpoints are off (set PAYLEDGER_AUDIT_KEY and PAYLEDGER_AUDIT_DIR)");
            return Ok(None);
        };
        let key = match checkpoint::key_from_env() {
            Ok(AuditKey::Signing(k)) => k,
            Ok(AuditKey::Verifying(_)) => return Err(ConfigError::Invalid {
                name: "PAYLEDGER_AUDIT_KEY",
                reason:
                    "holds a verifier key; `work` signs, so it needs the key `audit keygen` printed"
                        .into(),
            }),
            Err(e) => {
                return Err(ConfigError::Invalid {
                    name: "PAYLEDGER_AUDIT_KEY",
                    reason: e.to_string(),
                })
            }
        };
        let every = duration_setting("PAYLEDGER_AUDIT_EVERY", chrono::Duration::hours(1))?
            .to_std()
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(ConfigError::Invalid {
                name: "PAYLEDGER_AUDIT_EVERY",
                reason: "must be longer than zero".into(),
            })?;
        let email = match crate::config::var("PAYLEDGER_AUDIT_EMAIL") {
            None => None,
            Some(to) => {
                let to: Mailbox = to.trim().parse().map_err(|e| ConfigError::Invalid {
                    name: "PAYLEDGER_AUDIT_EMAIL",
                    reason: format!("{to:?} is not an address ({e})"),
                })?;
                let mailer = Mailer::from_env()?.ok_or(ConfigError::Missing {
                    name: "SMTP_URL",
                    hint: "PAYLEDGER_AUDIT_EMAIL needs SMTP_URL or PAYLEDGER_MAIL_DIR to send with",
                })?;
                Some((to, mailer))
            }
        };
        Ok(Some(CheckpointSchedule {
            key,
            dir: dir.into(),
            every,
            origin: checkpoint::origin(database_name),
            email,
        }))
    }
}

/// One checkpoint: written, then mailed when an address is set.
pub async fn checkpoint_once(
    pool: &Pool,
    s: &CheckpointSchedule,
) -> anyhow::Result<std::path::PathBuf> {
    let (path, cp) =
        checkpoint::write_checkpoint(pool, &s.key, &s.origin, &s.dir, chrono::Utc::now()).await?;
    if let Some((to, mailer)) = &s.email {
        let note = std::fs::read_to_string(&path)?;
        let message = Message::builder()
            .from(mailer.from.clone())
            .to(to.clone())
            .subject(format!("payledger checkpoint: {} events, {}", cp.size, cp.origin))
            .body(format!(
                "A signed checkpoint of the payledger event log. Keep it: `payledger audit verify --checkpoint FILE` proves the log still holds these events.\n\n{note}"
            ))?;
        mailer
            .send(message)
            .await
            .map_err(|f| anyhow::anyhow!("mailing the checkpoint failed: {}", f.message))?;
    }
    Ok(path)
}

pub async fn run(pool: Pool, schedule: CheckpointSchedule, mut stop: watch::Receiver<bool>) {
    loop {
        match checkpoint_once(&pool, &schedule).await {
            Ok(path) => tracing::info!(path = %path.display(), "wrote a signed audit checkpoint"),
            Err(e) => {
                tracing::warn!(error = %e, "audit checkpoint failed; will try at the next interval")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(schedule.every) => {}
            _ = stop.changed() => return,
        }
    }
}
