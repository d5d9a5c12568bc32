//! The HTTP server: shared state and the router.

use crate::clock::Clock;
use crate::store::PgEventStore;
use axum::Router;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: PgEventStore,
    pub clock: Arc<dyn Clock>,
    /// Every secret currently accepted for `Stripe-Signature` (rotation).
    pub webhook_secrets: Arc<Vec<String>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::webhook::routes())
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops taking requests and lets the
/// in-flight ones (and their appends) finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
