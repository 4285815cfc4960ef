//! Bearer-token authentication: the principal becomes the actor of every event.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use dossier_store::Principal;

use crate::problem::Problem;
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
