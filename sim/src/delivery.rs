//! Webhook delivery as the processor does it: signed, retried with
//! exponential backoff on non-2xx or timeout, and bent by the fault switches.

use super::Simulator;
use crate::state::Recorded;
use payledger_stripe::signature;
use rand::Rng;
use std::time::Duration;

/// How the simulator retries; the processor retries for three days, the
/// simulator compresses that into seconds.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub max_attempts: u32,
    pub request_timeout: Duration,
    /// Deliveries in flight at once: the processor sends an endpoint a
    /// bounded number of concurrent requests, and a burst of renewals must
    /// not open a connection per event.
    pub max_in_flight: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_attempts: 40,
            request_timeout: Duration::from_secs(10),
            max_in_flight: 32,
        }
    }
}

/// Schedules delivery of freshly recorded events, applying the faults.
pub fn dispatch(sim: &Simulator, events: Vec<Recorded>) {
    for event in events {
        let (copies, delay) = {
            let mut state = sim.lock();
            let faults = state.faults.clone();
            if state.roll(faults.drop) {
                tracing::info!(event = %event.id, kind = %event.event_type, "fault: delivery dropped");
                if let Some(stored) = state.stored_event_mut(&event.id) {
                    stored.dropped = true;
                }
                continue;
            }
            let copies = if state.roll(faults.duplicate) { 2 } else { 1 };
            let jitter = if faults.reorder {
                state.rng.random_range(0..400u64)
            } else {
                0
            };
            (copies, Duration::from_millis(faults.delay_ms + jitter))
        };
        for _ in 0..copies {
            let (sim, event) = (sim.clone(), event.clone());
            tokio::spawn(async move { deliver(sim, event, delay).await });
        }
    }
}

async fn deliver(sim: Simulator, event: Recorded, delay: Duration) {
    let Some(url) = sim.config.webhook_url.clone() else {
        return;
    };
    tokio::time::sleep(delay).await;
    let policy = sim.config.retry.clone();
    let mut backoff = policy.first_backoff;
    for attempt in 1..=policy.max_attempts {
        let down = {
            let mut state = sim.lock();
            if let Some(stored) = state.stored_event_mut(&event.id) {
                stored.attempts += 1;
            }
            state.faults.endpoint_down
        };
        let ok = !down && {
            let _permit = sim.in_flight.acquire().await;
            // Read only once it may go: what waits holds no body.
            let body = sim.lock().event_body(&event.id);
            match body {
                Some(body) => post_signed(&sim, &url, &body, policy.request_timeout).await,
                None => return,
            }
        };
        if ok {
            let mut state = sim.lock();
            if let Some(stored) = state.stored_event_mut(&event.id) {
                stored.delivered = true;
            }
            return;
        }
        tracing::debug!(event = %event.id, attempt, down, "delivery failed; will retry");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
    tracing::warn!(event = %event.id, "gave up delivering after {} attempts", policy.max_attempts);
}

async fn post_signed(sim: &Simulator, url: &str, body: &[u8], timeout: Duration) -> bool {
    let now = chrono::Utc::now().timestamp();
    let header = signature::sign(body, &sim.config.webhook_secret, now);
    let response = sim
        .http
        .post(url)
        .header("Stripe-Signature", header)
        .header("Content-Type", "application/json")
        .timeout(timeout)
        .body(body.to_vec())
        .send()
        .await;
    matches!(response, Ok(r) if r.status().is_success())
}
