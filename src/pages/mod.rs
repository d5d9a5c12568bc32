//! What the customer sees: checkout, the return and status pages, the
//! status-by-email form — every one an honest page, never a blank one, even
//! when the database is down or a handler panics.

mod checkout;
pub mod guard;
pub mod limiter;
mod ops;
mod status;
pub mod views;

pub use ops::install_metrics;

use crate::config::ConfigError;
use crate::http::AppState;
use crate::plans::Plans;
use crate::processor::client::ProcessorClient;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use views::Message;

/// Settings of the customer-facing side.
#[derive(Clone)]
pub struct Site {
    pub plans: Plans,
    /// Where customers reach payledger (for the processor's return URL).
    pub public_url: String,
    pub processor: Option<ProcessorClient>,
    pub support_email: String,
    pub api_token: Option<String>,
    /// `PAYLEDGER_METRICS_TOKEN`: when set, `/metrics` wants it as a bearer.
    pub metrics_token: Option<String>,
    /// How long "pending" is honest before the page says a person is on it.
    pub pending_window: chrono::Duration,
    pub limiter: Arc<limiter::RateLimiter>,
    /// Timeouts and the connection cap of the HTTP server.
    pub http_limits: crate::http::HttpLimits,
    /// `PAYLEDGER_TRUSTED_PROXIES`: whose `X-Forwarded-For` is believed.
    pub trusted_proxies: guard::TrustedProxies,
    /// Checkouts per client address (the processor session each one opens
    /// is not free, and the events can never be deleted).
    pub checkout_limiter: Arc<limiter::RateLimiter>,
    /// When `/metrics` last read its gauges from this site's database.
    pub gauges_read_at: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            plans: Plans::default(),
            public_url: "http://127.0.0.1:8080".into(),
            processor: None,
            support_email: "support@example.com".into(),
            api_token: None,
            metrics_token: None,
            pending_window: chrono::Duration::minutes(3),
            limiter: Arc::new(limiter::RateLimiter::default()),
            http_limits: Default::default(),
            trusted_proxies: Default::default(),
            checkout_limiter: Arc::new(limiter::RateLimiter::checkouts()),
            gauges_read_at: Default::default(),
        }
    }
}

impl Site {
    /// `PAYLEDGER_PLANS`, `PAYLEDGER_PUBLIC_URL` (default `http://BIND`),
    /// `STRIPE_API_KEY`/`STRIPE_API_BASE`, `PAYLEDGER_SUPPORT_EMAIL`,
    /// `PAYLEDGER_API_TOKEN` (optional: without it `/api/access` refuses
    /// everyone), `PAYLEDGER_PENDING_WINDOW` (default 3m).
    pub fn from_env(bind: std::net::SocketAddr) -> Result<Self, ConfigError> {
        let plans = Plans::from_env()?;
        let public_url = crate::config::var("PAYLEDGER_PUBLIC_URL")
            .map(|u| u.trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("http://{bind}"));
        url::Url::parse(&public_url).map_err(|e| ConfigError::Invalid {
            name: "PAYLEDGER_PUBLIC_URL",
            reason: format!("{public_url:?} is not a URL ({e})"),
        })?;
        let api = crate::config::processor_api()?;
        let support_email =
            crate::config::var("PAYLEDGER_SUPPORT_EMAIL").ok_or(ConfigError::Missing {
                name: "PAYLEDGER_SUPPORT_EMAIL",
                hint: "the address customers are told to write to, e.g. support@example.com",
            })?;
        if !valid_email(&support_email) {
            return Err(ConfigError::Invalid {
                name: "PAYLEDGER_SUPPORT_EMAIL",
                reason: format!("{support_email:?} is not an email address"),
            });
        }
        let api_token = crate::config::var("PAYLEDGER_API_TOKEN");
        if api_token.is_none() {
            tracing::warn!("PAYLEDGER_API_TOKEN is not set: /api/access refuses every request");
        }
        Ok(Site {
            plans,
            public_url,
            processor: Some(api.client()),
            support_email,
            api_token,
            metrics_token: crate::config::var("PAYLEDGER_METRICS_TOKEN"),
            pending_window: crate::config::duration_setting(
                "PAYLEDGER_PENDING_WINDOW",
                chrono::Duration::minutes(3),
            )?,
            limiter: Arc::new(limiter::RateLimiter::default()),
            http_limits: crate::http::HttpLimits::from_env()?,
            trusted_proxies: guard::TrustedProxies::parse(
                &crate::config::var("PAYLEDGER_TRUSTED_PROXIES").unwrap_or_default(),
            )
            .map_err(|reason| ConfigError::Invalid {
                name: "PAYLEDGER_TRUSTED_PROXIES",
                reason,
            })?,
            checkout_limiter: Arc::new(limiter::RateLimiter::checkouts()),
            gauges_read_at: Default::default(),
        })
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(checkout::home))
        .route("/checkout", axum::routing::post(checkout::start))
        .route("/checkout/return", get(status::checkout_return))
        .route(
            "/status",
            get(status::status_form).post(status::request_links),
        )
        .route("/status/{reference}", get(status::status_page))
        .route("/style.css", get(stylesheet))
        .route("/api/access", get(ops::access))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        views::STYLESHEET,
    )
        .into_response()
}

