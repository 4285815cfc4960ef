//! Facts about a customer (orders, invoices, payments, credit, legal status,
//! interactions, complaints, feedback, reviews, consent) and merging
//! duplicates: `POST /v1/customers/{id}/<collection>`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use dossier_service::{
    ComplaintInput, ConsentInput, CreditInput, FactInput, FeedbackInput, InteractionInput,
    InvoiceInput, LegalInput, OrderInput, PaymentInput, ResolutionInput, ReviewInput,
};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::customers::{written, written_with};
use crate::extract::{Caller, CustomerAnd, CustomerId, WithMeta, WithReason, Write};
use crate::problem::{Problem, ProblemDoc};
use crate::AppState;

/// One handler per collection: the body is the fact beside `reason` and
/// `effective_at`; 201 with the new record's id (200 when nothing changed).
macro_rules! fact_route {
    ($name:ident, $path:literal, $input:ty, $variant:ident, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(
            post,
            path = $path,
            tag = "facts",
            request_body = WithMeta<$input>,
            params(crate::openapi::CustomerIdParam, crate::openapi::IdempotencyKeyHeader),
            responses(
                (status = 201, description = "Recorded", body = crate::customers::Written),
                (status = 200, description = "Replayed, or nothing changed (`events` 0)", body = crate::customers::Written),
                (status = 404, description = "No such customer", body = ProblemDoc, content_type = "application/problem+json"),
                (status = 409, description = "`rejected` by the domain, or `conflict`", body = ProblemDoc, content_type = "application/problem+json"),
                (status = 410, description = "`erased`", body = ProblemDoc, content_type = "application/problem+json"),
            )
        )]
        async fn $name(
            State(state): State<AppState>,
            Caller(caller): Caller,
            CustomerId(id): CustomerId,
            w: Write<$input>,
        ) -> Result<Response, Problem> {
            let o = state
                .service
                .record_fact(&caller, id, FactInput::$variant(w.input), w.meta)
                .await?;
            Ok(written(&o.write, o.id))
        }
    };
}

fact_route!(
    order,
    "/v1/customers/{id}/orders",
    OrderInput,
    Order,
    "Record an order."
);
fact_route!(
    invoice,
    "/v1/customers/{id}/invoices",
    InvoiceInput,
    Invoice,
    "Record an invoice (a receivable)."
);
fact_route!(
    payment,
    "/v1/customers/{id}/payments",
    PaymentInput,
    Payment,
    "Record a payment received."
);
fact_route!(
    credit,
    "/v1/customers/{id}/credit",
    CreditInput,
    Credit,
    "Set the credit rating and limit."
);
fact_route!(
    legal,
    "/v1/customers/{id}/legal-status",
    LegalInput,
    Legal,
    "Set the legal status (bankruptcy, restructuring, dispute, ...)."
);
fact_route!(
    interaction,
    "/v1/customers/{id}/interactions",
    InteractionInput,
    Interaction,
    "Record a visit, call, e-mail or chat."
);
fact_route!(
    complaint,
    "/v1/customers/{id}/complaints",
    ComplaintInput,
    Complaint,
    "Open a complaint."
);
fact_route!(
    feedback,
    "/v1/customers/{id}/feedback",
    FeedbackInput,
    Feedback,
    "Record feedback and satisfaction."
);
fact_route!(
    review,
    "/v1/customers/{id}/reviews",
    ReviewInput,
    Review,
    "Record a periodic review of the whole file."
);
fact_route!(
    consent,
    "/v1/customers/{id}/consents",
    ConsentInput,
    Consent,
    "Record a consent given or withdrawn."
);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(order))
        .routes(routes!(invoice))
        .routes(routes!(payment))
        .routes(routes!(credit))
        .routes(routes!(legal))
        .routes(routes!(interaction))
        .routes(routes!(complaint))
        .routes(routes!(feedback))
        .routes(routes!(review))
        .routes(routes!(consent))
        .routes(routes!(resolve))
        .routes(routes!(merge))
}

/// Resolve an open complaint.
#[utoipa::path(
    post,
    path = "/v1/customers/{id}/complaints/{complaint}/resolution",
    tag = "facts",
    request_body = WithMeta<ResolutionInput>,
    params(
        crate::openapi::CustomerIdParam,
        ("complaint" = Uuid, Path, description = "The complaint's `record_id`, canonical form"),
        crate::openapi::IdempotencyKeyHeader
    ),
    responses(
        (status = 201, description = "Resolved", body = crate::customers::Written),
        (status = 200, description = "Replayed", body = crate::customers::Written),
        (status = 404, description = "No such customer or complaint", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`rejected` (already resolved), or `conflict`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 410, description = "`erased`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn resolve(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CustomerAnd(id, complaint_id): CustomerAnd,
    w: Write<ResolutionInput>,
) -> Result<Response, Problem> {
    let input = FactInput::ComplaintResolution {
        complaint_id,
        body: w.input,
    };
    let o = state
        .service
        .record_fact(&caller, id, input, w.meta)
        .await?;
    Ok(written(&o.write, o.id))
}

/// The duplicate to fold into this customer.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeInput {
    /// The duplicate customer: it is closed and points at this one.
    duplicate: Uuid,
}

/// Merge a duplicate file into this one (safe to repeat: a retried merge
/// completes a half-done one).
#[utoipa::path(
    post,
    path = "/v1/customers/{id}/merge",
    tag = "facts",
    request_body = WithReason<MergeInput>,
    params(crate::openapi::CustomerIdParam, crate::openapi::IdempotencyKeyHeader),
    responses(
        (status = 200, description = "Merged (or already merged)", body = crate::customers::Written),
        (status = 404, description = "No such customer (either one)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`rejected` (itself, archived, merged elsewhere), or `conflict`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 410, description = "`erased`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
async fn merge(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CustomerId(id): CustomerId,
    w: Write<MergeInput>,
) -> Result<Response, Problem> {
    let o = state
        .service
        .merge(&caller, id, w.input.duplicate, w.meta)
        .await?;
    Ok(written_with(StatusCode::OK, &o, None))
}
