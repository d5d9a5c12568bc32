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

/// One setting: its name, its default (empty: none) and what it is for.
/// `docs/configuration.md` is this table; a test keeps them equal.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub what: &'static str,
}

const fn setting(name: &'static str, default: &'static str, what: &'static str) -> Setting {
    Setting {
        name,
        default,
        what,
    }
}

/// Every environment variable payledger reads, in one place.
pub const SETTINGS: &[Setting] = &[
    setting("DATABASE_URL", "", "PostgreSQL connection string (every command but processor-sim; demo, chaos and bench default to the local server)"),
    setting("PAYLEDGER_BIND", "127.0.0.1:8080", "where `serve`/`run` listen (host:port)"),
    setting("PAYLEDGER_PUBLIC_URL", "http://BIND", "where customers reach payledger (return and status links)"),
    setting("STRIPE_WEBHOOK_SECRET", "", "the webhook endpoint's signing secret(s), comma-separated during a rotation (`serve`, `run`, `processor-sim`)"),
    setting("STRIPE_API_KEY", "", "the processor's secret API key (checkout, reconcile, support refund)"),
    setting("STRIPE_API_BASE", "https://api.stripe.com", "the processor's API (the simulator's URL in development)"),
    setting("PAYLEDGER_PLANS", "", "the plans file (TOML); without it nobody can buy"),
    setting("PAYLEDGER_SUPPORT_EMAIL", "", "the address customers are told to write to; alerts go there too"),
    setting("PAYLEDGER_API_TOKEN", "", "bearer token of `/api/access`; unset, it refuses everyone"),
    setting("PAYLEDGER_METRICS_TOKEN", "", "bearer token `/metrics` wants; unset, it is open"),
    setting("PAYLEDGER_TRUSTED_PROXIES", "", "addresses whose `X-Forwarded-For` is believed (comma-separated IPs/CIDRs)"),
    setting("PAYLEDGER_TIMEZONE", "UTC", "the time zone of the dates customers and support read (IANA name, e.g. America/New_York)"),
    setting("PAYLEDGER_PENDING_WINDOW", "3m", "how long \"we're confirming your payment\" is honest before the page says a person is on it"),
    setting("PAYLEDGER_PAST_DUE_ACCESS", "keep", "whether a customer whose renewal failed keeps access while the processor retries (`keep` or `revoke`)"),
    setting("PAYLEDGER_RENEWAL_RECHECK", "10m", "how often payledger asks the processor again about a renewal that is due but not recorded (it asks once before each paid period ends)"),
    setting("PAYLEDGER_RENEWAL_REMINDER_DAYS", "30", "days before a yearly renewal the customer is reminded"),
    setting("PAYLEDGER_FOLLOW_SIM_CLOCK", "", "development only: `1` makes payledger's clock follow the simulator's (STRIPE_API_BASE must be a loopback address)"),
    setting("PAYLEDGER_HEADER_TIMEOUT", "10", "seconds a client may take to send its request headers (and idle keep-alive)"),
    setting("PAYLEDGER_BODY_TIMEOUT", "30", "seconds a client may take to send a whole request body"),
    setting("PAYLEDGER_MAX_CONNECTIONS", "1024", "open HTTP connections at most; more wait"),
    setting("SMTP_URL", "", "mail transport (smtp://host:port); without it and PAYLEDGER_MAIL_DIR, no email is sent"),
    setting("PAYLEDGER_MAIL_DIR", "", "write emails as .eml files here instead of SMTP"),
    setting("PAYLEDGER_MAIL_FROM", "payments@localhost", "the From address of every email"),
    setting("PAYLEDGER_MAIL_LEASE", "60s", "how long a sender holds an email it is sending"),
    setting("PAYLEDGER_MAIL_BACKOFF", "5s", "first wait before retrying a failed email (doubles)"),
    setting("PAYLEDGER_MAIL_MAX_ATTEMPTS", "8", "attempts before an email is undeliverable"),
    setting("PAYLEDGER_APP_WEBHOOK_URL", "", "one endpoint of the product's application told of every change of access (spec §13), without the CLI"),
    setting("PAYLEDGER_APP_WEBHOOK_SECRET", "", "its signing secret: whsec_ + base64 of 24 or more random bytes (secret)"),
    setting("PAYLEDGER_APP_WEBHOOK_LEASE", "60s", "how long a claimed application webhook is held by one worker (a killed worker's claim expires after it)"),
    setting("PAYLEDGER_MAIL_CONCURRENCY", "4", "recipients one sender serves at once (a crash may duplicate up to this many emails)"),
    setting("PAYLEDGER_RESCUE_GRACE", "2m", "how long an unmatched charge waits for its checkout before auto-rescue"),
    setting("PAYLEDGER_ALERT_WEBHOOK", "", "where support alerts are posted (JSON)"),
    setting("PAYLEDGER_ALERT_INTERVAL", "1m", "how often the alerter looks"),
    setting("PAYLEDGER_RECONCILE_EVERY", "10m", "scheduled reconciliation period (`off` to disable)"),
    setting("PAYLEDGER_RECONCILE_OVERLAP", "5m", "how far each scheduled window reaches back into the last"),
    setting("PAYLEDGER_RECONCILE_FIRST_WINDOW", "3d", "the first scheduled run's window"),
    setting("PAYLEDGER_PROJECTION_BATCH", "500", "events a projection applies per transaction"),
    setting("PAYLEDGER_PROJECTION_LINGER_MS", "20", "after a batch smaller than PAYLEDGER_PROJECTION_BATCH, how long a projection lets more events gather before the next (0: at once)"),
    setting("PAYLEDGER_GROUP_COMMIT", "on", "group concurrent appends into one statement and commit (`off`: one each)"),
    setting("PAYLEDGER_GROUP_COMMIT_MAX", "64", "the most appends one grouped statement writes"),
    setting("PAYLEDGER_GROUP_COMMIT_WRITERS", "4", "grouped statements in flight at once"),
    setting("PAYLEDGER_GROUP_COMMIT_WINDOW_US", "0", "microseconds a group waits for more appends (0: takes what queued while the writers were busy)"),
    setting("PAYLEDGER_REBUILD_MEMORY", "512MB", "the most memory a rebuild's rows take (e.g. 64MB, 2GB): past it, rows are written to the new tables as the fold goes"),
    setting("PAYLEDGER_AUDIT_KEY", "", "path of the Ed25519 key for signed checkpoints (signing or verifying)"),
    setting("PAYLEDGER_AUDIT_DIR", ".", "where checkpoints are written"),
    setting("PAYLEDGER_AUDIT_EVERY", "1h", "how often `work` writes a checkpoint (with PAYLEDGER_AUDIT_KEY)"),
    setting("PAYLEDGER_AUDIT_EMAIL", "", "who receives each checkpoint by email"),
    setting("PAYLEDGER_AUDIT_ORIGIN", "payledger/DATABASE", "the log's name in signed checkpoints"),
    setting("PAYLEDGER_ACTOR", "", "your name for `support` commands (instead of --as)"),
    setting("PAYLEDGER_FAILPOINTS", "", "tests only: crash at named points"),
    setting("PAYLEDGER_SHARED_DIR", "../shared", "tests only: where the Stripe fixtures are"),
];

