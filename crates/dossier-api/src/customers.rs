//! /v1/customers: list, create, read (current or as of a past moment), change, history.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dossier_service::{
    ChangeInput, CustomerView, HistoryPage, ListInput, ListPage, ReadAt, RegisterInput,
    WriteOutcome,
};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::extract::{parse_time, Caller, CustomerId, IfMatch, Params, Write};
use crate::problem::Problem;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, change))
        .routes(routes!(history))
}

/// The answer to every write.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Written {
    /// The customer.
    pub id: Uuid,
    /// The record the write created (an order, invoice, complaint, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<Uuid>,
    /// The customer's version after the write (its ETag).
    pub version: i64,
    /// Seq of the last event written (of the last event, when nothing changed);
    /// pass it as `min_seq` to read your write.
    pub seq: i64,
    /// Events written (0 when nothing changed).
    #[schema(minimum = 0)]
    pub events: i64,
    /// True when answered from an earlier request with the same Idempotency-Key.
    pub replayed: bool,
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// 201 when something was written, 200 for a replay or a no-op; with the
/// ETag, `dossier-seq` and the customer's Location.
pub(crate) fn written(o: &WriteOutcome, record_id: Option<Uuid>) -> Response {
    let status = if o.replayed || o.events == 0 {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    written_with(status, o, record_id)
}

pub(crate) fn written_with(
    status: StatusCode,
    o: &WriteOutcome,
    record_id: Option<Uuid>,
) -> Response {
    let body = Written {
        id: o.customer_id,
        record_id,
        version: o.version,
        seq: o.seq,
        events: o.events as i64,
        replayed: o.replayed,
    };
    let mut res = (status, Json(body)).into_response();
    let h = res.headers_mut();
    h.insert(header::ETAG, etag(o.version));
    h.insert("dossier-seq", HeaderValue::from(o.seq));
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/customers/{}", o.customer_id)) {
        h.insert(header::LOCATION, loc);
    }
    res
}

/// Register a customer. Personal fields are validated and sealed; a file
/// sharing a phone, e-mail, credit code or national ID with a live customer
/// is refused as a possible duplicate unless `force` (with a reason).
#[utoipa::path(
    post,
    path = "/v1/customers",
    tag = "customers",
    request_body = crate::extract::WithMeta<RegisterInput>,
    params(crate::openapi::IdempotencyKeyHeader),
    responses(
        (status = 201, description = "Registered", body = Written, headers(
            ("ETag" = String, description = "The new version, quoted"),
            ("Location" = String, description = "The customer's URL"),
            ("dossier-seq" = i64, description = "Seq of the last event written"))),
        (status = 200, description = "Replayed: this Idempotency-Key registered it before", body = Written),
        (status = 409, description = "`duplicate_customer` (with `duplicates`) or `rejected`", body = crate::problem::ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    w: Write<RegisterInput>,
) -> Result<Response, Problem> {
    let o = state.service.register(&caller, w.input, w.meta).await?;
    Ok(written(&o, None))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ReadQuery {
    /// Rebuild the file as the log knew it at this recorded time (RFC 3339).
    #[param(format = DateTime)]
    as_of: Option<String>,
    /// Rebuild the file as it was after this global position.
    #[param(minimum = 0)]
    at_seq: Option<i64>,
    /// Read the current state once the read model has applied this seq (the
    /// `seq` of your write): read-your-writes. At most the log's head.
    #[param(minimum = 0)]
    min_seq: Option<i64>,
}

impl ReadQuery {
    /// Which state the query asks for.
    fn at(self) -> Result<ReadAt, Problem> {
        Ok(match (self.as_of, self.at_seq, self.min_seq) {
            (Some(_), Some(_), _) => {
                return Err(Problem::invalid("as_of", "give as_of or at_seq, not both"))
            }
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(Problem::invalid(
                    "min_seq",
                    "min_seq is for current reads; a rebuilt read needs none",
                ))
            }
            (Some(t), None, None) => ReadAt::Recorded(parse_time("as_of", &t)?),
            (None, Some(n), None) if n < 0 => {
                return Err(Problem::invalid("at_seq", "at_seq must be >= 0"))
            }
            (None, Some(n), None) => ReadAt::Seq(n),
            (None, None, Some(n)) if n < 0 => {
                return Err(Problem::invalid("min_seq", "min_seq must be >= 0"))
            }
            (None, None, min_seq) => ReadAt::Current { min_seq },
        })
    }
}

/// Read a customer file: the current state, or rebuilt from the log as it
/// was at a seq or a recorded time (one of `as_of`, `at_seq`).
#[utoipa::path(
    get,
    path = "/v1/customers/{id}",
    tag = "customers",
    params(crate::openapi::CustomerIdParam, ReadQuery),
    responses(
        (status = 200, body = CustomerView, headers(("ETag" = String, description = "The version read, quoted"))),
        (status = 404, description = "No such customer (also: not yet registered at that point)", body = crate::problem::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "`not_caught_up`: the read model has not reached `min_seq` within 2 s (retry), or `unavailable`", body = crate::problem::ProblemDoc, content_type = "application/problem+json",
            headers(("Retry-After" = i64, description = "Seconds"))),
    )
)]
async fn read(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CustomerId(id): CustomerId,
    Params(q): Params<ReadQuery>,
) -> Result<Response, Problem> {
    let view = state.service.read(&caller, id, q.at()?).await?;
    let mut res = Json(&view).into_response();
    res.headers_mut().insert(header::ETAG, etag(view.version));
    Ok(res)
}

