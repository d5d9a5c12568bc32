//! Fixed-window counters for the status-by-email form: per address (so
//! nobody floods one inbox) and per client (so nobody sprays addresses).
//! In memory, per process: a deployment with several `serve` processes
//! multiplies the allowance by their number.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    pub per_address: u32,
    pub per_client: u32,
    pub window: Duration,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(3, 20, Duration::from_secs(3600))
    }
}

impl RateLimiter {
    pub fn new(per_address: u32, per_client: u32, window: Duration) -> Self {
        RateLimiter {
            per_address,
            per_client,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Checkouts: 30 an hour from one client address (a shop's own
    /// customers behind one office NAT stay far below it).
    pub fn checkouts() -> Self {
        RateLimiter::new(u32::MAX, 30, Duration::from_secs(3600))
    }

    /// Counts one request from `client`; false when it is over.
    pub fn allow_client(&self, client: &str) -> bool {
        let mut hits = self.hits();
        self.count(&mut hits, format!("client:{client}"), self.per_client)
    }

    /// Counts one request for both keys; false when either is over.
    pub fn allow(&self, address: &str, client: &str) -> bool {
        let mut hits = self.hits();
        let address_ok = self.count(&mut hits, format!("address:{address}"), self.per_address);
        let client_ok = self.count(&mut hits, format!("client:{client}"), self.per_client);
        address_ok && client_ok
    }

    fn hits(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u32)>> {
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() > 10_000 {
            let now = Instant::now();
            hits.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        hits
    }

    fn count(&self, hits: &mut HashMap<String, (Instant, u32)>, key: String, max: u32) -> bool {
        let now = Instant::now();
        let entry = hits.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= max
    }
}
