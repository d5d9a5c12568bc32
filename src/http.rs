//! The HTTP server: shared state and the router.

use crate::clock::Clock;
use crate::pages::Site;
use crate::store::PgEventStore;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// Forms are a plan, an address and a token; anything bigger is refused
/// before it is read.
pub const FORM_LIMIT_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: PgEventStore,
    pub clock: Arc<dyn Clock>,
    /// Every secret currently accepted for `Stripe-Signature` (rotation).
    pub webhook_secrets: Arc<Vec<String>>,
    pub site: Arc<Site>,
}

impl AppState {
    pub fn new(store: PgEventStore, clock: Arc<dyn Clock>, webhook_secrets: Vec<String>) -> Self {
        AppState {
            store,
            clock,
            webhook_secrets: Arc::new(webhook_secrets),
            site: Arc::new(Site::default()),
        }
    }

    pub fn with_site(mut self, site: Site) -> Self {
        self.site = Arc::new(site);
        self
    }
}

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
            crate::pages::never_blank,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            crate::pages::panic_page,
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
    serve_router(listener, router(state), shutdown).await
}

pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
