//! What every page answer carries and what every form post must show: the
//! security headers, the same-origin check that refuses cross-site form
//! posts, and the client address the rate limits count by.

use crate::state::AppState;
use crate::state::Site;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// No script at all (the pages refresh with `<meta http-equiv>`), styles
/// from our own stylesheet, no framing, no plugins.
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

pub async fn security_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if state.site.public_url.starts_with("https://") {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    // Pages show a customer's payment; no shared cache may keep them.
    // The stylesheet is the one thing worth caching.
    let is_stylesheet = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/css"));
    if !is_stylesheet && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The origin (`scheme://host[:port]`) of the public URL.
fn public_origin(site: &Site) -> Option<String> {
    url::Url::parse(&site.public_url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

/// Whether a form post comes from our own pages. Browsers send
/// `Sec-Fetch-Site` and `Origin` on every cross-site post; a request with
/// neither is not a browser's (curl, a script) and cannot carry a visitor's
/// ambient credentials, so it is let through.
pub fn same_origin_post(headers: &HeaderMap, site: &Site) -> Result<(), String> {
    if let Some(fetch_site) = headers.get("sec-fetch-site") {
        return match fetch_site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            other => Err(format!(
                "a {} form post (Sec-Fetch-Site)",
                String::from_utf8_lossy(other)
            )),
        };
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        return match public_origin(site) {
            Some(ours) if ours == origin => Ok(()),
            _ => Err(format!("a form post from origin {origin:?}")),
        };
    }
    Ok(())
}

/// Refuses cross-site posts to the pages (not the processor's webhook or
/// the API, which are not driven by browsers).
pub async fn refuse_cross_site_posts(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let guarded = request.method() == Method::POST
        && !path.starts_with("/webhooks/")
        && !path.starts_with("/api/");
    if guarded {
        if let Err(why) = same_origin_post(request.headers(), &state.site) {
            tracing::info!(%why, path, "refused a cross-site form post");
            return super::message(
                &state.site,
                StatusCode::FORBIDDEN,
                "This form was sent from another site",
                &["For your safety we only accept forms sent from our own pages. Nothing was recorded and you were not charged. Please open our page and try again."],
                None,
            );
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_posts_are_refused_and_our_own_accepted() {
        let site = Site {
            public_url: "https://pay.example.com".into(),
            ..Site::default()
        };
        let mut h = HeaderMap::new();
        assert!(same_origin_post(&h, &site).is_ok());
        h.insert(header::ORIGIN, "https://pay.example.com".parse().unwrap());
        assert!(same_origin_post(&h, &site).is_ok());
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(same_origin_post(&h, &site).is_err());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(same_origin_post(&h, &site).is_err());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_origin_post(&h, &site).is_ok());
    }
}
