//! Side effects driven by the read models: the email sender, auto-rescue
//! and support alerts. Each records what it did as events, so the read
//! models (and the auditors) see it.

pub mod alerts;
pub mod app_webhooks;
pub mod mail;
pub mod renewal_check;
pub mod renewal_disagreement;
mod renewal_view;
pub mod rescue;
pub mod sender;

use crate::config::{duration_setting, ConfigError};
use crate::plans::Plans;
use crate::store::PgEventStore;
use tokio::sync::watch;

/// Which reactors `work` runs, from the environment; each that lacks its
/// settings is off, and says so once at start-up.
#[derive(Clone, Default)]
pub struct Reactors {
    pub sender: Option<(mail::Mailer, sender::SenderConfig)>,
    pub rescue: Option<(Plans, chrono::Duration)>,
    pub alerts: Option<alerts::AlertConfig>,
    /// Asks the processor before a renewing plan's access ends (and how
    /// often again while a renewal is overdue).
    pub renewal_check: Option<(crate::processor::client::ProcessorClient, chrono::Duration)>,
    /// Records the reminders owed before yearly renewals.
    pub reminders: renewal_check::Reminders,
    /// Tells the product's application (spec §13); the URL and secret of
    /// `PAYLEDGER_APP_WEBHOOK_URL` / `_SECRET`, when set.
    pub app_webhooks: app_webhooks::sender::AppWebhookConfig,
    pub app_webhook_endpoint: Option<(String, String)>,
}

