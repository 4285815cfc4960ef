//! Extractors: everything a handler needs from a request, parsed once, with
//! one error style (problem+json, `field` naming the culprit).

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use dossier_service::{request_digest, Principal, Timestamp, WriteMeta};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::problem::{Code, Problem};
use crate::AppState;

/// The authenticated caller.
pub struct Caller(pub Principal);

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("send Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be: Bearer <token>")
            })?;
        match state.service.authenticate(token).await? {
            Some(p) => Ok(Caller(p)),
            None => Err(Problem::unauthorized("unknown or revoked token")),
        }
    }
}

/// A customer id from the path, in its canonical form only (lowercase,
/// hyphenated): one customer, one URL. Anything else names no customer.
pub struct CustomerId(pub Uuid);

/// The canonical text form of a UUID: `8-4-4-4-12` lowercase hex digits.
pub fn canonical_uuid(raw: &str) -> Option<Uuid> {
    let canonical = raw.len() == 36
        && raw.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    canonical.then(|| Uuid::parse_str(raw).ok()).flatten()
}

/// The raw path parameters, whatever their number; an unreadable path
/// (invalid UTF-8 after percent-decoding) names nothing.
async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    what: &str,
) -> Result<Vec<String>, Problem> {
    let params = axum::extract::RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| Problem::not_found(&format!("{what} not found")))?;
    Ok(params.iter().map(|(_, v)| v.to_owned()).collect())
}

impl<S: Send + Sync> FromRequestParts<S> for CustomerId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = path_params(parts, state, "customer").await?;
        params
            .first()
            .and_then(|p| canonical_uuid(p))
            .map(CustomerId)
            .ok_or_else(|| Problem::not_found("customer not found"))
    }
}

/// A customer id and a second id (a complaint) from the path.
pub struct CustomerAnd(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for CustomerAnd {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = path_params(parts, state, "customer").await?;
        let id = params.first().and_then(|p| canonical_uuid(p));
        let id = id.ok_or_else(|| Problem::not_found("customer not found"))?;
        let other = params.get(1).and_then(|p| canonical_uuid(p));
        let other = other.ok_or_else(|| Problem::not_found("complaint not found"))?;
        Ok(CustomerAnd(id, other))
    }
}

/// Query parameters: strict UTF-8 (a `%FF` is an error, not U+FFFD), no NUL
/// characters, unknown parameters refused.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                let plus = s.replace('+', " ");
                percent_encoding::percent_decode_str(&plus)
                    .decode_utf8()
                    .map(|c| c.into_owned())
            };
            let name = decode(name)
                .map_err(|_| Problem::invalid("query", "query parameter names must be UTF-8"))?;
            let value = decode(value).map_err(|_| {
                Problem::invalid(&name, format!("{name}: must be percent-encoded UTF-8"))
            })?;
            if value.contains('\0') || name.contains('\0') {
                return Err(Problem::invalid(
                    &name,
                    format!("{name}: must not contain NUL characters"),
                ));
            }
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let field = e.path().to_string();
                let field = if field == "." {
                    "query".to_owned()
                } else {
                    field
                };
                Problem::invalid(&field, format!("{field}: {}", e.into_inner()))
            })
    }
}

/// The media type the request declares for its body, lowercased, without
/// parameters (`application/json; charset=utf-8` → `application/json`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
}

/// True when the request declares a JSON body (`application/json` or a
/// `+json` type).
fn is_json(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

/// Refuses JSON strings (values and keys) that contain NUL: PostgreSQL text
/// cannot hold them, and no field of a customer file needs one.
fn no_nul(v: &Value, at: &str) -> Result<(), Problem> {
    match v {
        Value::String(s) if s.contains('\0') => Err(Problem::invalid(
            at,
            format!("{at}: must not contain NUL characters"),
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| no_nul(x, &join(at, &i.to_string()))),
        Value::Object(map) => map.iter().try_for_each(|(k, x)| {
            if k.contains('\0') {
                return Err(Problem::invalid(at, "keys must not contain NUL characters"));
            }
            no_nul(x, &join(at, k))
        }),
        _ => Ok(()),
    }
}

/// Writes numbers like `5.0` as the integers they are: JSON Schema (and the
/// document) calls them integers, serde's integer types would refuse them.
fn integral_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                // Only where the float is exact, so no value changes.
                if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}/{key}")
    }
}

