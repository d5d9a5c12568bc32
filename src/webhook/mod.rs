//! `POST /webhooks/stripe`: verify, record verbatim with the facts it states
//! in one transaction, and only then answer 2xx.

pub mod mapping;
pub mod signature;

use crate::http::AppState;
use crate::store::{EventStore, StoreError};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

/// The processor's payloads are a few KiB; anything near this is not one.
pub const BODY_LIMIT_BYTES: usize = 1 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/stripe", post(receive_stripe_webhook))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
}

async fn receive_stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = state.clock.now();
    let header = headers
        .get("stripe-signature")
        .map(|v| v.to_str().unwrap_or("\u{0}not-ascii"));
    if let Err(e) = signature::verify(header, &body, &state.webhook_secrets, now.timestamp()) {
        tracing::info!(reason = %e, "webhook refused");
        metrics::counter!("payledger_webhooks_total", "outcome" => "refused").increment(1);
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response();
    }
    let mapped = match mapping::map_callback(&body, now) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "could not encode a verified callback");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "could not record the event" })),
            )
                .into_response();
        }
    };
    let started = std::time::Instant::now();
    crate::failpoint::hit("webhook.before_append");
    match state.store.append(mapped.appends).await {
        Ok(outcome) => {
            crate::failpoint::hit("webhook.after_append");
            metrics::histogram!("payledger_append_seconds").record(started.elapsed().as_secs_f64());
            let result = if mapped.unparsed_reason.is_some() {
                "unparsed"
            } else if outcome.stored() == 0 {
                "duplicate"
            } else {
                "recorded"
            };
            metrics::counter!("payledger_webhooks_total", "outcome" => result).increment(1);
            if let Some(reason) = &mapped.unparsed_reason {
                tracing::warn!(event = %mapped.processor_event_id, %reason, "kept a callback payledger cannot understand");
            }
            let body = json!({
                "received": true,
                "event": mapped.processor_event_id,
                "type": mapped.event_type,
                "result": result,
                "facts": mapped.facts,
                "stored": outcome.stored(),
                "duplicates": outcome.duplicates(),
            });
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(StoreError::Unavailable(reason)) => {
            tracing::warn!(%reason, event = %mapped.processor_event_id, "store unavailable; asking the processor to retry");
            metrics::counter!("payledger_webhooks_total", "outcome" => "unavailable").increment(1);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "the ledger cannot record events right now; retry later" })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, event = %mapped.processor_event_id, "could not record a callback");
            metrics::counter!("payledger_webhooks_total", "outcome" => "error").increment(1);
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "could not record the event; retry later" })),
            )
                .into_response()
        }
    }
}