impl Reactors {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mailer = mail::Mailer::from_env()?;
        let plans = match crate::config::var("PAYLEDGER_PLANS") {
            Some(_) => Some(Plans::from_env()?),
            None => None,
        };
        let support = crate::config::var("PAYLEDGER_SUPPORT_EMAIL");
        let mut reactors = Reactors::default();
        match &mailer {
            Some(m) => {
                let mut config = sender::SenderConfig {
                    lease: duration_setting("PAYLEDGER_MAIL_LEASE", chrono::Duration::seconds(60))?,
                    first_backoff: duration_setting(
                        "PAYLEDGER_MAIL_BACKOFF",
                        chrono::Duration::seconds(5),
                    )?,
                    plans: plans.clone().unwrap_or_default(),
                    pending_window: crate::config::pending_window()?,
                    zone: crate::config::timezone()?,
                    ..Default::default()
                };
                if let Some(n) = crate::config::var("PAYLEDGER_MAIL_CONCURRENCY") {
                    config.concurrency =
                        n.parse()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or(ConfigError::Invalid {
                                name: "PAYLEDGER_MAIL_CONCURRENCY",
                                reason: format!("{n:?} is not a positive number"),
                            })?;
                }
                if let Some(n) = crate::config::var("PAYLEDGER_MAIL_MAX_ATTEMPTS") {
                    config.max_attempts =
                        n.parse()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or(ConfigError::Invalid {
                                name: "PAYLEDGER_MAIL_MAX_ATTEMPTS",
                                reason: format!("{n:?} is not a positive number"),
                            })?;
                }
                if let Some(u) = crate::config::var("PAYLEDGER_PUBLIC_URL") {
                    config.public_url = u.trim_end_matches('/').to_string();
                }
                if let Some(s) = &support {
                    config.support_email = s.clone();
                }
                reactors.sender = Some((m.clone(), config));
            }
            None => tracing::warn!("the email sender is off: set SMTP_URL or PAYLEDGER_MAIL_DIR"),
        }
        let days = match crate::config::var("PAYLEDGER_RENEWAL_REMINDER_DAYS") {
            None => 30,
            Some(raw) => raw
                .trim()
                .parse()
                .ok()
                .filter(|d| (0..=366).contains(d))
                .ok_or(ConfigError::Invalid {
                    name: "PAYLEDGER_RENEWAL_REMINDER_DAYS",
                    reason: format!("{raw:?} is not a number of days from 0 to 366"),
                })?,
        };
        if let Some(p) = &plans {
            reactors.reminders = renewal_check::Reminders::of(p, days);
        }
        match plans {
            Some(p) => {
                let grace =
                    duration_setting("PAYLEDGER_RESCUE_GRACE", chrono::Duration::minutes(2))?;
                reactors.rescue = Some((p, grace));
            }
            None => tracing::warn!("auto-rescue is off: set PAYLEDGER_PLANS"),
        }
        let webhook = match crate::config::var("PAYLEDGER_ALERT_WEBHOOK") {
            Some(raw) => Some(url::Url::parse(&raw).map_err(|_| ConfigError::Invalid {
                name: "PAYLEDGER_ALERT_WEBHOOK",
                reason: "not a URL".into(),
            })?),
            None => None,
        };
        let email = match (&support, &mailer) {
            (Some(s), Some(m)) => Some((
                s.parse().map_err(|_| ConfigError::Invalid {
                    name: "PAYLEDGER_SUPPORT_EMAIL",
                    reason: format!("{s:?} is not an address"),
                })?,
                m.clone(),
            )),
            _ => None,
        };
        if webhook.is_some() || email.is_some() {
            reactors.alerts = Some(alerts::AlertConfig {
                webhook,
                email,
                interval: duration_setting(
                    "PAYLEDGER_ALERT_INTERVAL",
                    chrono::Duration::minutes(1),
                )?,
                tick: std::time::Duration::from_secs(2),
            });
        } else {
            tracing::warn!("support alerts are off: set PAYLEDGER_ALERT_WEBHOOK and/or PAYLEDGER_SUPPORT_EMAIL (with a mail transport)");
        }
        match crate::config::processor_api() {
            Ok(api) => {
                let again =
                    duration_setting("PAYLEDGER_RENEWAL_RECHECK", chrono::Duration::minutes(10))?;
                reactors.renewal_check = Some((api.client(), again));
            }
            Err(e) => {
                tracing::warn!(error = %e, "the check before a renewing plan's access ends is off")
            }
        }
        reactors.app_webhooks.lease =
            duration_setting("PAYLEDGER_APP_WEBHOOK_LEASE", chrono::Duration::seconds(60))?;
        match (
            crate::config::var("PAYLEDGER_APP_WEBHOOK_URL"),
            crate::config::var("PAYLEDGER_APP_WEBHOOK_SECRET"),
        ) {
            (Some(url), Some(secret)) => {
                app_webhooks::signing::valid_secret(secret.trim()).map_err(|reason| {
                    ConfigError::Invalid {
                        name: "PAYLEDGER_APP_WEBHOOK_SECRET",
                        reason,
                    }
                })?;
                reactors.app_webhook_endpoint = Some((url.trim().into(), secret.trim().into()));
            }
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    name: "PAYLEDGER_APP_WEBHOOK_SECRET",
                    reason: "PAYLEDGER_APP_WEBHOOK_URL is set; messages need a secret to be signed with (whsec_ + base64 of 24 or more random bytes)".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "PAYLEDGER_APP_WEBHOOK_URL",
                    reason: "PAYLEDGER_APP_WEBHOOK_SECRET is set but no URL to send to".into(),
                })
            }
            (None, None) => {}
        }
        Ok(reactors)
    }

    /// Spawns every configured reactor; they stop when `stop` turns true.
    pub fn spawn(
        self,
        store: PgEventStore,
        stop: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![];
        if let Some((mailer, config)) = self.sender {
            tasks.push(tokio::spawn(sender::run(
                store.clone(),
                mailer,
                config,
                stop.clone(),
            )));
        }
        if let Some((plans, grace)) = self.rescue {
            let (store, mut stop) = (store.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    if let Err(e) = rescue::rescue_due(&store, &plans, grace).await {
                        tracing::warn!(error = %e, "auto-rescue pass failed; will retry");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                        _ = stop.changed() => return,
                    }
                }
            }));
        }
        if let Some((processor, again)) = self.renewal_check {
            let (store, mut stop) = (store.clone(), stop.clone());
            let reminders = self.reminders.clone();
            tasks.push(tokio::spawn(async move {
                let mut asked = renewal_check::Asked::default();
                loop {
                    let pass = renewal_check::ask_before_access_ends(
                        &store,
                        &processor,
                        chrono::Duration::hours(1),
                        &mut asked,
                        again,
                    )
                    .await;
                    if let Err(e) = pass {
                        tracing::warn!(error = %e, "asking the processor before access ends failed; will retry");
                    }
                    if let Err(e) = renewal_check::remind_before_renewals(&store, &reminders).await {
                        tracing::warn!(error = %e, "recording renewal reminders failed; will retry");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                        _ = stop.changed() => return,
                    }
                }
            }));
        }
        {
            let (store, stop) = (store.clone(), stop.clone());
            let (config, endpoint) = (self.app_webhooks, self.app_webhook_endpoint);
            tasks.push(tokio::spawn(async move {
                if let Some((url, secret)) = endpoint {
                    if let Err(e) =
                        app_webhooks::endpoints::ensure_configured(&store, &url, &secret).await
                    {
                        tracing::error!(error = %e, "PAYLEDGER_APP_WEBHOOK_URL: the endpoint could not be recorded");
                    }
                }
                app_webhooks::sender::run(store, config, stop).await;
            }));
        }
        if let Some(config) = self.alerts {
            tasks.push(tokio::spawn(alerts::run(store, config, stop)));
        }
        tasks
    }
}
