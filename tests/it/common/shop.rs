//! A shop in-process: `serve` with plans and the simulator as processor.
#![allow(dead_code)]

use super::*;
use payledger::clock::SystemClock;
use payledger::http::AppState;
use payledger::pages::Site;
use payledger::plans::Plans;
use payledger::store::PgEventStore;
use std::sync::Arc;

pub const PLANS: &str = r#"
[[plan]]
id = "annual"
name = "One year of access"
amount = 24900
currency = "usd"
period = "year"
"#;

pub struct Shop {
    pub base: String,
    pub sim: payledger_sim::Simulator,
    pub sim_base: String,
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn open_shop_with(
    pool: deadpool_postgres::Pool,
    deliver_webhooks: bool,
    tune: impl FnOnce(&mut Site),
    extra: axum::Router<AppState>,
) -> Shop {
    open_shop_clocked(
        pool,
        deliver_webhooks,
        tune,
        extra,
        Arc::new(SystemClock),
        None,
    )
    .await
}

/// [`open_shop_with`] on `clock`, the simulator speaking `api_version`.
pub async fn open_shop_clocked(
    pool: deadpool_postgres::Pool,
    deliver_webhooks: bool,
    tune: impl FnOnce(&mut Site),
    extra: axum::Router<AppState>,
    clock: Arc<dyn payledger::clock::Clock>,
    api_version: Option<&str>,
) -> Shop {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hook = deliver_webhooks.then(|| format!("{base}/webhooks/stripe"));
    let (sim, sim_base) = start_sim_speaking(hook, 41, api_version).await;
    let mut site = Site {
        plans: Plans::parse(PLANS, "test plans").unwrap(),
        public_url: base.clone(),
        processor: Some(processor_client(&sim_base)),
        support_email: "help@shop.example".into(),
        api_token: Some("token-for-tests".into()),
        ..Site::default()
    };
    tune(&mut site);
    let state = AppState::new(
        PgEventStore::new(pool, clock.clone()),
        clock,
        vec![WEBHOOK_SECRET.into()],
    )
    .with_site(site);
    // As `serve` does at start-up.
    payledger::plans::record_offers(&state.store, &state.site.plans)
        .await
        .unwrap();
    let router = payledger::http::router_with(state, extra);
    tokio::spawn(payledger::http::serve_router(
        listener,
        router,
        std::future::pending(),
    ));
    Shop {
        base,
        sim,
        sim_base,
    }
}

pub async fn open_shop(t: &TestDb, deliver_webhooks: bool) -> Shop {
    open_shop_with(
        t.db.pool.clone(),
        deliver_webhooks,
        |_| {},
        axum::Router::new(),
    )
    .await
}
