use axum::http::{header, Method, StatusCode};
use serde_json::json;

use crate::common::{assert_invalid, assert_problem, etag, person, person_n, Ctx};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_retried_with_same_key_is_replayed() {
    let ctx = Ctx::new().await;
    let key = [("idempotency-key", "create-zhang-san-1")];
    let first = ctx
        .call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &key,
            Some(person()),
        )
        .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.2);
    assert_eq!(first.2["replayed"], false);
    let head = ctx.head().await;

    let second = ctx
        .call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &key,
            Some(person()),
        )
        .await;
    assert_eq!(second.0, StatusCode::OK, "{}", second.2);
    assert_eq!(second.2["replayed"], true);
    for member in ["id", "version", "seq", "events"] {
        assert_eq!(second.2[member], first.2[member], "{member}");
    }
    assert_eq!(etag(&second), "\"1\"");
    assert_eq!(
        second.1.get(header::LOCATION),
        first.1.get(header::LOCATION)
    );
    assert_eq!(ctx.head().await, head, "a replay must not write");

    // Same key, different request.
    let mut other = person();
    other["details"]["phone"] = json!("13900001111");
    let r = ctx
        .call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &key,
            Some(other),
        )
        .await;
    assert_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        &[],
    );
    assert_eq!(ctx.head().await, head);

    // Keys belong to a principal: another caller's key of the same name is unrelated.
    let r = ctx
        .call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.manager),
            &key,
            Some(person_n(1)),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    assert_ne!(r.2["id"], first.2["id"]);

    // An empty key is invalid.
    let r = ctx
        .call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[("idempotency-key", "")],
            Some(person()),
        )
        .await;
    assert_invalid(&r, "Idempotency-Key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_retried_after_success_is_replayed_not_412() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let uri = format!("/v1/customers/{id}");
    let body = json!({"reason": "new phone", "details": {"phone": "13900001111"}, "owner": "bob"});
    let headers = [("if-match", "\"1\""), ("idempotency-key", "patch-1")];

    let first = ctx
        .call(
            Method::PATCH,
            &uri,
            Some(&ctx.sales),
            &headers,
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.2);
    assert_eq!(first.2["version"], 3);
    assert_eq!(first.2["replayed"], false);
    let head = ctx.head().await;

    // The client did not see the answer and retries with the same If-Match.
    let again = ctx
        .call(
            Method::PATCH,
            &uri,
            Some(&ctx.sales),
            &headers,
            Some(body.clone()),
        )
        .await;
    assert_eq!(again.0, StatusCode::OK, "{}", again.2);
    assert_eq!(again.2["replayed"], true);
    for member in ["id", "version", "seq", "events"] {
        assert_eq!(again.2[member], first.2[member], "{member}");
    }
    assert_eq!(etag(&again), "\"3\"");
    assert_eq!(ctx.head().await, head);

    // Without the key the same retry is a stale write.
    let r = ctx
        .call(
            Method::PATCH,
            &uri,
            Some(&ctx.sales),
            &headers[..1],
            Some(body),
        )
        .await;
    assert_problem(
        &r,
        StatusCode::PRECONDITION_FAILED,
        "version_mismatch",
        &["current_version"],
    );

    // The key with a different change.
    let r = ctx
        .call(
            Method::PATCH,
            &uri,
            Some(&ctx.sales),
            &[("if-match", "\"3\""), ("idempotency-key", "patch-1")],
            Some(json!({"reason": "other", "owner": "carol"})),
        )
        .await;
    assert_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        &[],
    );
    assert_eq!(ctx.head().await, head);
}