/// A reference code for one failure, quoted on the page and in the log line.
pub fn error_reference() -> String {
    let n = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    format!("ERR-{}-{}", &n[0..4], &n[4..8])
}

/// Pages with payment details must not be kept by browsers or proxies.
pub fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub fn message(
    site: &Site,
    status: StatusCode,
    heading: &str,
    paragraphs: &[&str],
    reference: Option<String>,
) -> Response {
    let page = Message {
        support_email: site.support_email.clone(),
        reference,
        heading: heading.into(),
        paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
        link_href: None,
        link_text: String::new(),
    };
    no_store((status, page).into_response())
}

/// Something went wrong on our side: the customer gets the promise and a
/// code, the log gets the detail and the same code.
pub fn internal_error(site: &Site, detail: &dyn std::fmt::Display) -> Response {
    let reference = error_reference();
    tracing::error!(reference = %reference, error = %detail, "page failed");
    message(
        site,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side",
        &[
            "We're sorry: this page could not be shown.",
            "If you paid, your payment is safe: it is recorded by our payment processor, and we will make sure you get what you paid for. Please don't pay again.",
        ],
        Some(reference),
    )
}

/// The database is unreachable: the same promises, from nothing but this
/// process.
pub fn unavailable(site: &Site, detail: &dyn std::fmt::Display) -> Response {
    let reference = error_reference();
    tracing::error!(reference = %reference, error = %detail, "page served while the database is unreachable");
    let mut response = message(
        site,
        StatusCode::SERVICE_UNAVAILABLE,
        "We can't show your payment's status right now",
        &[
            "Our records are briefly out of reach. If you paid, your payment is safe: our payment processor has it, and nothing is lost while this page is down.",
            "Please don't pay again. We will email you as soon as your payment is confirmed; you can also come back to this page in a few minutes.",
        ],
        Some(reference),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}

/// The panic page: built without any state, since the panic may have taken
/// it with it.
pub fn panic_page(detail: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = detail
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| detail.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into());
    let site = Site {
        support_email: crate::config::var("PAYLEDGER_SUPPORT_EMAIL")
            .unwrap_or_else(|| Site::default().support_email),
        ..Site::default()
    };
    internal_error(&site, &format!("panic: {what}"))
}

/// Plain error answers from extractors and routing (404, 405, 413, …)
/// become pages; JSON and webhook answers are left alone.
pub async fn never_blank(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error())
        || is_html
        || path.starts_with("/webhooks/")
        || path.starts_with("/api/")
        || path == "/readyz"
        || path == "/metrics"
    {
        return response;
    }
    let site = &state.site;
    match status {
        StatusCode::NOT_FOUND => message(
            site,
            status,
            "This page does not exist",
            &["The link may be mistyped or out of date. If you are looking for a payment, you can ask for its status by email."],
            None,
        ),
        StatusCode::PAYLOAD_TOO_LARGE => message(
            site,
            status,
            "That form was too large",
            &["Nothing was recorded and you were not charged. Please go back and try again."],
            None,
        ),
        s if s.is_server_error() => internal_error(site, &format!("{path} answered {s}")),
        _ => message(
            site,
            status,
            "We couldn't handle that request",
            &["Nothing was recorded and you were not charged. Please go back and try again."],
            None,
        ),
    }
}

pub use payledger_events::email::{plausible_email, valid_email};

/// `a***@example.com`: enough for the customer to recognise, not enough to
/// harvest.
pub fn masked_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "your email address".into(),
    }
}
