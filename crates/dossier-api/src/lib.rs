//! The HTTP API (axum). Handlers are thin: extract, call one use case, map the result.

use axum::Router;
use dossier_service::Service;

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
}

impl AppState {
    pub fn new(service: Service) -> AppState {
        AppState { service }
    }
}

/// The whole application router, ready to serve or to call with `oneshot`.
pub fn app(state: AppState) -> Router {
    Router::new().with_state(state)
}