/// Every setting's value as the process started with it: the environment
/// is read once, in one go, the first time any setting is asked for (at
/// start-up), so a process never sees two versions of its configuration.
fn environment() -> &'static std::collections::HashMap<&'static str, std::ffi::OsString> {
    static ENVIRONMENT: std::sync::OnceLock<
        std::collections::HashMap<&'static str, std::ffi::OsString>,
    > = std::sync::OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        SETTINGS
            .iter()
            .filter_map(|s| std::env::var_os(s.name).map(|v| (s.name, v)))
            .collect()
    })
}

/// The only reader of the configuration: trimmed, and `None` when unset or
/// blank. Only names in [`SETTINGS`] may be read.
pub fn var(name: &'static str) -> Option<String> {
    debug_assert!(
        SETTINGS.iter().any(|s| s.name == name),
        "{name} is not in config::SETTINGS"
    );
    environment()
        .get(name)
        .and_then(|v| v.to_str())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// [`var`] for a path, which need not be UTF-8.
pub fn var_os(name: &'static str) -> Option<std::ffi::OsString> {
    debug_assert!(SETTINGS.iter().any(|s| s.name == name));
    environment().get(name).filter(|v| !v.is_empty()).cloned()
}

/// `docs/configuration.md`, from [`SETTINGS`].
pub fn settings_markdown() -> String {
    let mut out = String::from(
        "# Configuration\n\nEvery setting is an environment variable, read once at start-up by \
         `src/config.rs` (this page is generated from its `SETTINGS` table; a test keeps them \
         equal). A missing or malformed setting stops start-up with a message naming it; \
         secrets are never printed.\n\n| variable | default | what |\n|---|---|---|\n",
    );
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", s.default)
        };
        out.push_str(&format!("| `{}` | {default} | {} |\n", s.name, s.what));
    }
    out
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

