//! `payledger processor-sim`: a local processor in Stripe's wire format —
//! checkout sessions with a hosted pay page, list/retrieve/refund endpoints,
//! signed webhook delivery with retries, and fault injection. State lives in
//! memory; ids and fault decisions follow the seed.

mod api;
mod billing;
mod billing_api;
mod delivery;
mod state;

pub use billing::{default_prices, SimPrice};
pub use delivery::RetryPolicy;
pub use state::{Faults, NewSession, SimState, DEFAULT_API_VERSION};

use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to deliver webhooks; `None` delivers nothing (events are still
    /// listed by `GET /v1/events`).
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
    pub seed: u64,
    /// The simulator's own base URL, for the hosted pay page links.
    pub public_url: String,
    pub retry: RetryPolicy,
    /// Which API version's wire shapes to send (`2020-03-02`: the older
    /// shapes); `None`: [`DEFAULT_API_VERSION`].
    pub api_version: Option<String>,
    /// The recurring prices it can bill; empty: [`default_prices`].
    pub prices: Vec<SimPrice>,
}

#[derive(Clone)]
pub struct Simulator {
    pub config: Arc<SimConfig>,
    state: Arc<Mutex<SimState>>,
    http: reqwest::Client,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        let mut state = SimState::new(config.seed);
        if let Some(v) = &config.api_version {
            state.api_version = v.clone();
        }
        if !config.prices.is_empty() {
            state.billing.prices = config.prices.clone();
        }
        let in_flight = Arc::new(tokio::sync::Semaphore::new(
            config.retry.max_in_flight.max(1),
        ));
        Simulator {
            in_flight,
            config: Arc::new(config),
            state: Arc::new(Mutex::new(state)),
            http: reqwest::Client::new(),
        }
    }

    /// The state lock; a panic elsewhere must not wedge the simulator.
    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }
}

/// Binds and serves until the process ends; returns the bound address
/// through `on_bound` (useful with port 0).
pub async fn serve(sim: Simulator, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, sim.router()).await
}
