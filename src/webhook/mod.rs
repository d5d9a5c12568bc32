//! `POST /webhooks/stripe`: verify, record verbatim with the facts it states
//! in one transaction, and only then answer 2xx.

use crate::processor::{mapping, signature};
use crate::state::AppState;
use crate::store::{AppendOutcome, EventStore, ExpectedVersion, StoreError};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use payledger_events::{Actor, DomainEvent, EventData, Metadata, ProcessorEventConflict, StreamId};
use serde_json::json;

pub use crate::processor::MAX_CALLBACK_BYTES as BODY_LIMIT_BYTES;

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
    // The processor signs with its machine's time, whatever its (test) clock says.
    let signed_by = state.clock.wall().timestamp();
    if let Err(e) = signature::verify(header, &body, &state.webhook_secrets, signed_by) {
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
    let appended = match state
        .store
        .append_unless_stored(mapped.record_event_id, mapped.appends)
        .await
    {
        // The id was stored before: a retry of the same body, or another body.
        Ok(outcome) if outcome.stored() == 0 => {
            same_id_again(&state, &mapped.processor_event_id, &body, now).await
        }
        other => other.map(Recorded::Appended),
    };
    match appended {
        Ok(Recorded::Conflict { stored_sha256 }) => {
            tracing::warn!(event = %mapped.processor_event_id, stored = %stored_sha256, "a callback reused a stored event id with a different body; none of it became a fact");
            metrics::counter!("payledger_webhooks_total", "outcome" => "conflict").increment(1);
            let body = json!({
                "received": true,
                "event": mapped.processor_event_id,
                "type": mapped.event_type,
                "result": "conflict",
                "facts": [],
                "stored": 0,
                "duplicates": 0,
            });
            (StatusCode::OK, Json(body)).into_response()
        }
        Ok(Recorded::Appended(outcome)) => {
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

enum Recorded {
    Appended(AppendOutcome),
    /// The id was stored with another body; nothing of this one is a fact.
    Conflict {
        stored_sha256: String,
    },
}

/// The processor event id is already stored. The same bytes are a retry
/// (its facts were stored with it, in the same append); different bytes are
/// a conflict, recorded by both bodies' hashes and opened as a discrepancy.
async fn same_id_again(
    state: &AppState,
    processor_event_id: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let stream = StreamId::processor_event(processor_event_id);
    let first = state.store.read_stream(&stream, 0, 1).await?;
    let stored = first
        .first()
        .map(|e| e.decode())
        .transpose()
        .map_err(|e| StoreError::InvalidBatch(e.to_string()))?;
    let Some(DomainEvent::ProcessorEventReceived(record)) = stored else {
        return Err(StoreError::InvalidBatch(format!(
            "stream {stream} does not start with the callback it is named after"
        )));
    };
    let stored_sha256 = mapping::body_sha256(&mapping::stored_body_bytes(&record));
    let received_sha256 = mapping::body_sha256(body);
    if stored_sha256 == received_sha256 {
        return Ok(Recorded::Appended(AppendOutcome {
            events: vec![crate::store::EventOutcome::Duplicate {
                event_id: payledger_events::deterministic_event_id(
                    "ProcessorEventReceived",
                    processor_event_id,
                ),
            }],
        }));
    }
    let conflict: DomainEvent = ProcessorEventConflict {
        processor_event_id: processor_event_id.to_string(),
        stored_body_sha256: stored_sha256.clone(),
        received_body_sha256: received_sha256.clone(),
        received_at: now,
    }
    .into();
    let correlation =
        payledger_events::deterministic_event_id("ProcessorEventReceived", processor_event_id);
    let data = EventData::for_processor_fact(
        &conflict,
        &format!("{processor_event_id}:{received_sha256}"),
        Metadata::new(correlation, Actor::webhook(), "webhook").caused_by(correlation),
    )?;
    state
        .store
        .append_to_stream(stream, ExpectedVersion::Any, vec![data])
        .await?;
    Ok(Recorded::Conflict { stored_sha256 })
}
