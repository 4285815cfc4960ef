//! The one error type of the service layer, and how lower layers' errors map to it.

use dossier_domain::{DomainError, Field};
use dossier_projections::ProjectionError;
use dossier_store::{Role, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("customer not found")]
    NotFound,
    #[error("the customer is at version {current}, not the version given in If-Match")]
    VersionMismatch { current: i64 },
    #[error("a concurrent change won; the customer is now at version {current}")]
    Conflict { current: i64 },
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyMismatch,
    #[error("{0}")]
    Domain(DomainError),
    #[error("the customer's personal data has been erased")]
    Erased,
    #[error("role {role} may not {action}")]
    Forbidden { role: Role, action: &'static str },
    #[error("possible duplicate of {} existing customer(s)", .0.len())]
    Duplicate(Vec<dossier_projections::Duplicate>),
    #[error("the read model has not caught up with seq {0} yet")]
    NotCaughtUp(i64),
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { current, .. } => ServiceError::Conflict { current },
            StoreError::IdempotencyMismatch(_) => ServiceError::IdempotencyMismatch,
            StoreError::InvalidEvent(e) => ServiceError::Invalid {
                field: "payload".into(),
                reason: e.to_string(),
            },
            StoreError::Contended | StoreError::WriterStopped | StoreError::OutcomeUnknown => {
                ServiceError::Unavailable(e.to_string())
            }
            e if e.is_unreachable() => ServiceError::Unavailable(e.to_string()),
            e => ServiceError::Internal(e.to_string()),
        }
    }
}

impl From<ProjectionError> for ServiceError {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::Store(s) => s.into(),
            ProjectionError::Database(d) if dossier_store::is_unreachable(&d) => {
                ServiceError::Unavailable(d.to_string())
            }
            e => ServiceError::Internal(e.to_string()),
        }
    }
}

impl From<DomainError> for ServiceError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotRegistered => ServiceError::NotFound,
            // The domain names a detail field ("name"); callers address it
            // as it appears in the request ("details/name"), like every
            // other detail error.
            DomainError::InvalidField { field, reason } => ServiceError::Invalid {
                field: if Field::parse(&field).is_some() {
                    format!("details/{field}")
                } else {
                    field
                },
                reason,
            },
            DomainError::InvoiceNotFound(_) => ServiceError::Invalid {
                field: "invoice_id".into(),
                reason: e.to_string(),
            },
            DomainError::AddressNotFound(_) => ServiceError::Invalid {
                field: "remove_addresses".into(),
                reason: e.to_string(),
            },
            e => ServiceError::Domain(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Refuses a text longer than `max` characters (as JSON Schema's
/// `maxLength` counts them, so the document and the check agree).
pub(crate) fn at_most(field: &str, value: &Option<String>, max: usize) -> Result<()> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(invalid(field, format!("must be at most {max} characters")))
        }
        _ => Ok(()),
    }
}
