//! `payledger processor-sim`: a local processor in Stripe's wire format —
//! checkout sessions with a hosted pay page, list/retrieve/refund endpoints,
//! signed webhook delivery with retries, and fault injection. State lives in
//! memory; ids and fault decisions follow the seed.

mod api;
mod delivery;
mod state;

pub use delivery::RetryPolicy;
pub use state::{Faults, NewSession, SimState};

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
}

#[derive(Clone)]
pub struct Simulator {
    pub config: Arc<SimConfig>,
    state: Arc<Mutex<SimState>>,
    http: reqwest::Client,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        let state = SimState::new(config.seed);
        Simulator {
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
