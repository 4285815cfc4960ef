//! Tier, risk and completeness per customer, their histories, follow-ups,
//! segments, the rules in force and evaluation runs.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use dossier_projections::SegmentQuery;
use dossier_service::FollowUpInput;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::customers::{parse_body, parse_id};
use crate::problem::Problem;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customers/{id}/insights", get(insights))
        .route("/v1/customers/{id}/tier-history", get(tier_history))
        .route("/v1/customers/{id}/risk-history", get(risk_history))
        .route("/v1/follow-ups", get(follow_ups))
        .route("/v1/segments", get(segments))
        .route("/v1/rules", get(rules).put(adopt_rules))
        .route("/v1/evaluations", post(evaluate))
}

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

fn query<T>(q: QueryResult<T>) -> Result<T, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::invalid("query", e.body_text()))
}

async fn insights(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    Ok(Json(state.service.insights(&caller, id).await?).into_response())
}

async fn tier_history(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let items = state.service.tier_history(&caller, id).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn risk_history(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let items = state.service.risk_history(&caller, id).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowUpParams {
    /// Comma-separated owners (a team); default: the caller.
    owner: Option<String>,
    #[serde(default)]
    all: bool,
    kind: Option<String>,
    due_by: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

fn date(field: &str, raw: &str) -> Result<NaiveDate, Problem> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| Problem::invalid(field, format!("{field}: must be a date written YYYY-MM-DD")))
}

async fn follow_ups(
    State(state): State<AppState>,
    Caller(caller): Caller,
    q: QueryResult<FollowUpParams>,
) -> Result<Response, Problem> {
    let p = query(q)?;
    let input = FollowUpInput {
        owners: p
            .owner
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        all: p.all,
        kind: p.kind,
        due_by: p.due_by.as_deref().map(|d| date("due_by", d)).transpose()?,
        limit: p.limit,
        offset: p.offset,
    };
    let items = state.service.follow_ups(&caller, input).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentParams {
    owner: Option<String>,
    region: Option<String>,
    industry: Option<String>,
}

async fn segments(
    State(state): State<AppState>,
    Caller(caller): Caller,
    q: QueryResult<SegmentParams>,
) -> Result<Response, Problem> {
    let p = query(q)?;
    let s = state
        .service
        .segments(
            &caller,
            SegmentQuery {
                owner: p.owner,
                region: p.region,
                industry: p.industry,
            },
        )
        .await?;
    Ok(Json(s).into_response())
}

async fn rules(State(state): State<AppState>, Caller(caller): Caller) -> Result<Response, Problem> {
    Ok(Json(state.service.rules(&caller).await?).into_response())
}

/// The body is the TOML text of the rules.
async fn adopt_rules(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Bytes,
) -> Result<Response, Problem> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| Problem::invalid("rules", "rules: the body must be UTF-8 TOML text"))?;
    let seq = state.service.adopt_rules(&caller, text).await?;
    Ok(written_or_not("adopted", seq))
}

/// `201 {flag: true, seq}` when a system event was written, else `200 {flag: false, seq: null}`.
fn written_or_not(flag: &str, seq: Option<i64>) -> Response {
    let status = if seq.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(json!({ flag: seq.is_some(), "seq": seq }))).into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EvaluateBody {
    date: Option<String>,
}

async fn evaluate(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Bytes,
) -> Result<Response, Problem> {
    let b: EvaluateBody = if body.is_empty() {
        EvaluateBody::default()
    } else {
        parse_body(&body)?
    };
    let d = b.date.as_deref().map(|d| date("date", d)).transpose()?;
    let seq = state.service.evaluate(&caller, d).await?;
    Ok(written_or_not("recorded", seq))
}
