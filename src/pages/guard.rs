//! What every page answer carries and what every form post must show: the
//! security headers, the same-origin check that refuses cross-site form
//! posts, and the client address the rate limits count by.

use super::Site;
use crate::http::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};

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

/// Parsed `PAYLEDGER_TRUSTED_PROXIES`: addresses or CIDR blocks.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut nets = vec![];
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("{item:?} is not an address or CIDR block"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{item:?} has a bad prefix length"))?,
            };
            nets.push((ip, bits));
        }
        Ok(TrustedProxies(nets))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|(net, bits)| in_block(ip, *net, *bits))
    }
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The client a rate limit counts: the peer, or — only when the peer is a
/// trusted proxy — the nearest address in `X-Forwarded-For` that is not
/// itself a trusted proxy. Anyone else's `X-Forwarded-For` is ignored, so
/// it cannot be used to dodge a limit.
pub fn client_address(
    headers: &HeaderMap,
    ConnectInfo(peer): &ConnectInfo<SocketAddr>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let mut client = peer.ip();
    if !trusted.contains(client) {
        return client;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    for hop in forwarded.into_iter().rev() {
        client = hop;
        if !trusted.contains(hop) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> ConnectInfo<SocketAddr> {
        ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 4000))
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap();
        let h = forwarded("203.0.113.7, 10.1.2.3");
        assert_eq!(
            client_address(&h, &peer("10.0.0.1"), &trusted),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_address(&h, &peer("198.51.100.1"), &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_address(&HeaderMap::new(), &peer("10.0.0.1"), &trusted),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn proxy_settings_name_what_is_wrong() {
        assert!(TrustedProxies::parse("10.0.0.0/33")
            .unwrap_err()
            .contains("prefix"));
        assert!(TrustedProxies::parse("proxy.local")
            .unwrap_err()
            .contains("not an address"));
        assert!(TrustedProxies::parse("").unwrap().0.is_empty());
    }

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
