use axum::http::{header, Method, StatusCode};
use serde_json::json;

use crate::common::{assert_problem, Ctx};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_is_a_problem() {
    let ctx = Ctx::new().await;
    let r = ctx.call(Method::GET, "/nope", None, &[], None).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "no_such_route", &[]);
    let r = ctx.get("/v1/customer", &ctx.sales).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "no_such_route", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405_problem() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let r = ctx
        .call(
            Method::DELETE,
            &format!("/v1/customers/{id}"),
            Some(&ctx.admin),
            &[],
            None,
        )
        .await;
    assert_problem(
        &r,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &[],
    );
    let allow =
        r.1.get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
    assert!(
        allow.contains("GET") && allow.contains("PATCH"),
        "Allow: {allow:?}"
    );

    let r = ctx.get("/v1/ledger/verify", &ctx.auditor).await;
    assert_problem(
        &r,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &[],
    );
    let r = ctx
        .call(Method::PUT, "/v1/customers", Some(&ctx.sales), &[], None)
        .await;
    assert_problem(
        &r,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413_problem() {
    let ctx = Ctx::new().await;
    let mut body = json!({"kind": "person", "details": {"name": "张三"}});
    body["reason"] = json!("x".repeat(dossier_api::BODY_LIMIT + 1));
    let raw = serde_json::to_vec(&body).unwrap();
    assert!(raw.len() > 256 * 1024);
    let r = ctx
        .call_raw(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[],
            raw.clone(),
        )
        .await;
    assert_problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &[]);
    // With a Content-Length the answer is the same.
    let len = raw.len().to_string();
    let r = ctx
        .call_raw(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[("content-length", &len)],
            raw,
        )
        .await;
    assert_problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &[]);
    assert_eq!(ctx.head().await["seq"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_generated_or_propagated() {
    let ctx = Ctx::new().await;
    // Generated (call checks presence on every response).
    let r = ctx.call(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(r.0, StatusCode::OK);
    let generated = r.1.get("x-request-id").unwrap().to_str().unwrap();
    assert!(!generated.is_empty());
    // Propagated, on success and on errors.
    let id = [("x-request-id", "req-1234")];
    for (method, uri) in [
        (Method::GET, "/healthz"),
        (Method::GET, "/nope"),
        (Method::DELETE, "/v1/customers"),
    ] {
        let r = ctx.call(method, uri, None, &id, None).await;
        assert_eq!(r.1.get("x-request-id").unwrap(), "req-1234", "{uri}");
    }
    let r = ctx.get("/v1/ledger/head", "wrong").await;
    assert_eq!(r.0, StatusCode::UNAUTHORIZED);
    let r = ctx.call(Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["status"], "ready");
}

/// The exact wire form of a problem document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problem_wire_format() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;

    let r = ctx.get("/nope", &ctx.sales).await;
    let detail = r.2["detail"].clone();
    assert_eq!(
        r.2,
        json!({
            "type": "https://dossier.dev/problems/no-such-route",
            "title": "Not Found",
            "status": 404,
            "code": "no_such_route",
            "detail": detail,
        })
    );

    let r = ctx
        .patch(&id, "\"9\"", json!({"reason": "x", "owner": "bob"}))
        .await;
    assert_problem(
        &r,
        StatusCode::PRECONDITION_FAILED,
        "version_mismatch",
        &["current_version"],
    );
    let detail = r.2["detail"].clone();
    assert_eq!(
        r.2,
        json!({
            "type": "https://dossier.dev/problems/version-mismatch",
            "title": "Precondition Failed",
            "status": 412,
            "code": "version_mismatch",
            "detail": detail,
            "current_version": 1,
        })
    );

    let r = ctx
        .patch(
            &id,
            "\"1\"",
            json!({"reason": "x", "details": {"phone": "1"}}),
        )
        .await;
    let detail = r.2["detail"].as_str().unwrap().to_owned();
    assert!(detail.starts_with("details/phone: "), "{detail}");
    assert_eq!(
        r.2,
        json!({
            "type": "https://dossier.dev/problems/validation-failed",
            "title": "Unprocessable Entity",
            "status": 422,
            "code": "validation_failed",
            "detail": detail,
            "field": "details/phone",
        })
    );

    let r = ctx
        .call(Method::GET, "/v1/ledger/head", None, &[], None)
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized", &[]);
    assert_eq!(r.2["type"], "https://dossier.dev/problems/unauthorized");
    assert_eq!(r.2["title"], "Unauthorized");
}
