//! The HTTP API (axum). Handlers are thin: extract, call one use case, map the
//! result. Every error is an RFC 9457 problem with a stable `code`. The
//! OpenAPI document is generated from the same handlers and types.

mod customers;
mod extract;
mod facts;
mod insights;
mod ledger;
mod openapi;
mod problem;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use dossier_service::Service;
use serde::Serialize;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use extract::Caller;
pub use problem::{Code, Problem};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Longest a request may run before it is answered with 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `x-request-id` kept from a client; longer or unprintable ones are
/// replaced by a fresh id (they end up in every log line of the request).
pub const MAX_REQUEST_ID: usize = 128;

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
}

impl AppState {
    pub fn new(service: Service) -> AppState {
        AppState { service }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Response {
    Json(Health { status: "ok" }).into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
struct Ready {
    #[schema(example = "ready")]
    status: &'static str,
    /// The log's head seq.
    head_seq: i64,
}

/// Readiness: the database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, body = Ready),
        (status = 503, description = "`not_ready`: the database is not reachable", body = problem::ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn readyz(State(state): State<AppState>) -> Response {
    match state.service.readiness().await {
        Ok(head_seq) => Json(Ready {
            status: "ready",
            head_seq,
        })
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::NotReady,
                "the database is not reachable",
            )
            .retry_after(1)
            .into_response()
        }
    }
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        Code::NoSuchRoute,
        "no such endpoint; see /docs",
    )
}

/// Turns the plain-text rejections of lower layers into problem documents.
async fn problem_for_plain_errors(res: Response) -> Response {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (code, detail) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            Code::PayloadTooLarge,
            format!("the body exceeds {BODY_LIMIT} bytes"),
        ),
        StatusCode::REQUEST_TIMEOUT => (Code::Timeout, "the request took too long".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            Code::MethodNotAllowed,
            "this endpoint does not support that method".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            Code::UnsupportedMediaType,
            "send application/json".to_owned(),
        ),
        StatusCode::NOT_FOUND => (Code::NoSuchRoute, "no such endpoint; see /docs".to_owned()),
        s if s.is_server_error() => (
            Code::Internal,
            "an internal error occurred; it has been logged".to_owned(),
        ),
        _ => (Code::BadRequest, "the request cannot be read".to_owned()),
    };
    let mut p = Problem::new(status, code, detail).into_response();
    for h in [
        HeaderName::from_static("x-request-id"),
        axum::http::header::ALLOW,
    ] {
        if let Some(v) = res.headers().get(&h) {
            p.headers_mut().insert(h, v.clone());
        }
    }
    p
}

/// Keeps a client's `x-request-id` when it is short and printable ASCII,
/// else makes a fresh UUID.
#[derive(Clone, Copy)]
struct RequestIds;

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// Drops a client's request id that is too long or has bytes a log line
/// should not carry, so that the layer after it makes a fresh one.
async fn bound_request_id(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let bad = req.headers().get_all("x-request-id").iter().count() > 1
        || req.headers().get("x-request-id").is_some_and(|v| {
            v.len() > MAX_REQUEST_ID
                || !v
                    .as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
        });
    if bad {
        req.headers_mut().remove("x-request-id");
    }
    next.run(req).await
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .merge(customers::router())
        .merge(facts::router())
        .merge(insights::router())
        .merge(ledger::router())
}

/// The OpenAPI document of [`app`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(routes().split_for_parts().1)
}

/// The whole application router, ready to serve or to call with `oneshot`.
pub fn app(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let (router, doc) = routes().split_for_parts();
    let doc = openapi::finish(doc);
    router
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        // Outside the timeout, so its bare 408 becomes a problem document too.
        .layer(axum::middleware::map_response(problem_for_plain_errors))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, RequestIds))
        .layer(axum::middleware::from_fn(bound_request_id))
        .with_state(state)
}
