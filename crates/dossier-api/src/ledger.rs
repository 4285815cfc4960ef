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
