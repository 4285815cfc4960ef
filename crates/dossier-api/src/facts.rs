//! Facts about a customer (orders, invoices, payments, credit, legal status,
//! interactions, complaints, feedback, reviews, consent) and merging
//! duplicates: `POST /v1/customers/{id}/<collection>`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use dossier_service::{FactInput, FactOutcome, WriteMeta};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Caller;
use crate::customers::{idempotency, parse_body, parse_id, write_meta, write_response};
use crate::problem::Problem;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customers/{id}/{collection}", post(record))
        .route(
            "/v1/customers/{id}/complaints/{complaint}/resolution",
            post(resolve),
        )
        .route("/v1/customers/{id}/merge", post(merge))
}

/// The envelope every fact body shares; the rest is the fact itself.
#[derive(Deserialize)]
struct Envelope {
    reason: Option<String>,
    effective_at: Option<String>,
    #[serde(flatten)]
    fact: serde_json::Map<String, Value>,
}

fn fact<T: DeserializeOwned>(fields: serde_json::Map<String, Value>) -> Result<T, Problem> {
    serde_json::from_value(Value::Object(fields)).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON for this request: {e}"),
        )
    })
}

fn parse_fact(
    collection: &str,
    fields: serde_json::Map<String, Value>,
) -> Result<FactInput, Problem> {
    Ok(match collection {
        "orders" => FactInput::Order(fact(fields)?),
        "invoices" => FactInput::Invoice(fact(fields)?),
        "payments" => FactInput::Payment(fact(fields)?),
        "credit" => FactInput::Credit(fact(fields)?),
        "legal-status" => FactInput::Legal(fact(fields)?),
        "interactions" => FactInput::Interaction(fact(fields)?),
        "complaints" => FactInput::Complaint(fact(fields)?),
        "feedback" => FactInput::Feedback(fact(fields)?),
        "reviews" => FactInput::Review(fact(fields)?),
        "consents" => FactInput::Consent(fact(fields)?),
        _ => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "no_such_route",
                "no such endpoint; facts go to orders, invoices, payments, credit, legal-status, \
                 interactions, complaints, feedback, reviews or consents",
            ))
        }
    })
}

fn fact_response(o: &FactOutcome) -> Response {
    let status = if o.write.replayed {
        StatusCode::OK
    } else if o.write.events == 0 {
        // Nothing changed (the same credit, legal status or consent again).
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut res = write_response(status, &o.write);
    if let Some(id) = o.id {
        let body = json!({
            "id": o.write.customer_id,
            "record_id": id,
            "version": o.write.version,
            "seq": o.write.seq,
            "events": o.write.events,
            "replayed": o.write.replayed,
        });
        let headers = res.headers().clone();
        res = (status, Json(body)).into_response();
        res.headers_mut().extend(headers);
    }
    res
}

async fn record_with(
    state: AppState,
    caller: dossier_store::Principal,
    id: Uuid,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    input: impl FnOnce(serde_json::Map<String, Value>) -> Result<FactInput, Problem>,
) -> Result<Response, Problem> {
    let idem = idempotency(&headers, "POST", &path, &body)?;
    let env: Envelope = parse_body(&body)?;
    let meta: WriteMeta = write_meta(env.reason, env.effective_at.as_deref(), idem)?;
    let input = input(env.fact)?;
    let o = state.service.record_fact(&caller, id, input, meta).await?;
    Ok(fact_response(&o))
}

async fn record(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, collection)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let path = format!("/v1/customers/{id}/{collection}");
    record_with(state, caller, id, path, headers, body, |f| {
        parse_fact(&collection, f)
    })
    .await
}

async fn resolve(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, complaint)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let complaint_id = Uuid::parse_str(&complaint)
        .map_err(|_| Problem::new(StatusCode::NOT_FOUND, "not_found", "complaint not found"))?;
    let path = format!("/v1/customers/{id}/complaints/{complaint_id}/resolution");
    record_with(state, caller, id, path, headers, body, |f| {
        Ok(FactInput::ComplaintResolution {
            complaint_id,
            body: fact(f)?,
        })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    duplicate: Uuid,
    reason: Option<String>,
}

async fn merge(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let idem = idempotency(
        &headers,
        "POST",
        &format!("/v1/customers/{id}/merge"),
        &body,
    )?;
    let b: MergeBody = parse_body(&body)?;
    let meta = write_meta(b.reason, None, idem)?;
    let o = state.service.merge(&caller, id, b.duplicate, meta).await?;
    Ok(write_response(StatusCode::OK, &o))
}
