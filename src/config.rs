//! Settings from the environment (spec §11). A missing or malformed setting
//! stops start-up with a message that names it; secrets are never printed.

use std::fmt;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name} is not set: {hint}")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("{name} is malformed: {reason}")]
    Invalid { name: &'static str, reason: String },
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn required(name: &'static str, hint: &'static str) -> Result<String, ConfigError> {
    var(name).ok_or(ConfigError::Missing { name, hint })
}

pub fn database_url() -> Result<String, ConfigError> {
    required(
        "DATABASE_URL",
        "point it at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/payledger",
    )
}

pub fn bind_address() -> Result<SocketAddr, ConfigError> {
    let raw = var("PAYLEDGER_BIND").unwrap_or_else(|| "127.0.0.1:8080".into());
    raw.parse().map_err(|e| ConfigError::Invalid {
        name: "PAYLEDGER_BIND",
        reason: format!("{raw:?} is not host:port ({e})"),
    })
}

/// `STRIPE_WEBHOOK_SECRET`, comma-separated during a rotation.
pub fn webhook_secrets() -> Result<Vec<String>, ConfigError> {
    let raw = required(
        "STRIPE_WEBHOOK_SECRET",
        "set the endpoint's signing secret (whsec_...); several, comma-separated, during a rotation",
    )?;
    let secrets: Vec<String> = raw
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if secrets.is_empty() {
        return Err(ConfigError::Invalid {
            name: "STRIPE_WEBHOOK_SECRET",
            reason: "no secret between the commas".into(),
        });
    }
    Ok(secrets)
}

/// The processor's API: where, and with which key.
#[derive(Clone)]
pub struct ProcessorApi {
    pub base: url::Url,
    pub api_key: String,
}

impl ProcessorApi {
    /// The processor's API client with the default retry policy.
    pub fn client(self) -> crate::processor::client::ProcessorClient {
        crate::processor::client::ProcessorClient::new(self.base, self.api_key, Default::default())
    }
}

impl fmt::Debug for ProcessorApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorApi")
            .field("base", &self.base.as_str())
            .field("api_key", &"***")
            .finish()
    }
}

pub fn processor_api() -> Result<ProcessorApi, ConfigError> {
    let raw = var("STRIPE_API_BASE").unwrap_or_else(|| "https://api.stripe.com".into());
    let base = url::Url::parse(&raw).map_err(|e| ConfigError::Invalid {
        name: "STRIPE_API_BASE",
        reason: format!("{raw:?} is not a URL ({e})"),
    })?;
    let api_key = required(
        "STRIPE_API_KEY",
        "set the processor's secret API key (sk_...)",
    )?;
    Ok(ProcessorApi { base, api_key })
}

/// `90s`, `10m`, `2h`, `7d`.
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let (number, unit) = text.split_at(
        text.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let n: i64 =
        number
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| match number.parse::<u128>() {
                Ok(_) => format!("{text:?}: at most {MAX_DURATION_DAYS}d (a hundred years)"),
                Err(_) => format!("{text:?}: expected a number and a unit (s, m, h, d), e.g. 2h"),
            })?;
    let duration = match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    // Every duration is added to or taken from a date somewhere: a century
    // keeps that arithmetic far inside the calendar's range.
    duration
        .filter(|d| *d <= chrono::Duration::days(MAX_DURATION_DAYS))
        .ok_or_else(|| format!("{text:?}: at most {MAX_DURATION_DAYS}d (a hundred years)"))
}

/// The longest duration any setting or flag accepts.
pub const MAX_DURATION_DAYS: i64 = 36_500;

/// A duration setting, or its default when unset.
pub fn duration_setting(
    name: &'static str,
    default: chrono::Duration,
) -> Result<chrono::Duration, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(raw) => {
            parse_duration(raw.trim()).map_err(|reason| ConfigError::Invalid { name, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_refused_by_name_not_panicked_on() {
        for text in [
            "99999999999d",
            "9223372036854775807s",
            "99999999999999999999999h",
            "36501d",
        ] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.contains("at most 36500d"), "{text}: {e}");
        }
        assert_eq!(parse_duration("36500d"), Ok(chrono::Duration::days(36_500)));
        assert_eq!(parse_duration("90s"), Ok(chrono::Duration::seconds(90)));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("5y").unwrap_err().contains("unit"));
    }
}
