//! A shop selling renewing plans, its clock following the simulator's
//! (PAYLEDGER_FOLLOW_SIM_CLOCK as `run` does it), and the steps of a
//! renewal story: buy, move the processor's clock, read `/api/access`.
#![allow(dead_code)]

use super::shop::*;
use super::*;
use payledger::plans::Plans;
use payledger::sim_clock::FollowedClock;
use serde_json::{json, Value};
use std::sync::Arc;

pub const RENEWING_PLANS: &str = r#"
[[plan]]
id = "annual"
name = "One year of access, renews yearly"
amount = 24900
currency = "usd"
period = "year"
renews = true
processor_price_id = "price_annual_249"

[[plan]]
id = "monthly"
name = "One month of access, renews monthly"
amount = 2500
currency = "usd"
period = "month"
renews = true
processor_price_id = "price_monthly_25"
"#;

pub struct RenewingShop {
    pub shop: Shop,
    pub clock: Arc<FollowedClock>,
    pub pool: deadpool_postgres::Pool,
}

pub async fn open_renewing_shop(t: &TestDb, api_version: Option<&str>) -> RenewingShop {
    let clock = Arc::new(FollowedClock::default());
    let shop = open_shop_clocked(
        t.db.pool.clone(),
        true,
        |site| site.plans = Plans::parse(RENEWING_PLANS, "renewing plans").unwrap(),
        axum::Router::new(),
        clock.clone(),
        api_version,
    )
    .await;
    clock.sync(&shop.sim_base).await.unwrap();
    RenewingShop {
        shop,
        clock,
        pool: t.db.pool.clone(),
    }
}

impl RenewingShop {
    /// The checkout form, then the processor's pay page: as a customer.
    pub async fn buy(&self, email: &str, plan: &str) {
        let token = uuid::Uuid::new_v4().to_string();
        let r = http()
            .post(format!("{}/checkout", self.shop.base))
            .form(&[("plan", plan), ("email", email), ("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        let pay_url = r.headers()["location"].to_str().unwrap().to_string();
        let r = http()
            .post(&pay_url)
            .form(&[("email", "")])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "{}", r.status());
        self.settle().await;
    }

    /// Waits until the simulator delivered every event it sent, then runs
    /// the projections to the end of the log.
    pub async fn settle(&self) {
        let sim = self.shop.sim.clone();
        assert!(
            eventually(30, || {
                let sim = sim.clone();
                async move { sim.lock().events.iter().all(|e| e.delivered || e.dropped) }
            })
            .await,
            "the simulator's webhooks were not all delivered"
        );
        project_everything(&self.pool).await;
    }

    /// Moves the processor's clock (renewals, retries and cancellations
    /// due happen), and payledger's with it.
    pub async fn advance_days(&self, days: i64) -> Value {
        self.advance(json!({ "days": days })).await
    }

    pub async fn advance(&self, by: Value) -> Value {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/_sim/clock/advance", self.shop.sim_base))
            .json(&by)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer.get("now").is_some(), "{answer}");
        self.clock.sync(&self.shop.sim_base).await.unwrap();
        self.settle().await;
        answer
    }

    /// The simulator's clock as a date.
    pub fn sim_now(&self) -> chrono::DateTime<chrono::Utc> {
        let now = self.shop.sim.lock().now();
        chrono::DateTime::from_timestamp(now, 0).unwrap()
    }

    pub async fn sim_post(&self, path: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.shop.sim_base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let answer = r.json().await.unwrap();
        self.settle().await;
        answer
    }

    /// `/api/access` as the product's app reads it.
    pub async fn access(&self, email: &str) -> Value {
        http()
            .get(format!("{}/api/access", self.shop.base))
            .query(&[("email", email)])
            .bearer_auth("token-for-tests")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The customer's status page (of the checkout that bought the plan).
    pub async fn status_url(&self, email: &str) -> String {
        let client = self.pool.get().await.unwrap();
        let reference: String = client
            .query_one(
                "SELECT reference FROM customer_status WHERE email = $1 ORDER BY started_at LIMIT 1",
                &[&email],
            )
            .await
            .unwrap()
            .get(0);
        format!("{}/status/{reference}", self.shop.base)
    }

    /// The processor's subscription id of the customer's access.
    pub async fn subscription_of(&self, email: &str) -> String {
        let client = self.pool.get().await.unwrap();
        client
            .query_one(
                "SELECT subscription_id FROM subscriptions WHERE email = $1",
                &[&email],
            )
            .await
            .unwrap()
            .get::<_, Option<String>>(0)
            .expect("a subscription id")
    }

    pub async fn open_discrepancy_kinds(&self) -> Vec<String> {
        let client = self.pool.get().await.unwrap();
        client
            .query(
                "SELECT kind FROM discrepancies WHERE status = 'open' ORDER BY kind",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

/// A date `/api/access` gave, parsed.
pub fn date(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a date: {v}"))
        .parse()
        .unwrap()
}
