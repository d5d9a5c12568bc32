//! What every HTTP handler shares: the store, the clock, the webhook
//! secrets and the site's settings. Handlers take it as `State<AppState>`;
//! it imports nothing from the handlers, so every import points down.

pub mod limiter;
pub mod proxies;
mod site;

pub use site::Site;

use crate::clock::Clock;
use crate::store::PgEventStore;
use payledger_projections::read::ReadModels;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: PgEventStore,
    /// The read models beside the log; handlers read only through here.
    pub read: ReadModels,
    pub clock: Arc<dyn Clock>,
    /// Every secret currently accepted for `Stripe-Signature` (rotation).
    pub webhook_secrets: Arc<Vec<String>>,
    pub site: Arc<Site>,
}

impl AppState {
    pub fn new(store: PgEventStore, clock: Arc<dyn Clock>, webhook_secrets: Vec<String>) -> Self {
        AppState {
            read: ReadModels::of(&store),
            store,
            clock,
            webhook_secrets: Arc::new(webhook_secrets),
            site: Arc::new(Site::default()),
        }
    }

    pub fn with_site(mut self, site: Site) -> Self {
        self.site = Arc::new(site);
        self
    }
}
