//! /v1/ledger: the chain head and on-demand verification.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dossier_service::{authorize, Action, ServiceError};
use serde_json::json;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/ledger/head", get(head))
        .route("/v1/ledger/verify", post(verify))
        .route("/v1/ledger/events", get(events))
}

async fn head(State(state): State<AppState>, Caller(caller): Caller) -> Result<Response, Problem> {
    authorize(&caller, Action::ReadLedger)?;
    let h = state
        .service
        .store()
        .head()
        .await
        .map_err(ServiceError::from)?;
    Ok(Json(json!({"seq": h.seq, "hash": h.hash, "recorded_at": h.recorded_at, "format": dossier_chain::FORMAT})).into_response())
}

async fn verify(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Response, Problem> {
    authorize(&caller, Action::ReadLedger)?;
    let started = std::time::Instant::now();
    let outcome = state
        .service
        .store()
        .verify(|_| {})
        .await
        .map_err(ServiceError::from)?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(Json(match outcome {
        Ok(v) => {
            json!({"ok": true, "head_seq": v.head_seq, "head_hash": v.head_hash, "events": v.events,
                        "streams": v.streams, "elapsed_ms": elapsed_ms})
        }
        Err(violation) => json!({"ok": false, "violation": violation, "elapsed_ms": elapsed_ms}),
    })
    .into_response())
}

/// Largest page of `GET /v1/ledger/events`.
const MAX_EXPORT_PAGE: i64 = 10_000;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after_seq: Option<i64>,
    limit: Option<i64>,
}

/// The raw log in the export format (JSON Lines), for verification by third
/// parties: exactly the stored bytes, a page at a time.
async fn events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<axum::extract::Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    authorize(&caller, Action::ExportLedger)?;
    let axum::extract::Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
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
    let page = state
        .service
        .store()
        .read_raw(after, limit)
        .await
        .map_err(ServiceError::from)?;
    let mut body = String::new();
    for ev in &page {
        body.push_str(&dossier_chain::export_line(&ev.as_row()));
        body.push('\n');
    }
    let mut res = (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response();
    if page.len() as i64 == limit {
        if let Some(last) = page.last() {
            let next = format!(
                "</v1/ledger/events?after_seq={}&limit={limit}>; rel=\"next\"",
                last.seq
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&next) {
                res.headers_mut().insert(axum::http::header::LINK, v);
            }
        }
    }
    Ok(res)
}
