//! /v1/ledger: the chain head, on-demand verification and the raw export.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dossier_service::{LedgerHead, VerifyReport, MAX_EXPORT_PAGE};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Caller, Params};
use crate::problem::Problem;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(head))
        .routes(routes!(verify))
        .routes(routes!(events))
}

/// The chain head: record it, and `dossier verify --expect-head` proves
/// later that the log still contains it.
#[utoipa::path(
    get,
    path = "/v1/ledger/head",
    tag = "ledger",
    responses((status = 200, body = LedgerHead))
)]
async fn head(State(state): State<AppState>, Caller(caller): Caller) -> Result<Response, Problem> {
    Ok(Json(state.service.ledger_head(&caller).await?).into_response())
}

/// Verify the whole log now (auditors, compliance, admins). One verification
/// runs at a time; callers arriving meanwhile get its result.
#[utoipa::path(
    post,
    path = "/v1/ledger/verify",
    tag = "ledger",
    responses((status = 200, description = "`ok`, or the first violation", body = VerifyReport))
)]
async fn verify(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Response, Problem> {
    Ok(Json(state.service.verify_ledger(&caller).await?).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Events after this seq (default 0: from the start).
    #[param(minimum = 0)]
    after_seq: Option<i64>,
    /// Events per page, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// The raw log in the export format of docs/chain-format.md (JSON Lines):
/// exactly the stored bytes, a page at a time (`Link: rel="next"`).
#[utoipa::path(
    get,
    path = "/v1/ledger/events",
    tag = "ledger",
    params(EventsQuery),
    responses((status = 200, description = "One event per line", content_type = "application/x-ndjson", body = String,
        headers(("Link" = String, description = "The next page, when the page is full"))))
)]
async fn events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<EventsQuery>,
) -> Result<Response, Problem> {
    let after = q.after_seq.unwrap_or(0);
    let limit = q.limit.unwrap_or(1_000);
    if after < 0 {
        return Err(Problem::invalid("after_seq", "after_seq must be >= 0"));
    }
    if !(1..=MAX_EXPORT_PAGE).contains(&limit) {
        return Err(Problem::invalid(
            "limit",
            format!("limit must be 1 to {MAX_EXPORT_PAGE}"),
        ));
    }
    let page = state.service.export_page(&caller, after, limit).await?;
    let mut body = String::new();
    for line in &page.lines {
        body.push_str(line);
        body.push('\n');
    }
    let mut res = ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    if let Some(last) = page.next_after_seq {
        let next = format!("</v1/ledger/events?after_seq={last}&limit={limit}>; rel=\"next\"");
        if let Ok(v) = HeaderValue::from_str(&next) {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(res)
}
