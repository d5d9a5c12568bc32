//! The demo's stage: the database, the simulator, the `run` child process,
//! the mail directory, and the narration with its checks.

use payledger::clock::SystemClock;
use payledger::db::{create_database_if_missing, drop_database_if_exists, Database};
use payledger::processor::client::{ClientRetry, ProcessorClient};
use payledger::reconcile::ReconcileReport;
use payledger::store::PgEventStore;
use payledger_projections::states::{DiscrepancyStatus, SubscriptionStatus};
use payledger_sim::{SimConfig, Simulator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_demo";
const API_TOKEN: &str = "demo-token";

pub struct Stage {
    pub db: Database,
    pub url: String,
    pub base: String,
    pub port: u16,
    pub sim_base: String,
    pub mail_dir: PathBuf,
    plans_file: PathBuf,
    child: Option<Child>,
    run_tag: String,
    http: reqwest::Client,
    pub checks: u32,
    pub failures: u32,
    pub quiet: bool,
    /// The simulator itself, for what only a benchmark asks of it.
    pub sim: Simulator,
    /// `run` follows the simulator's clock (the demo's year later); a
    /// benchmark of the renewal burst leaves it on the machine's.
    pub follow_sim_clock: bool,
    /// The product's application (spec §13): its URL and secret, given to
    /// `run` as PAYLEDGER_APP_WEBHOOK_URL / _SECRET.
    pub app_webhook: Option<(String, String)>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Prints unless quiet (the chaos run keeps only its table).
macro_rules! say {
    ($quiet:expr, $($arg:tt)*) => {
        if !$quiet {
            println!($($arg)*);
        }
    };
}

fn db_url(database_url: &str, name: &str) -> anyhow::Result<String> {
    let config: tokio_postgres::Config = database_url.parse()?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    Ok(format!(
        "postgres://{}@{}:{}/{name}",
        config.get_user().unwrap_or("postgres"),
        host,
        config.get_ports().first().copied().unwrap_or(5432)
    ))
}

impl Stage {
    pub async fn set_up(
        database_url: &str,
        name: &str,
        reset: bool,
        quiet: bool,
        seed: u64,
    ) -> anyhow::Result<Stage> {
        let url = db_url(database_url, name)?;
        if reset {
            drop_database_if_exists(&url).await?;
            say!(
                quiet,
                "dropped the demo database ({})",
                payledger::db::redact_url(&url)
            );
        }
        let created = create_database_if_missing(&url).await?;
        let db = Database::connect(&url, 4).await?;
        db.migrate().await?;
        say!(
            quiet,
            "{} the demo database {} and migrated it; it stays for exploring (--reset starts over)",
            if created { "created" } else { "using" },
            payledger::db::redact_url(&url)
        );
        let dir = std::env::current_dir()?
            .join("target")
            .join(name.replace('_', "-"));
        let mail_dir = dir.join("mail");
        std::fs::create_dir_all(&mail_dir)?;
        let plans_file = dir.join("plans.toml");
        std::fs::write(&plans_file, include_str!("../../../plans.example.toml"))?;

        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sim_base = format!("http://{}", listener.local_addr()?);
        let sim = Simulator::new(SimConfig {
            webhook_url: Some(format!("{base}/webhooks/stripe")),
            webhook_secret: SECRET.into(),
            seed,
            public_url: sim_base.clone(),
            retry: payledger_sim::RetryPolicy {
                first_backoff: Duration::from_millis(300),
                max_backoff: Duration::from_secs(1),
                ..Default::default()
            },
            api_version: None,
            prices: vec![],
        });
        tokio::spawn(payledger_sim::serve(sim.clone(), listener));
        let serving = sim.clone();
        say!(
            quiet,
            "processor simulator at {sim_base}; mail goes to {}",
            mail_dir.display()
        );
        Ok(Stage {
            db,
            url,
            base,
            port,
            sim_base,
            mail_dir,
            plans_file,
            child: None,
            run_tag: uuid::Uuid::new_v4().simple().to_string()[..6].to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            checks: 0,
            failures: 0,
            quiet,
            sim: serving,
            follow_sim_clock: true,
            app_webhook: None,
        })
    }

    /// A fresh address per demo run, so a kept database never sees a
    /// customer "pay twice".
    pub fn email(&self, name: &str) -> String {
        format!("{name}.{}@example.com", self.run_tag)
    }

    pub fn step(&self, n: u32, title: &str) {
        say!(self.quiet, "\n== Step {n}: {title}");
    }

    pub fn check(&mut self, ok: bool, claim: &str) {
        self.checks += 1;
        if ok {
            say!(self.quiet, "  ✓ {claim}");
        } else {
            self.failures += 1;
            say!(self.quiet, "  ✗ FAILED: {claim}");
        }
    }

    /// What a party sees on a page: its heading, checked for `expect`.
    pub fn says(&mut self, who: &str, page: &str, expect: &str) {
        let page = page.replace("&#39;", "'");
        // The heading carries attributes (`<h1 data-state=… data-situation=…>`).
        let heading = page
            .split("<h1")
            .nth(1)
            .and_then(|h| h.split_once('>'))
            .and_then(|(_, h)| h.split("</h1>").next())
            .unwrap_or("(no heading)")
            .to_string();
        say!(self.quiet, "  {who} sees: \"{heading}\"");
        self.check(
            page.contains(expect),
            &format!("the page says \"{expect}\""),
        );
    }

    pub async fn start_server(&mut self, failpoints: Option<&str>) -> anyhow::Result<()> {
        let exe = std::env::current_exe()?;
        let mut c = Command::new(exe);
        c.arg("run")
            .env("DATABASE_URL", &self.url)
            .env("PAYLEDGER_BIND", format!("127.0.0.1:{}", self.port))
            .env("PAYLEDGER_PUBLIC_URL", &self.base)
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("STRIPE_API_BASE", &self.sim_base)
            .env("STRIPE_API_KEY", "sk_test_demo")
            .env("PAYLEDGER_PLANS", &self.plans_file)
            .env("PAYLEDGER_MAIL_DIR", &self.mail_dir)
            .env("PAYLEDGER_MAIL_FROM", "payments@shop.example")
            .env("PAYLEDGER_SUPPORT_EMAIL", "help@shop.example")
            .env("PAYLEDGER_API_TOKEN", API_TOKEN)
            .env("PAYLEDGER_RESCUE_GRACE", "4s")
            .env("PAYLEDGER_PENDING_WINDOW", "2m")
            .env("PAYLEDGER_RECONCILE_EVERY", "off")
            // Step 6 moves the simulator's clock a year; `run` follows it.
            .env(
                "PAYLEDGER_FOLLOW_SIM_CLOCK",
                if self.follow_sim_clock { "1" } else { "0" },
            )
            .env("PAYLEDGER_RENEWAL_RECHECK", "2s")
            .env_remove("SMTP_URL")
            .env_remove("PAYLEDGER_ALERT_WEBHOOK")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(self.run_log());
        match &self.app_webhook {
            Some((url, secret)) => c
                .env("PAYLEDGER_APP_WEBHOOK_URL", url)
                .env("PAYLEDGER_APP_WEBHOOK_SECRET", secret),
            None => c
                .env_remove("PAYLEDGER_APP_WEBHOOK_URL")
                .env_remove("PAYLEDGER_APP_WEBHOOK_SECRET"),
        };
        match failpoints {
            Some(f) => c.env("PAYLEDGER_FAILPOINTS", f),
            None => c.env_remove("PAYLEDGER_FAILPOINTS"),
        };
        self.child = Some(c.spawn()?);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
            {
                self.child = None;
                anyhow::bail!("payledger run died while starting (failpoint {failpoints:?})");
            }
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    say!(
                        self.quiet,
                        "  payledger run is up at {}{}",
                        self.base,
                        failpoints
                            .map(|f| format!(" (failpoint armed: {f})"))
                            .unwrap_or_default()
                    );
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("payledger run did not become ready")
    }

    /// `payledger run`'s warnings and errors, appended to `run.log` beside
    /// the mail directory (nowhere if it cannot be opened).
    fn run_log(&self) -> Stdio {
        let path = self.mail_dir.with_file_name("run.log");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_or_else(|_| Stdio::null(), Stdio::from)
    }

    pub fn server_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn stop_server(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the server process has died (a failpoint fired), reaping it.
    pub fn server_died(&mut self) -> bool {
        let died = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
        if died {
            self.child = None;
        }
        died || self.child.is_none()
    }

    /// Cuts every connection to the database but this one's: PostgreSQL
    /// gone for an instant, as in a failover.
    pub async fn cut_connections(&self) -> anyhow::Result<u64> {
        let c = self.db.pool.get().await?;
        let n = c
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await?
            .len();
        Ok(n as u64)
    }

    pub async fn restart_server(&mut self, failpoints: Option<&str>) -> anyhow::Result<()> {
        self.stop_server();
        self.start_server(failpoints).await
    }

    pub async fn wait_server_death(&mut self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    use std::os::unix::process::ExitStatusExt;
                    self.child = None;
                    return status.signal() == Some(9);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await?
            .text()
            .await?)
    }

    pub async fn sim_faults(&self, faults: serde_json::Value) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/_sim/faults", self.sim_base))
            .json(&faults)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// `POST` JSON to the simulator (its `/_sim/…` switches).
    pub async fn sim_post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(self
            .http
            .post(format!("{}{path}", self.sim_base))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// An empty form posted to a page of the simulator's, as its buttons do.
    pub async fn sim_form(&self, url: &str) -> anyhow::Result<()> {
        self.http
            .post(url)
            .form(&[("", "")])
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Moves the simulator's clock to `unix` (never back), and waits for
    /// payledger's clock to follow it.
    pub async fn advance_sim_to(&self, unix: i64) -> anyhow::Result<()> {
        let now: serde_json::Value = self
            .http
            .get(format!("{}/_sim/clock", self.sim_base))
            .send()
            .await?
            .json()
            .await?;
        // At least a second: what fell due while the clock ran on by
        // itself happens when the clock is next told to move.
        let seconds = (unix - now["now"].as_i64().unwrap_or(unix)).max(1);
        self.sim_post(
            "/_sim/clock/advance",
            serde_json::json!({ "seconds": seconds }),
        )
        .await?;
        // payledger reads the simulator's clock every second.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        Ok(())
    }

    /// The first and last moment a subscription at the processor renews.
    pub async fn renewal_window(&self) -> anyhow::Result<(i64, i64)> {
        let c = self.db.pool.get().await?;
        let row = c
            .query_one(
                "SELECT min(renews_at), max(renews_at) FROM subscriptions WHERE renews_at IS NOT NULL",
                &[],
            )
            .await?;
        let first: Option<chrono::DateTime<chrono::Utc>> = row.get(0);
        let last: Option<chrono::DateTime<chrono::Utc>> = row.get(1);
        match (first, last) {
            (Some(f), Some(l)) => Ok((f.timestamp(), l.timestamp())),
            _ => anyhow::bail!("no subscription renews"),
        }
    }

    /// Renewals the processor charged, and failed attempts it made.
    pub async fn processor_renewals(&self) -> anyhow::Result<(i64, i64)> {
        let processor = ProcessorClient::new(
            url::Url::parse(&self.sim_base)?,
            "sk_test_demo",
            ClientRetry::default(),
        );
        let invoices = processor.invoices(Default::default()).collect_all().await?;
        let renewals = invoices
            .iter()
            .filter(|i| i.is_paid() && i.billing_reason.as_deref() == Some("subscription_cycle"))
            .count() as i64;
        // A paid invoice's last attempt succeeded; an unpaid one's all failed.
        let failed: i64 = invoices
            .iter()
            .map(|i| {
                let attempts = i64::from(i.attempt_count);
                if i.is_paid() {
                    attempts - 1
                } else {
                    attempts
                }
            })
            .sum();
        Ok((renewals, failed))
    }

    /// A `POST` to the shop that redirects; where to.
    pub async fn post_for_redirect(&self, path: &str) -> anyhow::Result<String> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .send()
            .await?;
        Ok(r.headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_string())
    }

    /// The customer's access: status and end.
    pub async fn access_of(
        &self,
        email: &str,
    ) -> anyhow::Result<(String, chrono::DateTime<chrono::Utc>)> {
        let c = self.db.pool.get().await?;
        let row = c
            .query_one(
                "SELECT status, period_end FROM subscriptions WHERE email = $1",
                &[&email],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// Until the customer's access runs beyond `end`.
    pub async fn wait_access_beyond(
        &self,
        email: &str,
        end: chrono::DateTime<chrono::Utc>,
        secs: u64,
    ) -> anyhow::Result<bool> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.access_of(email).await.is_ok_and(|(_, e)| e > end) {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(false)
    }

    /// The reference of the customer's first checkout (their status page).
    pub async fn reference_of(&self, email: &str) -> anyhow::Result<String> {
        let c = self.db.pool.get().await?;
        Ok(c.query_one(
            "SELECT reference FROM customer_status WHERE email = $1 ORDER BY started_at LIMIT 1",
            &[&email],
        )
        .await?
        .get(0))
    }

    /// The id of the discrepancy a late renewal of the customer's opened.
    pub async fn renewal_discrepancy_of(&self, email: &str) -> anyhow::Result<String> {
        let c = self.db.pool.get().await?;
        let invoice: String = c
            .query_one(
                "SELECT payload->>'invoice_id' FROM events WHERE event_type = 'InvoicePaid' AND payload->>'customer_email' = $1 ORDER BY position DESC LIMIT 1",
                &[&email],
            )
            .await?
            .get(0);
        Ok(format!(
            "{}:{invoice}",
            payledger_projections::states::DiscrepancyKind::RenewalNotApplied.as_str()
        ))
    }

    /// The customer's path: the plan page, checkout, the processor's pay
    /// page. Returns the session id of the return URL.
    pub async fn buy(&mut self, email: &str) -> anyhow::Result<String> {
        let home = self.get("/").await?;
        let token = home
            .split("name=\"token\" value=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .ok_or_else(|| anyhow::anyhow!("the plan page has no form token"))?
            .to_string();
        say!(
            self.quiet,
            "  customer opens the shop, picks \"One year of access — 249.00 USD\", enters {email}"
        );
        let r = self
            .http
            .post(format!("{}/checkout", self.base))
            .form(&[("plan", "annual"), ("email", email), ("token", &token)])
            .send()
            .await?;
        let pay_url = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| anyhow::anyhow!("checkout did not redirect ({})", r.status()))?
            .to_string();
        let session = pay_url.rsplit('/').next().unwrap_or_default().to_string();
        say!(
            self.quiet,
            "  checkout recorded, then the processor's pay page: {pay_url}"
        );
        let r = self
            .http
            .post(&pay_url)
            .form(&[("email", "")])
            .send()
            .await?;
        self.check(
            r.status().is_redirection(),
            "the processor charged 249.00 USD and sent the customer back",
        );
        Ok(session)
    }

    /// A charge at the processor that no checkout in the ledger knows.
    pub async fn orphan_charge(&mut self, email: Option<&str>) -> anyhow::Result<String> {
        let body = serde_json::json!({
            "email": email.unwrap_or(""), "amount": 24900, "currency": "usd",
            "client_reference_id": uuid::Uuid::new_v4().to_string(),
        });
        let paid: serde_json::Value = self
            .http
            .post(format!("{}/_sim/charges", self.sim_base))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let pi = paid["payment_intent_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        say!(
            self.quiet,
            "  the processor charged 249.00 USD ({pi}){}",
            email
                .map(|e| format!(" from {e}"))
                .unwrap_or_else(|| " — no email on the charge".into())
        );
        Ok(pi)
    }

    pub async fn reconcile(&mut self) -> anyhow::Result<ReconcileReport> {
        let store = PgEventStore::new(self.db.pool.clone(), Arc::new(SystemClock));
        let processor = ProcessorClient::new(
            url::Url::parse(&self.sim_base)?,
            "sk_test_demo",
            ClientRetry::default(),
        );
        let now = chrono::Utc::now();
        let report = payledger::reconcile::reconcile(
            &store,
            &processor,
            now - chrono::Duration::hours(1),
            now + chrono::Duration::minutes(1),
            false,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        say!(
            self.quiet,
            "  payledger reconcile: {} objects seen, {} missing appended",
            report.objects_seen,
            report.missing_appended
        );
        Ok(report)
    }

    /// How many charges the processor holds (all of them, paged).
    pub async fn processor_charges(&self) -> anyhow::Result<usize> {
        let processor = ProcessorClient::new(
            url::Url::parse(&self.sim_base)?,
            "sk_test_demo",
            ClientRetry::default(),
        );
        Ok(processor
            .charges(Default::default())
            .collect_all()
            .await?
            .len())
    }

    pub async fn count(&self, sql: &str, arg: &str) -> anyhow::Result<i64> {
        let c = self.db.pool.get().await?;
        Ok(c.query_one(sql, &[&arg]).await?.get(0))
    }

    /// Until `sql` (with `$1` = `arg`, `$2` = `state`) finds a row.
    async fn poll(&self, sql: &str, arg: &str, state: &str, secs: u64) -> anyhow::Result<bool> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let c = self.db.pool.get().await?;
            if c.query_opt(sql, &[&arg, &state])
                .await
                .ok()
                .flatten()
                .is_some()
            {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            drop(c);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_active(&self, email: &str, secs: u64) -> anyhow::Result<bool> {
        self.poll(
            "SELECT 1 FROM subscriptions WHERE email = $1 AND status = $2",
            email,
            SubscriptionStatus::Active.as_str(),
            secs,
        )
        .await
    }

    pub async fn wait_discrepancy(
        &self,
        id: &str,
        status: DiscrepancyStatus,
        secs: u64,
    ) -> anyhow::Result<bool> {
        self.poll(
            "SELECT 1 FROM discrepancies WHERE id = $1 AND status = $2",
            id,
            status.as_str(),
            secs,
        )
        .await
    }

    /// How many mails to `to` whose subject contains `subject`, once at least
    /// one arrived (or `secs` passed).
    pub async fn wait_mail(&self, to: &str, subject: &str, secs: u64) -> usize {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let n = self
                .mails(to)
                .iter()
                .filter(|(s, _)| s.contains(subject))
                .count();
            if n > 0 || Instant::now() > deadline {
                // A moment more, so a duplicate would show too.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let all = self.mails(to);
                for (s, f) in &all {
                    say!(self.quiet, "  mail to {to}: \"{s}\" ({f})");
                }
                return all.iter().filter(|(s, _)| s.contains(subject)).count();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// (subject, file name) of every mail to `to` in the mail directory.
    fn mails(&self, to: &str) -> Vec<(String, String)> {
        let Ok(entries) = std::fs::read_dir(&self.mail_dir) else {
            return vec![];
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                let header = |name: &str| {
                    text.lines()
                        .find(|l| l.starts_with(name))
                        .map(|l| l[name.len()..].trim().to_string())
                };
                (header("To:")? == to).then(|| {
                    (
                        header("Subject:").unwrap_or_default(),
                        e.file_name().to_string_lossy().into_owned(),
                    )
                })
            })
            .collect()
    }

    /// Runs `payledger ARGS` against the demo database and shows its output.
    pub async fn cli(&mut self, args: &[&str]) -> String {
        say!(self.quiet, "  $ payledger {}", args.join(" "));
        let out = match std::env::current_exe() {
            Ok(exe) => Command::new(exe)
                .args(args)
                .env("DATABASE_URL", &self.url)
                .env("PAYLEDGER_PLANS", &self.plans_file)
                .env("STRIPE_API_BASE", &self.sim_base)
                .env("STRIPE_API_KEY", "sk_test_demo")
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .output(),
            Err(e) => Err(e),
        };
        match out {
            Ok(o) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                for line in text.lines() {
                    say!(self.quiet, "    {line}");
                }
                if !o.status.success() {
                    self.check(
                        false,
                        &format!("payledger {} exited with {}", args.join(" "), o.status),
                    );
                }
                text
            }
            Err(e) => {
                self.check(
                    false,
                    &format!("could not run payledger {}: {e}", args.join(" ")),
                );
                String::new()
            }
        }
    }

    pub async fn end_state(&mut self) {
        say!(self.quiet, "\n== Step 7: The end state");
        if let Ok(c) = self.db.pool.get().await {
            if let Ok(rows) = c.query("SELECT email, plan, status, activation, period_end FROM subscriptions ORDER BY email", &[]).await {
                say!(self.quiet, "  subscriptions:");
                for r in rows {
                    let end: chrono::DateTime<chrono::Utc> = r.get(4);
                    say!(self.quiet, "    {:<32} {} {} ({}) until {}", r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2), r.get::<_, String>(3), end.format("%Y-%m-%d"));
                }
            }
            if let Ok(rows) = c
                .query(
                    "SELECT id, status FROM discrepancies ORDER BY first_seen",
                    &[],
                )
                .await
            {
                say!(self.quiet, "  discrepancies:");
                for r in rows {
                    say!(
                        self.quiet,
                        "    {:<48} {}",
                        r.get::<_, String>(0),
                        r.get::<_, String>(1)
                    );
                }
            }
        }
        say!(self.quiet, "  mail directory {}:", self.mail_dir.display());
        let mut files: Vec<String> = std::fs::read_dir(&self.mail_dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        for f in files.iter().rev().take(8) {
            say!(self.quiet, "    {f}");
        }
        // The worker seals the chain every half second.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let verify = self.cli(&["audit", "verify"]).await;
        // Said positively: a verify that could not run must not pass.
        self.check(
            verify.lines().any(|l| l.starts_with("OK:")) && !verify.contains("BROKEN"),
            "audit verify: the hash chain verifies",
        );
        let inv = self.cli(&["audit", "invariants"]).await;
        self.check(
            inv.contains("OK: no violations"),
            "audit invariants: no violations",
        );
        say!(
            self.quiet,
            "\n  Explore (DATABASE_URL={}):",
            payledger::db::redact_url(&self.url)
        );
        say!(self.quiet, "    cargo run --release -- support queue --all");
        say!(
            self.quiet,
            "    cargo run --release -- support find {}",
            self.email("cal")
        );
        say!(
            self.quiet,
            "    cargo run --release -- audit log --type ChargeSucceeded"
        );
        say!(self.quiet, "    cargo run --release -- demo --keep-running   # then open the shop and the status pages in a browser");
    }
}
