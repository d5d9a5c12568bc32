//! The customer-facing side's settings, read once at start-up.

use super::{limiter, proxies};
use crate::config::ConfigError;
use crate::plans::Plans;
use crate::processor::client::ProcessorClient;
use payledger_events::email::valid_email;
use std::sync::Arc;

/// Settings of the customer-facing side.
#[derive(Clone)]
pub struct Site {
    pub plans: Plans,
    /// Where customers reach payledger (for the processor's return URL).
    pub public_url: String,
    pub processor: Option<ProcessorClient>,
    pub support_email: String,
    pub api_token: Option<String>,
    /// `PAYLEDGER_METRICS_TOKEN`: when set, `/metrics` wants it as a bearer.
    pub metrics_token: Option<String>,
    /// How long "pending" is honest before the page says a person is on it.
    pub pending_window: chrono::Duration,
    /// PAYLEDGER_PAST_DUE_ACCESS: access while a failed renewal is retried.
    pub past_due_access: payledger_projections::read::subscriptions::PastDueAccess,
    /// PAYLEDGER_TIMEZONE: the zone of the dates pages show.
    pub zone: chrono_tz::Tz,
    pub limiter: Arc<limiter::RateLimiter>,
    /// Timeouts and the connection cap of the HTTP server.
    pub http_limits: crate::http_limits::HttpLimits,
    /// `PAYLEDGER_TRUSTED_PROXIES`: whose `X-Forwarded-For` is believed.
    pub trusted_proxies: proxies::TrustedProxies,
    /// Checkouts per client address (the processor session each one opens
    /// is not free, and the events can never be deleted).
    pub checkout_limiter: Arc<limiter::RateLimiter>,
    /// When `/metrics` last read its gauges from this site's database.
    pub gauges_read_at: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            plans: Plans::default(),
            public_url: "http://127.0.0.1:8080".into(),
            processor: None,
            support_email: "support@example.com".into(),
            api_token: None,
            metrics_token: None,
            pending_window: chrono::Duration::minutes(3),
            past_due_access: Default::default(),
            zone: chrono_tz::UTC,
            limiter: Arc::new(limiter::RateLimiter::default()),
            http_limits: Default::default(),
            trusted_proxies: Default::default(),
            checkout_limiter: Arc::new(limiter::RateLimiter::checkouts()),
            gauges_read_at: Default::default(),
        }
    }
}

impl Site {
    /// `PAYLEDGER_PLANS`, `PAYLEDGER_PUBLIC_URL` (default `http://BIND`),
    /// `STRIPE_API_KEY`/`STRIPE_API_BASE`, `PAYLEDGER_SUPPORT_EMAIL`,
    /// `PAYLEDGER_API_TOKEN` (optional: without it `/api/access` refuses
    /// everyone), `PAYLEDGER_PENDING_WINDOW` (default 3m).
    pub fn from_env(bind: std::net::SocketAddr) -> Result<Self, ConfigError> {
        let plans = Plans::from_env()?;
        let public_url = crate::config::var("PAYLEDGER_PUBLIC_URL")
            .map(|u| u.trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("http://{bind}"));
        url::Url::parse(&public_url).map_err(|e| ConfigError::Invalid {
            name: "PAYLEDGER_PUBLIC_URL",
            reason: format!("{public_url:?} is not a URL ({e})"),
        })?;
        let api = crate::config::processor_api()?;
        let support_email =
            crate::config::var("PAYLEDGER_SUPPORT_EMAIL").ok_or(ConfigError::Missing {
                name: "PAYLEDGER_SUPPORT_EMAIL",
                hint: "the address customers are told to write to, e.g. support@example.com",
            })?;
        if !valid_email(&support_email) {
            return Err(ConfigError::Invalid {
                name: "PAYLEDGER_SUPPORT_EMAIL",
                reason: format!("{support_email:?} is not an email address"),
            });
        }
        let api_token = crate::config::var("PAYLEDGER_API_TOKEN");
        if api_token.is_none() {
            tracing::warn!("PAYLEDGER_API_TOKEN is not set: /api/access refuses every request");
        }
        Ok(Site {
            plans,
            public_url,
            processor: Some(api.client()),
            support_email,
            api_token,
            metrics_token: crate::config::var("PAYLEDGER_METRICS_TOKEN"),
            zone: crate::config::timezone()?,
            pending_window: crate::config::pending_window()?,
            past_due_access: crate::config::past_due_access()?,
            limiter: Arc::new(limiter::RateLimiter::default()),
            http_limits: crate::http_limits::HttpLimits::from_env()?,
            trusted_proxies: proxies::TrustedProxies::parse(
                &crate::config::var("PAYLEDGER_TRUSTED_PROXIES").unwrap_or_default(),
            )
            .map_err(|reason| ConfigError::Invalid {
                name: "PAYLEDGER_TRUSTED_PROXIES",
                reason,
            })?,
            checkout_limiter: Arc::new(limiter::RateLimiter::checkouts()),
            gauges_read_at: Default::default(),
        })
    }
}
