//! The OpenAPI 3.1 document, generated from the handlers and the types they
//! take and return (served at `/openapi.json`, browsable at `/docs`).

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{AdditionalProperties, Object, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use uuid::Uuid;

/// The customer id in a path: canonical form only (lowercase, hyphenated).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct CustomerIdParam {
    /// The customer's id as the API gave it (lowercase, hyphenated).
    #[param(value_type = String, format = Uuid, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    id: Uuid,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatchHeader {
    /// The ETag of the version you read, e.g. `"3"`.
    #[param(rename = "If-Match", pattern = "^\"?[1-9][0-9]{0,17}\"?$")]
    if_match: String,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKeyHeader {
    /// Retry protection: the same key with the same request answers the
    /// first outcome (`replayed: true`); with another request, 422
    /// `idempotency_key_reused`. Keys are per principal.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 200,
        pattern = "^[\\x20-\\x7e]{1,200}$"
    )]
    idempotency_key: Option<String>,
}

/// Problems any operation may answer, by status; each operation adds its own.
const COMMON: &[(&str, &str)] = &[
    (
        "400",
        "`bad_request` or `malformed_json`: the request cannot be read",
    ),
    ("401", "`unauthorized`: no or an unknown bearer token"),
    ("403", "`forbidden`: the caller's role may not do this"),
    ("408", "`timeout`: the request took longer than 30 s"),
    (
        "422",
        "`validation_failed`: `field` names the parameter, header or body field",
    ),
    (
        "503",
        "`unavailable`: the database cannot be reached; retry after `Retry-After` seconds",
    ),
];

/// Problems of an operation that takes a body.
const WITH_BODY: &[(&str, &str)] = &[
    ("413", "`payload_too_large`: the body exceeds 256 KiB"),
    (
        "415",
        "`unsupported_media_type`: send the documented content type",
    ),
];

fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

/// A write body is the operation's input with `reason` and `effective_at`
/// beside it (`extract::Write` takes those two out first). utoipa renders the
/// `#[serde(flatten)]` of `WithMeta`/`WithReason` as an `allOf`, where the
/// input's `additionalProperties: false` forbids `reason` itself: merge the
/// parts into one closed object, as the server reads it.
fn merge_write_bodies(components: &mut Components) {
    'schemas: for (name, schema) in components.schemas.iter_mut() {
        if !(name.starts_with("WithMeta_") || name.starts_with("WithReason_")) {
            continue;
        }
        let RefOr::T(Schema::AllOf(all)) = schema else {
            continue;
        };
        let mut merged = Object::default();
        merged.schema_type = Type::Object.into();
        for part in &all.items {
            // A part that is not an inline object is left as utoipa made it.
            let RefOr::T(Schema::Object(o)) = part else {
                continue 'schemas;
            };
            merged.description = merged.description.or_else(|| o.description.clone());
            merged.properties.extend(o.properties.clone());
            merged.required.extend(o.required.iter().cloned());
        }
        merged.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        *schema = RefOr::T(Schema::Object(merged));
    }
}

/// Adds the problems every operation shares, the bearer scheme and the
/// document's description.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.title = "dossier".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "Customer files (客户档案) as an append-only, hash-chained event log. \
         Every error is an RFC 9457 problem (`application/problem+json`) with a \
         stable `code`. The narrative is docs/api.md."
            .into(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    merge_write_bodies(components);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A token from `dossier token create` (`dsr_...`)"))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let public = !path.starts_with("/v1/");
        for op in operations(item) {
            let mut add = |status: &str, description: &str| {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description));
            };
            if public {
                continue;
            }
            for (status, description) in COMMON {
                add(status, description);
            }
            if op.request_body.is_some() {
                for (status, description) in WITH_BODY {
                    add(status, description);
                }
            }
            op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
        }
    }
    doc
}
