//! RFC 9457 problem details: the one error type of the HTTP layer.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dossier_service::ServiceError;
use serde_json::{json, Map, Value};

/// An HTTP error with a stable machine-readable `code`.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extra: Map<String, Value>,
    pub retry_after: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
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

    pub fn invalid(field: &str, reason: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            reason,
        )
        .with("field", field)
    }

    pub fn unauthorized(detail: &str) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
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
            ServiceError::NotFound => Problem::new(S::NOT_FOUND, "not_found", detail),
            ServiceError::VersionMismatch { current } => {
                Problem::new(S::PRECONDITION_FAILED, "version_mismatch", detail)
                    .with("current_version", current)
            }
            ServiceError::Conflict { current } => {
                Problem::new(S::CONFLICT, "conflict", detail).with("current_version", current)
            }
            ServiceError::IdempotencyMismatch => {
                Problem::new(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", detail)
            }
            ServiceError::Duplicate(found) => Problem::new(
                S::CONFLICT,
                "duplicate_customer",
                format!("{detail}; register with \"force\": true and a reason if this is a different customer"),
            )
            .with("duplicates", serde_json::to_value(&found).unwrap_or_default()),
            ServiceError::Domain(d) => Problem::new(S::CONFLICT, "rejected", d.to_string()),
            ServiceError::Erased => Problem::new(S::GONE, "erased", detail),
            ServiceError::Forbidden { .. } => Problem::new(S::FORBIDDEN, "forbidden", detail),
            ServiceError::NotCaughtUp(_) => {
                let mut p = Problem::new(S::SERVICE_UNAVAILABLE, "not_caught_up", detail);
                p.retry_after = Some(1);
                p
            }
            ServiceError::Unavailable(d) => {
                tracing::warn!(error = %d, "unavailable");
                let mut p = Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service is temporarily unavailable; retry",
                );
                p.retry_after = Some(1);
                p
            }
            ServiceError::Internal(d) => {
                // The detail goes to the log, never to the client.
                tracing::error!(error = %d, "internal error");
                Problem::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("https://dossier.dev/problems/{}", self.code.replace('_', "-")),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "code": self.code,
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
