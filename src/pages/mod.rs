//! What the customer sees: checkout, the return and status pages, the
//! status-by-email form — every one an honest page, never a blank one, even
//! when the database is down or a handler panics.

mod billing;
mod checkout;
pub mod guard;
mod ops;
mod status;
pub mod views;

pub use ops::install_metrics;

use crate::state::AppState;
pub use crate::state::{limiter, Site};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use views::Message;

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
        .route(
            "/status/{reference}/card",
            axum::routing::post(billing::update_card),
        )
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
