//! `PAYLEDGER_FOLLOW_SIM_CLOCK=1` (development only): payledger's clock
//! reads the simulator's, so reminders, retries and endings happen when the
//! simulator's clock says, and can be shown and tested end to end. Refused
//! unless the processor is on this machine: a real processor's clock is the
//! machine's.

use crate::clock::Clock;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The machine's time moved by the simulator's offset.
#[derive(Default)]
pub struct FollowedClock {
    offset_seconds: AtomicI64,
}

impl Clock for FollowedClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = chrono::Duration::seconds(self.offset_seconds.load(Ordering::Relaxed));
        Utc::now()
            .checked_add_signed(offset)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn wall(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("PAYLEDGER_FOLLOW_SIM_CLOCK is for the simulator only: STRIPE_API_BASE {0:?} is not a loopback address")]
    NotLoopback(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot read the simulator's clock at {url}: {reason}")]
    Unreadable { url: String, reason: String },
}

impl FollowedClock {
    /// Reads the simulator's clock once and follows it from now on.
    pub async fn sync(&self, api_base: &str) -> Result<(), FollowError> {
        let url = format!("{}/_sim/clock", api_base.trim_end_matches('/'));
        let unreadable = |reason: String| FollowError::Unreadable {
            url: url.clone(),
            reason,
        };
        let body: serde_json::Value = reqwest::get(&url)
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| unreadable(e.to_string()))?
            .json()
            .await
            .map_err(|e| unreadable(e.to_string()))?;
        let sim_now = body
            .get("now")
            .and_then(|n| n.as_i64())
            .ok_or_else(|| unreadable(format!("no \"now\" in {body}")))?;
        self.offset_seconds
            .store(sim_now - Utc::now().timestamp(), Ordering::Relaxed);
        Ok(())
    }
}

/// The clock `serve`, `work` and `run` use: the machine's, or with
/// `PAYLEDGER_FOLLOW_SIM_CLOCK=1` the simulator's at `STRIPE_API_BASE`.
pub async fn clock_from_env() -> Result<Arc<dyn Clock>, FollowError> {
    match crate::config::var("PAYLEDGER_FOLLOW_SIM_CLOCK")
        .as_deref()
        .map(str::trim)
    {
        None | Some("") | Some("0") => Ok(Arc::new(crate::clock::SystemClock)),
        Some("1") => {
            let base = crate::config::var("STRIPE_API_BASE").unwrap_or_default();
            let clock: Arc<dyn Clock> = follow(&base).await?;
            tracing::warn!(%base, "PAYLEDGER_FOLLOW_SIM_CLOCK: following the simulator's clock (development only)");
            Ok(clock)
        }
        Some(other) => Err(FollowError::Config(crate::config::ConfigError::Invalid {
            name: "PAYLEDGER_FOLLOW_SIM_CLOCK",
            reason: format!("{other:?} is neither 1 nor 0"),
        })),
    }
}

/// Whether `base` is a processor on this machine.
pub fn is_loopback(base: &str) -> bool {
    url::Url::parse(base).is_ok_and(|u| match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    })
}

/// The followed clock, synced once (so start-up fails loudly when the
/// simulator cannot be read) and then every second in the background.
pub async fn follow(api_base: &str) -> Result<Arc<FollowedClock>, FollowError> {
    if !is_loopback(api_base) {
        return Err(FollowError::NotLoopback(api_base.to_string()));
    }
    let clock = Arc::new(FollowedClock::default());
    clock.sync(api_base).await?;
    let (following, base) = (clock.clone(), api_base.to_string());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = following.sync(&base).await {
                tracing::warn!(error = %e, "lost the simulator's clock; keeping the last offset");
            }
        }
    });
    Ok(clock)
}
