//! Tier, risk and completeness per customer, their histories, follow-ups,
//! segments, the rules in force and evaluation runs.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use dossier_service::{
    AdoptedRules, FollowUpInput, FollowUpItem, Insights, RiskRow, SegmentQuery, Segments, TierRow,
};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{media_type, parse_json, Caller, CustomerId, Params};
use crate::problem::{Code, Problem, ProblemDoc};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(insights))
        .routes(routes!(tier_history))
        .routes(routes!(risk_history))
        .routes(routes!(follow_ups))
        .routes(routes!(segments))
        .routes(routes!(rules, adopt_rules))
        .routes(routes!(evaluate))
}

/// Tier, risk (with the events that show it) and completeness of one customer.
#[utoipa::path(
    get,
    path = "/v1/customers/{id}/insights",
    tag = "insights",
    params(crate::openapi::CustomerIdParam),
    responses(
        (status = 200, body = Insights),
        (status = 404, description = "No such customer", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn insights(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CustomerId(id): CustomerId,
) -> Result<Response, Problem> {
    Ok(Json(state.service.insights(&caller, id).await?).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
struct TierHistory {
    items: Vec<TierRow>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct RiskHistory {
    items: Vec<RiskRow>,
}

/// When the customer's tier, importance or lifecycle changed, and why.
#[utoipa::path(
    get,
    path = "/v1/customers/{id}/tier-history",
    tag = "insights",
    params(crate::openapi::CustomerIdParam),
    responses(
        (status = 200, body = TierHistory),
        (status = 404, description = "No such customer", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn tier_history(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CustomerId(id): CustomerId,
) -> Result<Response, Problem> {
    let items = state.service.tier_history(&caller, id).await?;
    Ok(Json(TierHistory { items }).into_response())
}

/// When the customer's risk level or signals changed, and why.
#[utoipa::path(
    get,
    path = "/v1/customers/{id}/risk-history",
    tag = "insights",
    params(crate::openapi::CustomerIdParam),
    responses(
        (status = 200, body = RiskHistory),
        (status = 404, description = "No such customer", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn risk_history(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CustomerId(id): CustomerId,
) -> Result<Response, Problem> {
    let items = state.service.risk_history(&caller, id).await?;
    Ok(Json(RiskHistory { items }).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
struct FollowUps {
    items: Vec<FollowUpItem>,
}

fn date(field: &str, raw: &str) -> Result<NaiveDate, Problem> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| Problem::invalid(field, format!("{field}: must be a date written YYYY-MM-DD")))
}

/// Whom to contact: the caller's customers by default, most urgent first.
#[utoipa::path(
    get,
    path = "/v1/follow-ups",
    tag = "insights",
    params(FollowUpInput),
    responses((status = 200, body = FollowUps))
)]
async fn follow_ups(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Params(input): Params<FollowUpInput>,
) -> Result<Response, Problem> {
    let items = state.service.follow_ups(&caller, input).await?;
    Ok(Json(FollowUps { items }).into_response())
}

/// Counts by tier × risk, lifecycle and importance, for dashboards.
#[utoipa::path(
    get,
    path = "/v1/segments",
    tag = "insights",
    params(SegmentQuery),
    responses((status = 200, body = Segments))
)]
async fn segments(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<SegmentQuery>,
) -> Result<Response, Problem> {
    Ok(Json(state.service.segments(&caller, q).await?).into_response())
}

/// The rules in force (the built-in defaults until a set is adopted).
#[utoipa::path(
    get,
    path = "/v1/rules",
    tag = "insights",
    responses((status = 200, body = AdoptedRules))
)]
async fn rules(State(state): State<AppState>, Caller(caller): Caller) -> Result<Response, Problem> {
    Ok(Json(state.service.rules(&caller).await?).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
struct Adopted {
    /// False when these rules were already in force (nothing written).
    adopted: bool,
    /// Seq of the RulesAdopted event, when one was written.
    seq: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Recorded {
    /// False when that business date was already evaluated.
    recorded: bool,
    seq: Option<i64>,
}

/// True when the body is declared as TOML or plain text.
fn is_text(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|m| m == "text/plain" || m == "application/toml")
}

/// Adopt a rule set (admins). The body is its TOML text (docs/rules.md);
/// it is recorded in the log, so a rebuild reproduces every tier and risk.
#[utoipa::path(
    put,
    path = "/v1/rules",
    tag = "insights",
    request_body(content((String = "text/plain"), (String = "application/toml")), description = "The rules file, UTF-8 TOML"),
    responses(
        (status = 201, description = "Adopted", body = Adopted),
        (status = 200, description = "Already in force", body = Adopted),
        (status = 409, description = "`conflict`: adopted concurrently", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn adopt_rules(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    if !is_text(&headers) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "send the rules as text/plain or application/toml",
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| Problem::invalid("rules", "rules: the body must be UTF-8 TOML text"))?;
    if text.contains('\0') {
        return Err(Problem::invalid(
            "rules",
            "rules: must not contain NUL characters",
        ));
    }
    let seq = state.service.adopt_rules(&caller, text).await?;
    let status = if seq.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let adopted = seq.is_some();
    Ok((status, Json(Adopted { adopted, seq })).into_response())
}

/// The business date to evaluate.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateBody {
    /// YYYY-MM-DD; default today. Not in the future, not before the last run.
    #[schema(format = Date)]
    date: Option<String>,
}

/// Record an evaluation run (admins, managers): every customer is assessed
/// at that business date (birthdays, reviews due, lost contact, ...).
#[utoipa::path(
    post,
    path = "/v1/evaluations",
    tag = "insights",
    request_body(content = Option<EvaluateBody>, description = "Optional; empty means today", content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = Recorded),
        (status = 200, description = "That date was already evaluated", body = Recorded),
        (status = 409, description = "`conflict`: recorded concurrently", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn evaluate(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    // No body and a JSON `null` both mean "today", as the document says.
    let b: EvaluateBody = if body.is_empty() {
        EvaluateBody::default()
    } else {
        parse_json::<Option<EvaluateBody>>(&headers, &body)?.unwrap_or_default()
    };
    let d = b.date.as_deref().map(|d| date("date", d)).transpose()?;
    let seq = state.service.evaluate(&caller, d).await?;
    let status = if seq.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let recorded = seq.is_some();
    Ok((status, Json(Recorded { recorded, seq })).into_response())
}