/// Group commit for the appends of `serve` and `work` (`None`: off).
pub fn group_commit() -> Result<Option<payledger_store::GroupCommitConfig>, ConfigError> {
    let on = match var("PAYLEDGER_GROUP_COMMIT").as_deref().map(str::trim) {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => {
            return Err(ConfigError::Invalid {
                name: "PAYLEDGER_GROUP_COMMIT",
                reason: format!("{other:?}: expected on or off"),
            })
        }
    };
    let number = |name: &'static str, default: u64, least: u64| -> Result<u64, ConfigError> {
        match var(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= least && *n <= 1_000_000)
                .ok_or(ConfigError::Invalid {
                    name,
                    reason: format!("{raw:?} is not a number from {least} to 1000000"),
                }),
        }
    };
    let config = payledger_store::GroupCommitConfig {
        max_appends: usize::try_from(number("PAYLEDGER_GROUP_COMMIT_MAX", 64, 1)?).unwrap_or(64),
        writers: usize::try_from(number("PAYLEDGER_GROUP_COMMIT_WRITERS", 4, 1)?).unwrap_or(4),
        window: std::time::Duration::from_micros(number("PAYLEDGER_GROUP_COMMIT_WINDOW_US", 0, 0)?),
    };
    Ok(on.then_some(config))
}

/// `PAYLEDGER_PROJECTION_LINGER_MS`: after a batch smaller than a whole one,
/// how long a projection lets more events gather (0 to 10,000 ms).
pub fn projection_linger() -> Result<std::time::Duration, ConfigError> {
    let Some(raw) = var("PAYLEDGER_PROJECTION_LINGER_MS") else {
        return Ok(std::time::Duration::from_millis(
            DEFAULT_PROJECTION_LINGER_MS,
        ));
    };
    raw.trim()
        .parse()
        .ok()
        .filter(|ms| *ms <= 10_000)
        .map(std::time::Duration::from_millis)
        .ok_or(ConfigError::Invalid {
            name: "PAYLEDGER_PROJECTION_LINGER_MS",
            reason: format!("{raw:?} is not a number of milliseconds from 0 to 10000"),
        })
}

/// A burst of small batches costs each projection a transaction per batch
/// (five projections, each its own): letting events gather for 20 ms turns
/// a trickle of single events into batches, for 20 ms more latency at most.
pub const DEFAULT_PROJECTION_LINGER_MS: u64 = 20;

/// `PAYLEDGER_REBUILD_MEMORY`: bytes, or a number with KB, MB or GB
/// (powers of 1024); at least 1MB.
pub fn rebuild_memory() -> Result<usize, ConfigError> {
    let Some(raw) = var("PAYLEDGER_REBUILD_MEMORY") else {
        return Ok(payledger_projections::runner::DEFAULT_MEMORY_BUDGET);
    };
    parse_bytes(&raw).ok_or(ConfigError::Invalid {
        name: "PAYLEDGER_REBUILD_MEMORY",
        reason: format!("{raw:?}: expected a size such as 512MB, 2GB or 64MB (at least 1MB)"),
    })
}

