//! What one client can hold of the server: how long it may take to send
//! its headers and its body, how long an idle keep-alive connection stays
//! open, and how many connections are served at once. A slow or idle
//! client is cut off; nobody can tie up the server by trickling bytes.

use crate::config::{duration_setting, ConfigError};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// From the connection's first byte (or the end of the last response on
    /// a keep-alive connection) to the end of the request headers: also the
    /// idle keep-alive timeout.
    pub header_read: Duration,
    /// From the headers to the last byte of the body, however it trickles.
    pub body_read: Duration,
    /// Connections served at once; one more is closed as soon as accepted.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

impl HttpLimits {
    /// `PAYLEDGER_HEADER_TIMEOUT` (10s), `PAYLEDGER_BODY_TIMEOUT` (30s),
    /// `PAYLEDGER_MAX_CONNECTIONS` (1024).
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = HttpLimits::default();
        let seconds = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            let value = duration_setting(
                name,
                chrono::Duration::from_std(default).unwrap_or_default(),
            )?;
            value.to_std().map_err(|_| ConfigError::Invalid {
                name,
                reason: "must be a positive duration".into(),
            })
        };
        let max_connections = match crate::config::var("PAYLEDGER_MAX_CONNECTIONS") {
            None => d.max_connections,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "PAYLEDGER_MAX_CONNECTIONS",
                    reason: format!("{v:?} is not a positive number of connections"),
                })?,
        };
        Ok(HttpLimits {
            header_read: seconds("PAYLEDGER_HEADER_TIMEOUT", d.header_read)?,
            body_read: seconds("PAYLEDGER_BODY_TIMEOUT", d.body_read)?,
            max_connections,
        })
    }
}

/// Reads the whole body within `body_read`, or answers 408 and closes.
/// Bodies here are at most a webhook's mebibyte, so reading them up front
/// costs nothing the handlers would not spend anyway.
pub async fn body_deadline(
    State(limits): State<std::sync::Arc<HttpLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = crate::processor::MAX_CALLBACK_BYTES;
    match tokio::time::timeout(limits.body_read, axum::body::to_bytes(body, limit)).await {
        Err(_) => {
            let mut r = (
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time\n",
            )
                .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                StatusCode::PAYLOAD_TOO_LARGE.into_response()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read\n",
                )
                    .into_response()
            }
        }
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}
