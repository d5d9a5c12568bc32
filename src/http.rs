//! The HTTP server: shared state and the router.

pub use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::sync::Arc;

pub use crate::http_limits::HttpLimits;

/// Forms are a plan, an address and a token; anything bigger is refused
/// before it is read.
pub const FORM_LIMIT_BYTES: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The router with `extra` routes inside the error layers (tests add a
/// panicking one).
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let pages = crate::pages::routes()
        .merge(extra)
        .layer(DefaultBodyLimit::max(FORM_LIMIT_BYTES))
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND });
    Router::new()
        .merge(crate::webhook::routes())
        .merge(pages)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::pages::guard::refuse_cross_site_posts,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::pages::never_blank,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            crate::pages::panic_page,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::pages::guard::security_headers,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops taking requests and lets the
/// in-flight ones (and their appends) finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.site.http_limits.clone();
    serve_with_limits(listener, router(state), limits, shutdown).await
}

pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(listener, router, HttpLimits::default(), shutdown).await
}

/// The accept loop: at most `max_connections` at once (one more is closed
/// on accept), header and idle timeouts from hyper, the body deadline from
/// [`crate::http_limits::body_deadline`]. On shutdown it stops accepting
/// and lets the connections in flight finish their requests.
pub async fn serve_with_limits(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let router = router.layer(axum::middleware::from_fn_with_state(
        Arc::new(limits.clone()),
        crate::http_limits::body_deadline,
    ));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_read);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait, do not spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("payledger_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let mut router = router.clone();
                async move {
                    use tower::Service;
                    router.call(request.map(axum::body::Body::new)).await
                }
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = watched.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