/// Parses a JSON body already read, with the checks every body gets.
pub fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, Problem> {
    if body.is_empty() {
        return Err(Problem::malformed("the body is empty"));
    }
    if !is_json(headers) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "send the body as application/json",
        ));
    }
    let mut value: Value = serde_json::from_slice(body).map_err(Problem::malformed)?;
    no_nul(&value, "")?;
    integral_numbers(&mut value);
    serde_json::from_value(value).map_err(Problem::malformed)
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(req, state).await.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                status,
                Code::PayloadTooLarge,
                format!("the body exceeds {} bytes", crate::BODY_LIMIT),
            )
        } else {
            Problem::new(StatusCode::BAD_REQUEST, Code::BadRequest, e.body_text())
        }
    })
}

/// The why and when that every write body may carry beside its own fields
/// (the document's view of a write body; [`Write`] parses it).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WithMeta<T> {
    /// Why the change is made: 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
    /// When the fact became true (RFC 3339); default: when it is recorded.
    #[schema(format = DateTime)]
    pub effective_at: Option<String>,
    #[serde(flatten)]
    pub input: T,
}

/// The body of a write that must say why (a change, a merge): [`WithMeta`]
/// with `reason` required.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WithReason<T> {
    /// Why the change is made: 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
    /// When the fact became true (RFC 3339); default: when it is recorded.
    #[schema(format = DateTime)]
    pub effective_at: Option<String>,
    #[serde(flatten)]
    pub input: T,
}

/// A write: its JSON body (`reason`, `effective_at` and the operation's own
/// fields) and the retry protection of its `Idempotency-Key`, bound to a
/// digest of the very request (method, path, body).
pub struct Write<T> {
    pub input: T,
    pub meta: WriteMeta,
}

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

fn idempotency(
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
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        .ok_or_else(|| {
            Problem::invalid(
                "Idempotency-Key",
                format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                ),
            )
        })?;
    Ok(Some((key.to_owned(), request_digest(method, path, body))))
}

pub fn parse_time(field: &str, raw: &str) -> Result<Timestamp, Problem> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| Timestamp::new(t.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            Problem::invalid(
                field,
                format!("{field}: must be an RFC 3339 timestamp such as 2026-03-03T00:00:00Z"),
            )
        })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Write<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let bytes = read_body(req, state).await?;
        let idempotency = idempotency(&headers, &method, &path, &bytes)?;
        let mut body: Value = parse_json(&headers, &bytes)?;
        // `reason` and `effective_at` are taken out here, and the rest is the
        // operation's own input: a flattened struct would not refuse unknown
        // members.
        let (reason, effective_at) = match body.as_object_mut() {
            Some(fields) => (fields.remove("reason"), fields.remove("effective_at")),
            None => return Err(Problem::malformed("expected a JSON object")),
        };
        let text = |field: &str, v: Option<Value>| match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Problem::malformed(format!("{field}: expected a string"))),
        };
        let reason = text("reason", reason)?;
        let effective_at = text("effective_at", effective_at)?
            .map(|t| parse_time("effective_at", &t))
            .transpose()?;
        let input = serde_json::from_value(body).map_err(Problem::malformed)?;
        Ok(Write {
            input,
            meta: WriteMeta {
                reason,
                effective_at,
                idempotency,
                correlation_id: None,
            },
        })
    }
}

