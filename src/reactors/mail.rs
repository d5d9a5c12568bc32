//! Where email goes: an SMTP server (`SMTP_URL`) or `.eml` files in
//! `PAYLEDGER_MAIL_DIR`, from `PAYLEDGER_MAIL_FROM`.

use crate::config::ConfigError;
use lettre::message::Mailbox;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    pub transport: Transport,
    pub from: Mailbox,
}

/// Why a message was not handed over, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendFailure {
    pub message: String,
    /// 5xx from the server, or an address that can never work.
    pub permanent: bool,
}

impl Mailer {
    /// `SMTP_URL` (e.g. `smtp://127.0.0.1:2525`, `smtps://user:pass@host`,
    /// `smtp://host:587?tls=required`) or else `PAYLEDGER_MAIL_DIR`; `None`
    /// when neither is set. `PAYLEDGER_MAIL_FROM` defaults to
    /// `payments@localhost`.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let from_raw = crate::config::var("PAYLEDGER_MAIL_FROM")
            .unwrap_or_else(|| "payments@localhost".into());
        let from: Mailbox = from_raw.trim().parse().map_err(|e| ConfigError::Invalid {
            name: "PAYLEDGER_MAIL_FROM",
            reason: format!("{from_raw:?} is not an address: {e}"),
        })?;
        if let Some(url) = crate::config::var("SMTP_URL") {
            return Ok(Some(Mailer::smtp(url.trim(), from)?));
        }
        if let Some(dir) = crate::config::var("PAYLEDGER_MAIL_DIR") {
            return Ok(Some(Mailer::files(dir.trim().into(), from)?));
        }
        Ok(None)
    }

    pub fn smtp(url: &str, from: Mailbox) -> Result<Self, ConfigError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| ConfigError::Invalid {
                name: "SMTP_URL",
                // The URL may carry a password: never echo it.
                reason: format!("not a usable SMTP URL: {e}"),
            })?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        Ok(Mailer {
            transport: Transport::Smtp(transport),
            from,
        })
    }

    pub fn files(dir: std::path::PathBuf, from: Mailbox) -> Result<Self, ConfigError> {
        std::fs::create_dir_all(&dir).map_err(|e| ConfigError::Invalid {
            name: "PAYLEDGER_MAIL_DIR",
            reason: format!("cannot create {}: {e}", dir.display()),
        })?;
        Ok(Mailer {
            transport: Transport::Files(AsyncFileTransport::new(&dir), dir),
            from,
        })
    }

    /// The domain Message-IDs are minted under.
    pub fn domain(&self) -> String {
        self.from.email.domain().to_string()
    }

    pub async fn send(&self, message: Message) -> Result<(), SendFailure> {
        match &self.transport {
            Transport::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| SendFailure {
                permanent: e.is_permanent(),
                message: format!("SMTP: {e}"),
            }),
            Transport::Files(t, dir) => {
                t.send(message).await.map(|_| ()).map_err(|e| SendFailure {
                    permanent: false,
                    message: format!("writing to {}: {e}", dir.display()),
                })
            }
        }
    }
}
