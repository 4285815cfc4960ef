//! /v1/customers: list, create, read (current or as of a past moment), change, history.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dossier_chain::Timestamp;
use dossier_service::{
    request_digest, AddressInput, AsOf, ChangeInput, ContactInput, ListInput, ListPage,
    RegisterInput, WriteMeta, WriteOutcome,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customers", get(list).post(create))
        .route("/v1/customers/{id}", get(read).patch(change))
        .route("/v1/customers/{id}/history", get(history))
}

pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON for this request: {e}"),
        )
    })
}

pub(crate) fn parse_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw)
        .map_err(|_| Problem::new(StatusCode::NOT_FOUND, "not_found", "customer not found"))
}

fn parse_time(field: &str, raw: &str) -> Result<Timestamp, Problem> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| Timestamp::new(t.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            Problem::invalid(
                field,
                format!("{field}: must be an RFC 3339 timestamp such as 2026-03-03T00:00:00Z"),
            )
        })
}

pub(crate) fn idempotency(
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Option<(String, [u8; 32])>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| {
            Problem::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 200 visible ASCII characters",
            )
        })?;
    Ok(Some((key.to_owned(), request_digest(method, path, body))))
}

/// The why/when/retry context shared by every write request.
pub(crate) fn write_meta(
    reason: Option<String>,
    effective_at: Option<&str>,
    idempotency: Option<(String, [u8; 32])>,
) -> Result<WriteMeta, Problem> {
    Ok(WriteMeta {
        reason,
        effective_at: effective_at
            .map(|t| parse_time("effective_at", t))
            .transpose()?,
        idempotency,
        correlation_id: None,
    })
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

pub(crate) fn write_response(status: StatusCode, o: &WriteOutcome) -> Response {
    let mut res = (
        status,
        Json(json!({
            "id": o.customer_id,
            "version": o.version,
            "seq": o.seq,
            "events": o.events,
            "replayed": o.replayed,
        })),
    )
        .into_response();
    let h = res.headers_mut();
    h.insert(header::ETAG, etag(o.version));
    h.insert("dossier-seq", HeaderValue::from(o.seq));
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/customers/{}", o.customer_id)) {
        h.insert(header::LOCATION, loc);
    }
    res
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    kind: String,
    #[serde(default)]
    details: BTreeMap<String, String>,
    owner: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// Register even though the file looks like a duplicate (needs a reason).
    #[serde(default)]
    force: bool,
    reason: Option<String>,
    effective_at: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let idem = idempotency(&headers, "POST", "/v1/customers", &body)?;
    let b: CreateBody = parse_body(&body)?;
    let meta = write_meta(b.reason, b.effective_at.as_deref(), idem)?;
    let input = RegisterInput {
        kind: b.kind,
        details: b.details,
        owner: b.owner,
        tags: b.tags,
        force: b.force,
    };
    let o = state.service.register(&caller, input, meta).await?;
    Ok(write_response(
        if o.replayed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        &o,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadQuery {
    as_of: Option<String>,
    at_seq: Option<i64>,
    min_seq: Option<i64>,
}

async fn read(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let at = match (q.as_of, q.at_seq) {
        (Some(_), Some(_)) => {
            return Err(Problem::invalid("as_of", "give as_of or at_seq, not both"))
        }
        (Some(t), None) => Some(AsOf::Recorded(parse_time("as_of", &t)?)),
        (None, Some(n)) if n < 0 => return Err(Problem::invalid("at_seq", "at_seq must be >= 0")),
        (None, Some(n)) => Some(AsOf::Seq(n)),
        (None, None) => None,
    };
    let (version, body) = match at {
        Some(at) => {
            let s = state.service.state_at(&caller, id, at).await?;
            let mut file = s.file;
            let body = json!({
                "id": s.id,
                "kind": file["kind"].take(),
                "details": file["details"].take(),
                "contacts": file["contacts"].take(),
                "owner": file["owner"].take(),
                "archived": file["archived"].take(),
                "erased": s.erased,
                "version": s.version,
                "last_seq": s.last_seq,
                "last_hash": s.last_hash,
                "last_recorded_at": s.last_recorded_at,
                "rebuilt_from_log": true,
            });
            (s.version, body)
        }
        None => {
            let c = state.service.current(&caller, id, q.min_seq).await?;
            (c.version, serde_json::to_value(&c).unwrap_or(Value::Null))
        }
    };
    let mut res = Json(body).into_response();
    res.headers_mut().insert(header::ETAG, etag(version));
    Ok(res)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    name: String,
    role: Option<String>,
    phone: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    reason: Option<String>,
    effective_at: Option<String>,
    #[serde(default)]
    details: BTreeMap<String, Option<String>>,
    owner: Option<String>,
    #[serde(default)]
    add_contacts: Vec<ContactBody>,
    #[serde(default)]
    remove_contacts: Vec<Uuid>,
    #[serde(default)]
    add_addresses: Vec<AddressBody>,
    #[serde(default)]
    remove_addresses: Vec<Uuid>,
    #[serde(default)]
    add_tags: Vec<String>,
    #[serde(default)]
    remove_tags: Vec<String>,
    /// Absent: unchanged; null: back to the rules; a name: manual override.
    #[serde(default, deserialize_with = "present")]
    importance: Option<Option<String>>,
    #[serde(default)]
    archive: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressBody {
    label: Option<String>,
    text: String,
}

/// Tells an explicit `null` (Some(None)) from an absent field (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn if_match(headers: &HeaderMap) -> Result<i64, Problem> {
    let v = headers.get(header::IF_MATCH).ok_or_else(|| {
        Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
            "PATCH needs If-Match with the ETag (version) you last read",
        )
    })?;
    v.to_str()
        .ok()
        .map(|s| s.trim().trim_matches('"'))
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            Problem::invalid(
                "If-Match",
                "If-Match must be the ETag of the customer, e.g. \"3\"",
            )
        })
}