/// Change a customer file. Every part is optional and all parts commit
/// together or not at all; `If-Match` (the ETag you read) and `reason` are
/// required.
#[utoipa::path(
    patch,
    path = "/v1/customers/{id}",
    tag = "customers",
    request_body = crate::extract::WithReason<ChangeInput>,
    params(crate::openapi::CustomerIdParam, crate::openapi::IfMatchHeader, crate::openapi::IdempotencyKeyHeader),
    responses(
        (status = 200, description = "Changed (or nothing to change: `events` 0)", body = Written, headers(
            ("ETag" = String, description = "The new version, quoted"),
            ("dossier-seq" = i64, description = "Seq of the last event written"))),
        (status = 404, description = "No such customer", body = crate::problem::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`rejected` by the domain (e.g. archived), or `conflict`", body = crate::problem::ProblemDoc, content_type = "application/problem+json"),
        (status = 410, description = "`erased`", body = crate::problem::ProblemDoc, content_type = "application/problem+json"),
        (status = 412, description = "`version_mismatch`: the customer moved on (`current_version`)", body = crate::problem::ProblemDoc, content_type = "application/problem+json"),
        (status = 428, description = "`precondition_required`: no If-Match", body = crate::problem::ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn change(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CustomerId(id): CustomerId,
    IfMatch(expected): IfMatch,
    w: Write<ChangeInput>,
) -> Result<Response, Problem> {
    let o = state
        .service
        .change(&caller, id, expected, w.input, w.meta)
        .await?;
    Ok(written_with(StatusCode::OK, &o, None))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Entries after this stream version (`next_after_version` of the previous page).
    #[param(minimum = 0)]
    after_version: Option<i64>,
    /// Entries per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Who changed what, when and why: the customer's events, field by field.
#[utoipa::path(
    get,
    path = "/v1/customers/{id}/history",
    tag = "customers",
    params(crate::openapi::CustomerIdParam, HistoryQuery),
    responses(
        (status = 200, body = HistoryPage),
        (status = 404, description = "No such customer", body = crate::problem::ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn history(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CustomerId(id): CustomerId,
    Params(q): Params<HistoryQuery>,
) -> Result<Response, Problem> {
    let page = state
        .service
        .history(
            &caller,
            id,
            q.after_version.unwrap_or(0),
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(page).into_response())
}

/// The page as CSV (RFC 4180: CRLF, fields quoted where needed).
fn csv_body(page: &ListPage) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record([
        "id",
        "kind",
        "name",
        "owner",
        "region",
        "industry",
        "tier",
        "importance",
        "lifecycle",
        "risk",
        "signals",
        "tags",
        "archived",
        "version",
        "updated_at",
    ])?;
    for i in &page.items {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record([
            i.id.to_string(),
            i.kind.clone(),
            opt(&i.name),
            opt(&i.owner),
            opt(&i.region),
            opt(&i.industry),
            opt(&i.tier),
            opt(&i.importance),
            opt(&i.lifecycle),
            opt(&i.risk),
            i.signals.join(";"),
            i.tags.join(";"),
            i.archived.to_string(),
            i.version.to_string(),
            i.updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/csv"))
}

/// Find customers: filter, search, sort, page (`Link: rel="next"`). JSON,
/// or CSV with `Accept: text/csv`.
#[utoipa::path(
    get,
    path = "/v1/customers",
    tag = "customers",
    params(ListInput),
    responses(
        (status = 200, description = "A page of customers", content(
            (ListPage = "application/json"),
            (String = "text/csv")),
            headers(("Link" = String, description = "The next page, when there is one"))),
    )
)]
async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Params(input): Params<ListInput>,
) -> Result<Response, Problem> {
    let page = state.service.list(&caller, &input).await?;
    let link = page.next_cursor.as_deref().and_then(|c| {
        let next = format!("</v1/customers?{}>; rel=\"next\"", input.next_page(c));
        HeaderValue::from_str(&next).ok()
    });
    let mut res = if wants_csv(&headers) {
        let body = csv_body(&page).map_err(|e| {
            Problem::from(dossier_service::ServiceError::Internal(format!("csv: {e}")))
        })?;
        let mut res = body.into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        res
    } else {
        Json(page).into_response()
    };
    if let Some(link) = link {
        res.headers_mut().insert(header::LINK, link);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_follows_rfc_4180() {
        let page = ListPage {
            items: vec![],
            next_cursor: None,
        };
        let out = String::from_utf8(csv_body(&page).unwrap()).unwrap();
        assert!(out.starts_with("id,kind,name,"));
        assert!(out.ends_with("updated_at\r\n"));
    }
}
