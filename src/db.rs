//! Connecting to PostgreSQL and migrating it.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The newest migration this build knows; `/readyz` compares the
/// database's with it.
pub fn latest_migration_version() -> i32 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// The local server of a fresh machine; used when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/payledger";

/// Serialises concurrent `migrate` runs against one database.
const MIGRATION_LOCK: i64 = 0x7061_796c_6564_6702;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL {url} is not a valid PostgreSQL connection string: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach PostgreSQL at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("migrating {url} failed: {reason}")]
    Migration { url: String, reason: String },
}

/// What the server or the network said, behind a pool error: deadpool and
/// tokio-postgres print "db error" and keep the reason in the source chain
/// ("database \"x\" does not exist", "Connection refused").
fn pool_error_reason(e: &deadpool_postgres::PoolError) -> String {
    let deadpool_postgres::PoolError::Backend(pg) = e else {
        return e.to_string();
    };
    if let Some(db) = pg.as_db_error() {
        return db.message().to_string();
    }
    let mut words = pg.to_string();
    let mut source = std::error::Error::source(pg);
    while let Some(s) = source {
        words.push_str(": ");
        words.push_str(&s.to_string());
        source = s.source();
    }
    words
}

/// A connection string with any password replaced by `***`, for messages
/// and logs.
pub fn redact_url(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
        }
        return parsed.to_string();
    }
    // A URL too malformed to parse (a port that is not a number) still has
    // its password between `://user:` and the last `@` of the authority.
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        return match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                let hidden = if userinfo.contains(':') { ":***" } else { "" };
                format!("{scheme}://{user}{hidden}@{host}{path}")
            }
            None => url.to_string(),
        };
    }
    // key=value form: blank out the value of `password=`.
    url.split_whitespace()
        .map(|part| match part.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A parsed `DATABASE_URL` and the pool built from it.
#[derive(Clone)]
pub struct Database {
    pub url: String,
    pub config: tokio_postgres::Config,
    pub pool: Pool,
}

impl Database {
    /// Parses the URL and checks the server answers, so a wrong URL fails at
    /// start-up with a message that names it.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self, DbError> {
        let shown = redact_url(url);
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| DbError::InvalidUrl {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_options().is_none() {
            // Every statement here is short OLTP on indexed keys. With custom
            // plans PostgreSQL re-planned the append's CTE on each call, which
            // cost more than executing it (bench append: 0.18 -> 0.55 of a raw
            // INSERT at 32 writers).
            config.options("-c plan_cache_mode=force_generic_plan");
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| DbError::InvalidUrl {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
        let probe = pool.get().await.map_err(|e| DbError::Unreachable {
            url: shown.clone(),
            reason: pool_error_reason(&e),
        })?;
        drop(probe);
        Ok(Database {
            url: url.to_string(),
            config,
            pool,
        })
    }

    pub fn shown_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Applies the embedded migrations; a second run applies nothing.
    /// Returns the names of the migrations applied now.
    pub async fn migrate(&self) -> Result<Vec<String>, DbError> {
        let fail = |reason: String| DbError::Migration {
            url: self.shown_url(),
            reason,
        };
        let mut client = self.pool.get().await.map_err(|e| fail(e.to_string()))?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| fail(e.to_string()))?;
        let result = embedded::migrations::runner()
            .run_async(&mut **client)
            .await;
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        let report = result.map_err(|e| fail(e.to_string()))?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }
}

impl Database {
    /// Creates every read model (empty) and `payledger_access`, so pages
    /// and `/api/access` answer from the moment the schema exists, before
    /// `work` has ever run. A read model whose version changed is rebuilt
    /// here, as `work` would at its start.
    /// Records the settings the read-model views follow (the views cannot
    /// read the environment): `PAYLEDGER_PAST_DUE_ACCESS`.
    pub async fn record_view_settings(
        &self,
        past_due: payledger_projections::read::subscriptions::PastDueAccess,
    ) -> Result<(), DbError> {
        let failed = |reason: String| DbError::Migration {
            url: self.shown_url(),
            reason: format!("recording the views' settings: {reason}"),
        };
        let client = self.pool.get().await.map_err(|e| failed(e.to_string()))?;
        client
            .execute(
                "INSERT INTO payledger_settings (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                &[&"past_due_access", &past_due.as_str()],
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(())
    }

    pub async fn install_read_models(&self) -> Result<(), DbError> {
        for projection in payledger_projections::all() {
            payledger_projections::runner::install(&self.pool, projection.as_ref(), 500)
                .await
                .map_err(|e| DbError::Migration {
                    url: self.shown_url(),
                    reason: format!("installing the {} read model: {e}", projection.name()),
                })?;
        }
        Ok(())
    }
}

/// Drops a database (closing its connections); for the benchmark's and the
/// demo's own databases only.
pub async fn drop_database_if_exists(url: &str) -> Result<(), DbError> {
    let (client, name) = admin_client(url).await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await
        .map_err(|e| DbError::Unreachable {
            url: redact_url(url),
            reason: e.to_string(),
        })
}

/// A connection to the `postgres` database of `url`'s server, and the
/// database name `url` names.
async fn admin_client(url: &str) -> Result<(tokio_postgres::Client, String), DbError> {
    let shown = redact_url(url);
    let config = tokio_postgres::Config::from_str(url).map_err(|e| DbError::InvalidUrl {
        url: shown.clone(),
        reason: e.to_string(),
    })?;
    let name = config
        .get_dbname()
        .ok_or_else(|| DbError::InvalidUrl {
            url: shown.clone(),
            reason: "no database name".into(),
        })?
        .to_string();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin
        .connect(NoTls)
        .await
        .map_err(|e| DbError::Unreachable {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
    tokio::spawn(connection);
    Ok((client, name))
}

/// Creates a database on the server of `url` (connecting to its
/// `postgres` database) unless it exists. Returns whether it was created.
pub async fn create_database_if_missing(url: &str) -> Result<bool, DbError> {
    let (client, name) = admin_client(url).await?;
    let unreachable = |e: tokio_postgres::Error| DbError::Unreachable {
        url: redact_url(url),
        reason: e.to_string(),
    };
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(unreachable)?
        .is_some();
    if exists {
        return Ok(false);
    }
    // Identifiers cannot be bound as parameters; quote it instead.
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
    {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {
            Ok(false)
        }
        Err(e) => Err(unreachable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/payledger"),
            "postgres://app:***@db:5432/payledger"
        );
        assert_eq!(
            redact_url("host=db user=app password=s3cret dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redact_url("postgres://u:pw@host:notaport/db"),
            "postgres://u:***@host:notaport/db"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss:w@rd@host:x/db"),
            "postgres://u:***@host:x/db"
        );
    }
}