fn parse_bytes(raw: &str) -> Option<usize> {
    let text = raw.trim().to_ascii_uppercase();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text.as_str(), ""),
    };
    let unit: usize = match unit.trim() {
        "" | "B" => 1,
        "KB" | "K" => 1 << 10,
        "MB" | "M" => 1 << 20,
        "GB" | "G" => 1 << 30,
        _ => return None,
    };
    number
        .parse::<usize>()
        .ok()?
        .checked_mul(unit)
        .filter(|b| *b >= 1 << 20)
}

/// The longest duration any setting or flag accepts.
pub const MAX_DURATION_DAYS: i64 = 36_500;

/// `PAYLEDGER_PENDING_WINDOW`: how long "we're confirming your payment" is
/// honest (pages, status emails and support replies share it).
pub fn pending_window() -> Result<chrono::Duration, ConfigError> {
    duration_setting("PAYLEDGER_PENDING_WINDOW", chrono::Duration::minutes(3))
}

/// `PAYLEDGER_PAST_DUE_ACCESS`: `keep` (the default) or `revoke`.
pub fn past_due_access(
) -> Result<payledger_projections::read::subscriptions::PastDueAccess, ConfigError> {
    var("PAYLEDGER_PAST_DUE_ACCESS").map_or(Ok(Default::default()), |raw| {
        raw.parse().map_err(|reason| ConfigError::Invalid {
            name: "PAYLEDGER_PAST_DUE_ACCESS",
            reason,
        })
    })
}

/// `PAYLEDGER_TIMEZONE`: the zone texts give dates in (UTC unless set).
pub fn timezone() -> Result<chrono_tz::Tz, ConfigError> {
    var("PAYLEDGER_TIMEZONE").map_or(Ok(chrono_tz::UTC), |name| parse_timezone(&name))
}

fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, ConfigError> {
    name.parse().map_err(|_| ConfigError::Invalid {
        name: "PAYLEDGER_TIMEZONE",
        reason: format!(
            "{name:?} is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)"
        ),
    })
}

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
    fn memory_sizes_read_as_people_write_them() {
        assert_eq!(parse_bytes("512MB"), Some(512 << 20));
        assert_eq!(parse_bytes(" 2gb "), Some(2 << 30));
        assert_eq!(parse_bytes("16M"), Some(16 << 20));
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        for wrong in ["", "lots", "12KB", "-5MB", "5 parsecs", "1.5GB"] {
            assert_eq!(parse_bytes(wrong), None, "{wrong:?}");
        }
    }

    fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }

    fn all_sources() -> Vec<(String, String)> {
        let mut out = vec![];
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut out,
        );
        out
    }

    #[test]
    fn only_the_config_module_reads_the_environment() {
        for (path, text) in all_sources() {
            if path.ends_with("src/config.rs") {
                continue;
            }
            assert!(
                !text.contains("std::env::var"),
                "{path} reads the environment: use config::var and list the setting in SETTINGS"
            );
        }
    }

    #[test]
    fn every_setting_named_in_the_code_is_in_the_table() {
        for (path, text) in all_sources() {
            for prefix in ["\"PAYLEDGER_", "\"STRIPE_", "\"SMTP_", "\"DATABASE_"] {
                for (i, _) in text.match_indices(prefix) {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                        .collect();
                    if name.ends_with('_') {
                        continue; // a prefix, like these
                    }
                    assert!(
                        SETTINGS.iter().any(|s| s.name == name),
                        "{path} names {name}, which config::SETTINGS does not list"
                    );
                }
            }
        }
    }

    #[test]
    fn docs_configuration_md_is_the_settings_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        let docs = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            docs == settings_markdown(),
            "docs/configuration.md is out of date: run `payledger settings --markdown > docs/configuration.md`"
        );
    }

    #[test]
    fn a_time_zone_that_is_not_one_is_refused_by_name() {
        assert_eq!(
            parse_timezone("America/New_York"),
            Ok(chrono_tz::America::New_York)
        );
        let e = parse_timezone("Mars/Olympus").unwrap_err().to_string();
        assert!(
            e.contains("PAYLEDGER_TIMEZONE")
                && e.contains("\"Mars/Olympus\" is not an IANA time zone name"),
            "{e}"
        );
    }

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
