//! For the product and the operators: `/api/access`, `/readyz`, `/metrics`.

use crate::http::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
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

pub async fn access(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AccessQuery>,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorised = match (given, state.site.api_token.as_deref()) {
        (Some(g), Some(expected)) => token_matches(g.trim(), expected),
        _ => false,
    };
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "unauthorized"})),
        )
            .into_response();
    }
    let email = q.email.trim().to_lowercase();
    if !super::valid_email(&email) {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "the email parameter must be an email address"})),
        )
            .into_response();
    }
    let row = async {
        let client = state.store.pool().get().await?;
        Ok::<_, crate::store::StoreError>(
            client
                .query_opt(
                    "SELECT plan, status, period_end, activation FROM subscriptions WHERE email = $1",
                    &[&email],
                )
                .await?,
        )
    }
    .await;
    match row {
        Ok(None) => Json(serde_json::json!({"email": email, "active": false})).into_response(),
        Ok(Some(r)) => {
            let status: String = r.get("status");
            let period_end: DateTime<Utc> = r.get("period_end");
            let active = status == "active" && period_end > state.clock.now();
            Json(serde_json::json!({
                "email": email,
                "active": active,
                "plan": r.get::<_, String>("plan"),
                "status": status,
                "period_end": period_end,
                "activation": r.get::<_, String>("activation"),
            }))
            .into_response()
        }
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
    let checked = async {
        let client = state.store.pool().get().await?;
        let v: Option<i32> = client
            .query_one("SELECT max(version) FROM refinery_schema_history", &[])
            .await?
            .get(0);
        Ok::<_, crate::store::StoreError>(v.unwrap_or(0))
    }
    .await;
    let want = crate::db::latest_migration_version();
    match checked {
        Ok(v) if v >= want => (StatusCode::OK, "ready\n").into_response(),
        Ok(v) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the database is at migration {v}, this build needs {want} (run payledger migrate)\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: the database is unreachable\n").into_response(),
    }
}

fn prometheus() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
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

pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = prometheus() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable\n",
        )
            .into_response();
    };
    // Gauges are read from the database at scrape time.
    if let Ok(rows) = payledger_projections::runner::status(state.store.pool()).await {
        for r in rows {
            metrics::gauge!("payledger_projection_lag_events", "projection" => r.name.clone())
                .set(r.lag as f64);
        }
    }
    if let Ok(client) = state.store.pool().get().await {
        if let Ok(rows) = client
            .query(
                "SELECT kind, count(*) FROM discrepancies WHERE status = 'open' GROUP BY kind",
                &[],
            )
            .await
        {
            for r in rows {
                let kind: String = r.get(0);
                let n: i64 = r.get(1);
                metrics::gauge!("payledger_open_discrepancies", "kind" => kind).set(n as f64);
            }
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