async fn change(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let expected = if_match(&headers)?;
    let idem = idempotency(&headers, "PATCH", &format!("/v1/customers/{id}"), &body)?;
    let b: PatchBody = parse_body(&body)?;
    let meta = write_meta(b.reason, b.effective_at.as_deref(), idem)?;
    let input = ChangeInput {
        details: b.details,
        owner: b.owner,
        add_contacts: b
            .add_contacts
            .into_iter()
            .map(|c| ContactInput {
                name: c.name,
                role: c.role,
                phone: c.phone,
                email: c.email,
            })
            .collect(),
        remove_contacts: b.remove_contacts,
        add_addresses: b
            .add_addresses
            .into_iter()
            .map(|a| AddressInput {
                label: a.label,
                text: a.text,
            })
            .collect(),
        remove_addresses: b.remove_addresses,
        add_tags: b.add_tags,
        remove_tags: b.remove_tags,
        importance: b.importance,
        archive: b.archive,
    };
    let o = state
        .service
        .change(&caller, id, expected, input, meta)
        .await?;
    Ok(write_response(StatusCode::OK, &o))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    after_version: Option<i64>,
    limit: Option<i64>,
}

async fn history(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    kind: Option<String>,
    owner: Option<String>,
    region: Option<String>,
    industry: Option<String>,
    tier: Option<String>,
    importance: Option<String>,
    lifecycle: Option<String>,
    /// One level or several, comma-separated: `high,critical`.
    risk: Option<String>,
    signal: Option<String>,
    /// Comma-separated; the customer must carry all.
    tag: Option<String>,
    archived: Option<bool>,
    q: Option<String>,
    sort: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

fn comma_list(raw: &Option<String>) -> Vec<String> {
    raw.iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl ListParams {
    /// The same query with `cursor` in place of the current one.
    fn next_link(&self, cursor: &str) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let text = [
            ("kind", &self.kind),
            ("owner", &self.owner),
            ("region", &self.region),
            ("industry", &self.industry),
            ("tier", &self.tier),
            ("importance", &self.importance),
            ("lifecycle", &self.lifecycle),
            ("risk", &self.risk),
            ("signal", &self.signal),
            ("tag", &self.tag),
            ("q", &self.q),
            ("sort", &self.sort),
        ];
        for (k, v) in text {
            if let Some(v) = v {
                pairs.push((k, v.clone()));
            }
        }
        if let Some(a) = self.archived {
            pairs.push(("archived", a.to_string()));
        }
        if let Some(l) = self.limit {
            pairs.push(("limit", l.to_string()));
        }
        pairs.push(("cursor", cursor.to_owned()));
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        format!("/v1/customers?{}", query.join("&"))
    }
}

pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One CSV field, quoted when RFC 4180 requires it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_body(page: &ListPage) -> String {
    let mut out =
        String::from("id,kind,name,owner,region,industry,tier,importance,lifecycle,risk,signals,tags,archived,version,updated_at\r\n");
    for i in &page.items {
        let fields = [
            i.id.to_string(),
            i.kind.clone(),
            i.name.clone().unwrap_or_default(),
            i.owner.clone().unwrap_or_default(),
            i.region.clone().unwrap_or_default(),
            i.industry.clone().unwrap_or_default(),
            i.tier.clone().unwrap_or_default(),
            i.importance.clone().unwrap_or_default(),
            i.lifecycle.clone().unwrap_or_default(),
            i.risk.clone().unwrap_or_default(),
            i.signals.join(";"),
            i.tags.join(";"),
            i.archived.to_string(),
            i.version.to_string(),
            i.updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/csv"))
}

async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let input = ListInput {
        kind: p.kind.clone(),
        owner: p.owner.clone(),
        region: p.region.clone(),
        industry: p.industry.clone(),
        tier: p.tier.clone(),
        importance: p.importance.clone(),
        lifecycle: p.lifecycle.clone(),
        risk: comma_list(&p.risk),
        signal: p.signal.clone(),
        tags: comma_list(&p.tag),
        archived: p.archived,
        q: p.q.clone(),
        sort: p.sort.clone(),
        limit: p.limit,
        cursor: p.cursor.clone(),
    };
    let page = state.service.list(&caller, input).await?;
    let link = page
        .next_cursor
        .as_deref()
        .and_then(|c| HeaderValue::from_str(&format!("<{}>; rel=\"next\"", p.next_link(c))).ok());
    let mut res = if wants_csv(&headers) {
        let mut res = csv_body(&page).into_response();
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
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn links_percent_encode() {
        assert_eq!(percent_encode("张 a+b"), "%E5%BC%A0%20a%2Bb");
    }
}
