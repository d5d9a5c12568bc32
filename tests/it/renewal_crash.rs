//! `payledger run` killed with SIGKILL while a renewal's webhook is being
//! recorded (failpoint `webhook.before_append`): after the restart the
//! processor's retry lands, and the renewal is exactly one more period, one
//! receipt, and no violated guarantee.

use crate::common::renewals::RENEWING_PLANS;
use crate::common::runner::kill9;
use crate::common::*;
use std::process::{Child, Command, Stdio};

const ANN: &str = "ann@example.com";

struct Run {
    port: u16,
    sim_base: String,
    plans: std::path::PathBuf,
    url: String,
}

impl Run {
    fn spawn(&self, failpoints: Option<&str>) -> Child {
        let mut c = Command::new(env!("CARGO_BIN_EXE_payledger"));
        c.arg("run")
            .env("DATABASE_URL", &self.url)
            .env("PAYLEDGER_BIND", format!("127.0.0.1:{}", self.port))
            .env("PAYLEDGER_PUBLIC_URL", self.base())
            .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("STRIPE_API_BASE", &self.sim_base)
            .env("STRIPE_API_KEY", "sk_test_crash")
            .env("PAYLEDGER_PLANS", &self.plans)
            .env("PAYLEDGER_FOLLOW_SIM_CLOCK", "1")
            .env("PAYLEDGER_API_TOKEN", "token-for-tests")
            .env("PAYLEDGER_SUPPORT_EMAIL", "help@shop.example")
            .env("PAYLEDGER_RECONCILE_EVERY", "off")
            .env_remove("SMTP_URL")
            .env_remove("PAYLEDGER_MAIL_DIR")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match failpoints {
            Some(f) => c.env("PAYLEDGER_FAILPOINTS", f),
            None => c.env_remove("PAYLEDGER_FAILPOINTS"),
        };
        c.spawn().expect("spawn payledger run")
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn ready(&self) {
        let url = format!("{}/readyz", self.base());
        assert!(
            eventually(30, || {
                let url = url.clone();
                async move {
                    reqwest::get(url)
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            })
            .await,
            "payledger run did not become ready"
        );
    }

    async fn access(&self) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("{}/api/access", self.base()))
            .query(&[("email", ANN)])
            .bearer_auth("token-for-tests")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_the_renewal_s_webhook_loses_nothing_and_doubles_nothing() {
    let t = TestDb::new().await;
    let port = free_port();
    let (sim, sim_base) =
        start_sim(Some(format!("http://127.0.0.1:{port}/webhooks/stripe")), 7).await;
    let plans = std::env::temp_dir().join(format!("renewal-crash-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&plans, RENEWING_PLANS).unwrap();
    let run = Run {
        port,
        sim_base: sim_base.clone(),
        plans,
        url: t.url.clone(),
    };
    let mut child = run.spawn(None);
    run.ready().await;

    // Ann buys the renewing plan through the pages.
    let http = crate::common::shop::http();
    let token = uuid::Uuid::new_v4().to_string();
    let r = http
        .post(format!("{}/checkout", run.base()))
        .form(&[
            ("plan", "annual"),
            ("email", ANN),
            ("token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let pay = r.headers()["location"].to_str().unwrap().to_string();
    http.post(&pay).form(&[("email", "")]).send().await.unwrap();
    assert!(
        eventually(30, || async { run.access().await["active"] == true }).await,
        "the purchase did not activate"
    );
    let first_end = run.access().await["period_end"].clone();

    // Armed: the renewal's first webhook kills it before anything is stored.
    kill9(&mut child);
    let mut child = run.spawn(Some("webhook.before_append"));
    run.ready().await;
    reqwest::Client::new()
        .post(format!("{sim_base}/_sim/clock/advance"))
        .json(&serde_json::json!({"days": 366}))
        .send()
        .await
        .unwrap();
    let died = eventually(20, || {
        let status = child.try_wait();
        async move { matches!(status, Ok(Some(_))) }
    })
    .await;
    assert!(
        died,
        "payledger run was not killed at webhook.before_append"
    );

    // Restarted without the failpoint, the processor's retries land.
    let mut child = run.spawn(None);
    run.ready().await;
    let renewed = eventually(60, || async {
        run.access().await["period_end"] != first_end
    })
    .await;
    let access = run.access().await;
    assert!(renewed, "the renewal never landed: {access}");
    assert_eq!(access["active"], true, "{access}");
    // `run` stays up until every callback is delivered: a callback still
    // in the processor's backoff when the renewal shows could never land
    // on a dead server (CI under load lost that race).
    let delivered = eventually(30, || {
        let sim = sim.clone();
        async move { sim.lock().events.iter().all(|e| e.delivered) }
    })
    .await;
    kill9(&mut child);
    assert!(delivered, "the processor could not deliver every callback");
    assert_eq!(
        count_events(&t, "InvoicePaid").await,
        2,
        "one for the purchase, one renewal"
    );
    project_everything(&t.db.pool).await;
    let receipts: i64 = t
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM outgoing_emails WHERE kind = 'renewal_receipt'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(receipts, 1);
    let audit = Command::new(env!("CARGO_BIN_EXE_payledger"))
        .args(["audit", "invariants"])
        .env("DATABASE_URL", &t.url)
        .output()
        .unwrap();
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}
