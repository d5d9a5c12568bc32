//! For the product and the operators: `/api/access`, `/readyz`, `/metrics`.

use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use payledger_projections::states::ProjectionState;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

#[derive(Deserialize)]
pub struct AccessQuery {
    #[serde(default)]
    email: String,
}

/// Compares digests so the time taken says nothing about the token.
fn token_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Whether the request carries `Authorization: Bearer <expected>`.
fn bearer_matches(headers: &HeaderMap, expected: Option<&str>) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (given, expected) {
        (Some(g), Some(expected)) => token_matches(g.trim(), expected),
        _ => false,
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The token is checked before the query is even parsed, so nothing about
/// the request's shape is answered to a caller without it; every answer is
/// JSON.
pub async fn access(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<AccessQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if !bearer_matches(&headers, state.site.api_token.as_deref()) {
        return json_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let Ok(Query(q)) = query else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the query must be ?email=<address>, given once",
        );
    };
    let email = q.email.trim().to_lowercase();
    if !super::valid_email(&email) {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "the email parameter must be an email address"})),
        )
            .into_response();
    }
    let row = payledger_projections::read::subscriptions::by_email(&state.read, &email).await;
    match row {
        Ok(None) => Json(serde_json::json!({"email": email, "active": false})).into_response(),
        Ok(Some(s)) => Json(serde_json::json!({
            "email": email,
            "active": s.grants_access(state.clock.now(), state.site.past_due_access),
            "plan": s.plan,
            "status": s.status,
            "period_end": s.period_end,
            "activation": s.activation,
            "renews_at": s.renews_at,
            "cancel_at_period_end": s.cancel_at_period_end,
        }))
        .into_response(),
        Err(e) => {
            let reference = super::error_reference();
            tracing::error!(reference = %reference, error = %e, "access check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"error": "unavailable", "reference": reference})),
            )
                .into_response()
        }
    }
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let checked = state.store.schema_version().await;
    let want = crate::db::latest_migration_version();
    match checked {
        Ok(v) if v >= want => match stopped_projections(&state).await {
            Ok(stopped) if stopped.is_empty() => (StatusCode::OK, "ready\n").into_response(),
            Ok(stopped) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: projection stopped: {} (payledger projections status)\n",
                    stopped.join("; ")
                ),
            )
                .into_response(),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: the database is unreachable\n").into_response(),
        },
        Ok(v) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the database is at migration {v}, this build needs {want} (run payledger migrate)\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: the database is unreachable\n").into_response(),
    }
}

/// Each stopped projection with where and why, e.g. `subscriptions at
/// position 42 (ChargeSucceeded): the rule panicked: …`.
async fn stopped_projections(
    state: &AppState,
) -> Result<Vec<String>, payledger_projections::runner::RunnerError> {
    Ok(state
        .read
        .stopped_projections()
        .await?
        .into_iter()
        .map(|s| {
            format!(
                "{} at position {} ({}): {}",
                s.name,
                s.position.unwrap_or_default(),
                s.event_type.unwrap_or_default(),
                s.error.unwrap_or_default()
            )
        })
        .collect())
}

fn prometheus() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // A histogram (buckets), as documented, not a summary: summary
            // quantiles are per process and cannot be aggregated.
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("payledger_append_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Installs the recorder at start-up so counters from the first request on
/// are kept.
pub fn install_metrics() {
    let _ = prometheus();
}

/// How long gauges read from the database are reused: a scraper (or
/// anyone, when no token is set) cannot make each request run the lag scan.
const METRICS_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = state.site.metrics_token.as_deref() {
        if !bearer_matches(&headers, Some(expected)) {
            return (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
        }
    }
    let Some(handle) = prometheus() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable\n",
        )
            .into_response();
    };
    if gauges_due(&state.site.gauges_read_at) {
        refresh_database_gauges(&state).await;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// True at most once per [`METRICS_REFRESH`] per site, for one caller.
fn gauges_due(read_at: &std::sync::Mutex<Option<std::time::Instant>>) -> bool {
    let mut last = read_at.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    match *last {
        Some(t) if now.duration_since(t) < METRICS_REFRESH => false,
        _ => {
            *last = Some(now);
            true
        }
    }
}

async fn refresh_database_gauges(state: &AppState) {
    if let Ok(rows) = state.read.projections().await {
        for r in rows {
            metrics::gauge!("payledger_projection_lag_events", "projection" => r.name.clone())
                .set(r.lag as f64);
            let stopped = if r.state == ProjectionState::Stopped {
                1.0
            } else {
                0.0
            };
            metrics::gauge!("payledger_projection_stopped", "projection" => r.name.clone())
                .set(stopped);
        }
    }
    if let Ok(counts) = payledger_projections::read::discrepancies::open_counts(&state.read).await {
        for (kind, n) in counts {
            metrics::gauge!("payledger_open_discrepancies", "kind" => kind).set(n as f64);
        }
    }
}
