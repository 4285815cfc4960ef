//! RFC 9457 problem details: the one error type of the HTTP layer.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dossier_service::{Duplicate, ServiceError};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// The stable, machine-readable reason of a problem. Clients branch on this,
/// never on `detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// A field, parameter or header breaks a documented rule (`field` names it).
    ValidationFailed,
    /// The body is not JSON, or not the JSON this request takes.
    MalformedJson,
    /// The request line or a header could not be read (bad encoding, say).
    BadRequest,
    /// No or an unknown bearer token.
    Unauthorized,
    /// The caller's role may not do this.
    Forbidden,
    NotFound,
    NoSuchRoute,
    MethodNotAllowed,
    /// The body is not of a media type this operation takes.
    UnsupportedMediaType,
    PayloadTooLarge,
    /// The request took longer than the server allows.
    Timeout,
    /// `If-Match` is missing on a change.
    PreconditionRequired,
    /// `If-Match` names a version the customer is no longer at.
    VersionMismatch,
    /// A concurrent write moved the customer first.
    Conflict,
    /// The file looks like an existing customer (`duplicates` lists them).
    DuplicateCustomer,
    /// The domain refused the change (it contradicts the file's state).
    Rejected,
    /// This Idempotency-Key came with a different request before.
    IdempotencyKeyReused,
    /// The customer's personal data has been erased.
    Erased,
    /// The read model has not applied `min_seq` yet; retry.
    NotCaughtUp,
    /// The database is unreachable or the write's outcome is unknown; retry
    /// (with the same Idempotency-Key for a write).
    Unavailable,
    /// `/readyz`: the service cannot serve requests now.
    NotReady,
    /// A fault of the server; the detail is in its log, never in the answer.
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        // The serialised names (a unit test keeps the two in step).
        match self {
            Code::ValidationFailed => "validation_failed",
            Code::MalformedJson => "malformed_json",
            Code::BadRequest => "bad_request",
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::NoSuchRoute => "no_such_route",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::PayloadTooLarge => "payload_too_large",
            Code::Timeout => "timeout",
            Code::PreconditionRequired => "precondition_required",
            Code::VersionMismatch => "version_mismatch",
            Code::Conflict => "conflict",
            Code::DuplicateCustomer => "duplicate_customer",
            Code::Rejected => "rejected",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
            Code::Erased => "erased",
            Code::NotCaughtUp => "not_caught_up",
            Code::Unavailable => "unavailable",
            Code::NotReady => "not_ready",
            Code::Internal => "internal",
        }
    }
}

/// An HTTP error with a stable machine-readable `code`.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: Code,
    pub detail: String,
    pub extra: Map<String, Value>,
    pub retry_after: Option<u32>,
}

/// An RFC 9457 problem document as the server sends it
/// (`application/problem+json`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)]
pub struct ProblemDoc {
    /// `https://dossier.dev/problems/<code with dashes>`.
    #[serde(rename = "type")]
    #[schema(example = "https://dossier.dev/problems/validation-failed")]
    kind: String,
    title: String,
    #[schema(minimum = 400, maximum = 599)]
    status: i32,
    code: Code,
    detail: String,
    /// The offending field, parameter or header (`validation_failed`), as a
    /// path into the request: `details/phone`, `add_contacts/0/name`, `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// The customer's version now (`version_mismatch`, `conflict`).
    #[serde(skip_serializing_if = "Option::is_none")]
    current_version: Option<i64>,
    /// The existing customers the new file resembles (`duplicate_customer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicates: Option<Vec<Duplicate>>,
}

impl Problem {
    pub fn new(status: StatusCode, code: Code, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Problem {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn retry_after(mut self, seconds: u32) -> Problem {
        self.retry_after = Some(seconds);
        self
    }

    pub fn invalid(field: &str, reason: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::ValidationFailed,
            reason,
        )
        .with("field", field)
    }

    pub fn unauthorized(detail: &str) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, detail)
    }

    pub fn not_found(detail: &str) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, Code::NotFound, detail)
    }

    pub fn malformed(detail: impl std::fmt::Display) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::MalformedJson,
            format!("the body is not valid JSON for this request: {detail}"),
        )
    }

    pub fn unavailable() -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "the service is temporarily unavailable; retry",
        )
        .retry_after(1)
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Problem {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            ServiceError::Invalid { field, reason } => {
                Problem::invalid(&field, format!("{field}: {reason}"))
            }
            ServiceError::NotFound => Problem::new(S::NOT_FOUND, Code::NotFound, detail),
            ServiceError::VersionMismatch { current } => {
                Problem::new(S::PRECONDITION_FAILED, Code::VersionMismatch, detail)
                    .with("current_version", current)
            }
            ServiceError::Conflict { current } => {
                Problem::new(S::CONFLICT, Code::Conflict, detail).with("current_version", current)
            }
            ServiceError::IdempotencyMismatch => {
                Problem::new(S::UNPROCESSABLE_ENTITY, Code::IdempotencyKeyReused, detail)
            }
            ServiceError::Duplicate(found) => Problem::new(
                S::CONFLICT,
                Code::DuplicateCustomer,
                format!("{detail}; register with \"force\": true and a reason if this is a different customer"),
            )
            .with("duplicates", serde_json::to_value(&found).unwrap_or_default()),
            ServiceError::Domain(d) => Problem::new(S::CONFLICT, Code::Rejected, d.to_string()),
            ServiceError::Erased => Problem::new(S::GONE, Code::Erased, detail),
            ServiceError::Forbidden { .. } => Problem::new(S::FORBIDDEN, Code::Forbidden, detail),
            ServiceError::NotCaughtUp(_) => {
                Problem::new(S::SERVICE_UNAVAILABLE, Code::NotCaughtUp, detail).retry_after(1)
            }
            ServiceError::Unavailable(d) => {
                tracing::warn!(error = %d, "unavailable");
                Problem::unavailable()
            }
            ServiceError::Internal(d) => {
                // The detail goes to the log, never to the client.
                tracing::error!(error = %d, "internal error");
                Problem::new(
                    S::INTERNAL_SERVER_ERROR,
                    Code::Internal,
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let code = self.code.as_str();
        let mut body = json!({
            "type": format!("https://dossier.dev/problems/{}", code.replace('_', "-")),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "code": code,
            "detail": self.detail,
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extra);
        }
        let mut res = (self.status, body.to_string()).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_their_serialised_names() {
        for code in [
            Code::ValidationFailed,
            Code::MalformedJson,
            Code::BadRequest,
            Code::Unauthorized,
            Code::Forbidden,
            Code::NotFound,
            Code::NoSuchRoute,
            Code::MethodNotAllowed,
            Code::UnsupportedMediaType,
            Code::PayloadTooLarge,
            Code::Timeout,
            Code::PreconditionRequired,
            Code::VersionMismatch,
            Code::Conflict,
            Code::DuplicateCustomer,
            Code::Rejected,
            Code::IdempotencyKeyReused,
            Code::Erased,
            Code::NotCaughtUp,
            Code::Unavailable,
            Code::NotReady,
            Code::Internal,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
