//! The real flow in Debian's Chromium (headless, through chromedriver):
//! home → checkout → the simulator's hosted pay page → the return page, and
//! the orphan path. Screenshots of every page go to `target/screenshots/`.

use crate::common::shop::*;
use crate::common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Browser {
    driver: Child,
    client: Client,
    shots: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn browser(name: &str) -> Browser {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            && std::path::Path::new("/usr/bin/chromedriver").exists(),
        "this test needs Debian's chromium and chromium-driver (.ci/run installs them)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = std::env::temp_dir().join(format!("payledger-chromium-{}", uuid::Uuid::new_v4()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=420,900",
                     format!("--user-data-dir={}", profile.display())]
        }),
    );
    let mut client = None;
    for _ in 0..50 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(name);
    std::fs::create_dir_all(&shots).unwrap();
    Browser {
        driver,
        client: client.expect("chromedriver answered"),
        shots,
    }
}

impl Browser {
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The page's text; waits out a navigation (or a meta refresh) in
    /// progress, when no `body` exists for a moment.
    async fn visible_text(&self) -> String {
        let body = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("body"))
            .await
            .unwrap();
        match body.text().await {
            Ok(text) => text,
            // Replaced by the next page between finding and reading it.
            Err(_) => Box::pin(self.visible_text()).await,
        }
    }

    /// Waits until the page (refreshing itself, or reloaded) shows `text`.
    async fn until_text(&self, text: &str, secs: u64, reload: bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let body = self.visible_text().await;
            if body.contains(text) || std::time::Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            if reload {
                let _ = self.client.refresh().await;
            }
        }
    }

    /// Home → choose the plan → email → the processor's page → pay.
    async fn buy(&self, base: &str, email: &str) {
        self.client.goto(&format!("{base}/")).await.unwrap();
        self.shot("1-home").await;
        assert!(self.visible_text().await.contains("One year of access"));
        self.client
            .find(Locator::Id("email"))
            .await
            .unwrap()
            .send_keys(email)
            .await
            .unwrap();
        self.client
            .find(Locator::Css("button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let pay = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("pay"))
            .await
            .unwrap();
        self.shot("2-processor-pay-page").await;
        pay.click().await.unwrap();
        // The pay page has a heading too: wait until the browser is back on
        // our return page, or `h1` may be found on the page being left.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self
            .client
            .current_url()
            .await
            .is_ok_and(|u| u.path().starts_with("/checkout/return"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "never came back from the pay page"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("h1"))
            .await
            .unwrap();
    }
}

/// A worker in this process: projections (and nothing else) until dropped.
fn run_projections(t: &TestDb) -> tokio::sync::watch::Sender<bool> {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let config = payledger::worker::WorkerConfig {
        poll: Duration::from_millis(200),
        ..Default::default()
    };
    tokio::spawn(payledger::worker::run(
        t.db.pool.clone(),
        t.db.config.clone(),
        config,
        stop,
    ));
    stop_tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_pays_in_a_real_browser_and_sees_pending_then_active() {
    let t = TestDb::new().await;
    let shop = open_shop_with(t.db.pool.clone(), true, |_| {}, axum::Router::new()).await;
    // Slow enough that the return page first says "pending".
    shop.sim.set_faults(payledger_sim::Faults {
        delay_ms: 2500,
        ..Default::default()
    });
    let _worker = run_projections(&t);
    let b = browser("happy-path").await;
    b.buy(&shop.base, "browser@example.com").await;
    let first = b.visible_text().await;
    b.shot("3-return-pending").await;
    assert!(
        first.contains("Your payment may still be arriving"),
        "{first}"
    );
    assert!(first.contains("Please don't pay again."));
    // The page refreshes itself (meta refresh): no reload from the test.
    let later = b.until_text("You're in", 30, false).await;
    b.shot("4-return-active").await;
    assert!(later.contains("You're in"), "{later}");
    assert!(
        later.contains("249.00 USD") && later.contains("Access until"),
        "{later}"
    );
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_orphan_in_a_real_browser_is_not_yet_recorded_then_shows_active_after_reconciliation() {
    let t = TestDb::new().await;
    let shop = open_shop_with(
        t.db.pool.clone(),
        true,
        |s| s.pending_window = chrono::Duration::seconds(3),
        axum::Router::new(),
    )
    .await;
    // The seed story: the processor charges, the webhook never arrives.
    shop.sim.set_faults(payledger_sim::Faults {
        drop: 1.0,
        ..Default::default()
    });
    let _worker = run_projections(&t);
    let b = browser("orphan").await;
    b.buy(&shop.base, "orphan@example.com").await;
    let first = b.visible_text().await;
    b.shot("3-return-pending").await;
    assert!(
        first.contains("Your payment may still be arriving"),
        "{first}"
    );

    // Nothing recorded, nothing queued: no person is promised.
    let attention = b
        .until_text("Your payment hasn't reached us yet", 30, false)
        .await;
    b.shot("4-return-not-yet-recorded").await;
    assert!(
        attention.contains("Your payment hasn't reached us yet"),
        "{attention}"
    );
    assert!(!attention.contains("A person"), "{attention}");
    assert!(attention.contains("If you don't hear from us within a day"));
    let reference = attention
        .split("PL-")
        .nth(1)
        .map(|r| format!("PL-{}", &r[..19]))
        .expect("a reference code on the page");

    let now = chrono::Utc::now();
    payledger::reconcile::reconcile(
        &t.store(),
        &processor_client(&shop.sim_base),
        now - chrono::Duration::hours(1),
        now + chrono::Duration::minutes(1),
        false,
    )
    .await
    .unwrap();
    b.client
        .goto(&format!("{}/status/{reference}", shop.base))
        .await
        .unwrap();
    let status = b.until_text("You're in", 30, true).await;
    b.shot("5-status-active").await;
    assert!(status.contains("You're in"), "{status}");
    assert!(status.contains(&reference));
    b.client.clone().close().await.unwrap();
}

/// Every situation's page as a customer's browser shows it, photographed
/// under `target/screenshots/situations/` (for reading the words in
/// context), each showing its own situation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_situation_is_photographed_as_the_customer_sees_it() {
    use payledger::situation::Situation;
    let t = TestDb::new().await;
    let store = t.store();
    let an_hour_ago = payledger::store::PgEventStore::new(
        t.db.pool.clone(),
        std::sync::Arc::new(payledger::clock::ManualClock::new(
            chrono::Utc::now() - chrono::Duration::hours(1),
        )),
    );
    let mut built = vec![];
    for s in Situation::ALL {
        built.push(crate::situations::build(&store, &an_hour_ago, *s).await);
    }
    project_everything(&t.db.pool).await;
    let shop = open_shop_with(t.db.pool.clone(), false, |_| {}, axum::Router::new()).await;
    let b = browser("situations").await;
    for s in &built {
        b.client
            .goto(&format!("{}/status/{}", shop.base, s.reference))
            .await
            .unwrap();
        let text = b.visible_text().await;
        b.shot(s.want.name()).await;
        let page = crate::pages::page(&format!("{}/status/{}", shop.base, s.reference))
            .await
            .1;
        assert!(
            page.contains(&format!("data-situation=\"{}\"", s.want.name())),
            "{}: {text}",
            s.want.name()
        );
        assert!(text.contains(&s.reference), "{}: {text}", s.want.name());
    }
    b.client.clone().close().await.unwrap();
}