/// The version a change is made against: `If-Match: "<version>"`.
pub struct IfMatch(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let v = parts.headers.get(IF_MATCH).ok_or_else(|| {
            Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                Code::PreconditionRequired,
                "PATCH needs If-Match with the ETag (version) you last read",
            )
        })?;
        v.to_str()
            .ok()
            .map(|s| s.trim().trim_matches('"'))
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|v| *v >= 1)
            .map(IfMatch)
            .ok_or_else(|| {
                Problem::invalid(
                    "If-Match",
                    "If-Match must be the ETag of the customer, e.g. \"3\"",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_uuid_form_names_a_customer() {
        let id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        assert!(canonical_uuid(id).is_some());
        for other in [
            "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B",
            "{0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}",
            "urn:uuid:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b",
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5",
            "",
        ] {
            assert!(canonical_uuid(other).is_none(), "{other}");
        }
    }

    #[test]
    fn nul_anywhere_in_a_body_is_refused_with_its_path() {
        let v: Value = serde_json::json!({"details": {"name": "a\u{0}b"}});
        let p = no_nul(&v, "").unwrap_err();
        assert_eq!(p.extra["field"], "details/name");
        let v: Value = serde_json::json!({"tags": ["ok", "x\u{0}"]});
        assert_eq!(no_nul(&v, "").unwrap_err().extra["field"], "tags/1");
        assert!(no_nul(&serde_json::json!({"a": ["b", 1, null]}), "").is_ok());
    }
}

/// The decoders of untrusted bytes never panic, and refuse with a 4xx.
#[cfg(test)]
mod decoders {
    use super::*;
    use axum::http::Request as HttpRequest;
    use dossier_service::{ChangeInput, ListInput, RegisterInput};
    use proptest::prelude::*;

    fn query_of(raw: &[u8]) -> String {
        percent_encoding::percent_encode(raw, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    async fn params<T: DeserializeOwned>(query: &str) -> Result<T, Problem> {
        let req = HttpRequest::builder()
            .uri(format!("/x?{query}"))
            .body(())
            .unwrap();
        let (mut parts, ()) = req.into_parts();
        Params::<T>::from_request_parts(&mut parts, &())
            .await
            .map(|Params(t)| t)
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    proptest! {
        #[test]
        fn any_list_query_is_read_or_refused_with_422(
            name in prop::sample::select(vec!["q", "owner", "tier", "risk", "tag", "sort", "limit", "cursor", "archived", "x"]),
            value in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let query = format!("{name}={}", query_of(&value));
            match run(params::<ListInput>(&query)) {
                // What is read is then validated by the service, which
                // decodes the cursor: never a panic there either.
                Ok(input) => { let _ = input.validate(); }
                Err(p) => prop_assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY),
            }
        }

        #[test]
        fn any_cursor_is_decoded_or_refused(raw in "[A-Za-z0-9_-]{0,80}") {
            let input = ListInput { cursor: Some(raw), ..ListInput::default() };
            if let Err(e) = input.validate() {
                let invalid = matches!(e, dossier_service::ServiceError::Invalid { .. });
                prop_assert!(invalid, "{e:?}");
            }
        }

        #[test]
        fn any_body_is_parsed_or_refused_with_4xx(body in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
            for r in [
                parse_json::<RegisterInput>(&headers, &body).err(),
                parse_json::<ChangeInput>(&headers, &body).err(),
            ].into_iter().flatten() {
                prop_assert!(r.status.is_client_error());
            }
        }

        #[test]
        fn json_shaped_bodies_are_parsed_or_refused_with_4xx(
            kind in "[a-z]{0,8}",
            name in "\\PC{0,20}",
            extra in prop::option::of("[a-z_]{1,12}"),
        ) {
            let mut v = serde_json::json!({"kind": kind, "details": {"name": name}});
            if let Some(k) = extra { v[k] = serde_json::json!(1); }
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
            if let Err(p) = parse_json::<RegisterInput>(&headers, v.to_string().as_bytes()) {
                prop_assert!(p.status.is_client_error());
            }
        }
    }
}
