//! Requests the OpenAPI document calls valid are accepted, and those it calls
//! invalid are refused: regressions found by the schemathesis run
//! (tests/schemathesis/run.sh, docs/api-fuzzing.md).

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{assert_invalid, Ctx};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_paging_out_of_the_documented_range_is_refused() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=501", "limit"),
        ("after_version=-1", "after_version"),
    ] {
        let r = ctx
            .get(&format!("/v1/customers/{id}/history?{query}"), &ctx.sales)
            .await;
        assert_invalid(&r, field);
    }
    for query in ["limit=1", "limit=500", "after_version=0"] {
        let r = ctx
            .get(&format!("/v1/customers/{id}/history?{query}"), &ctx.sales)
            .await;
        assert_eq!(r.0, StatusCode::OK, "{query}: {}", r.2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_texts_longer_than_documented_are_refused() {
    let ctx = Ctx::new().await;
    let long = |n: usize| "x".repeat(n);
    for (uri, field) in [
        (format!("/v1/customers?tag={}", long(551)), "tag"),
        (format!("/v1/follow-ups?owner={}", long(1001)), "owner"),
        (format!("/v1/follow-ups?kind={}", long(51)), "kind"),
        (format!("/v1/segments?owner={}", long(101)), "owner"),
        (format!("/v1/segments?region={}", long(101)), "region"),
        (format!("/v1/segments?industry={}", long(101)), "industry"),
    ] {
        let r = ctx.get(&uri, &ctx.manager).await;
        assert_invalid(&r, field);
    }
    // At the limit they are filters like any other.
    for uri in [
        format!("/v1/customers?tag={}", long(550)),
        format!("/v1/follow-ups?owner={}", long(1000)),
        format!("/v1/segments?region={}", long(100)),
    ] {
        let r = ctx.get(&uri, &ctx.manager).await;
        assert_eq!(r.0, StatusCode::OK, "{uri}: {}", r.2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risk_filter_names_levels_and_nothing_else() {
    let ctx = Ctx::new().await;
    for risk in ["", ",", "low,", "low,,high", "%20low"] {
        let r = ctx
            .get(&format!("/v1/customers?risk={risk}"), &ctx.sales)
            .await;
        assert_invalid(&r, "risk");
    }
    let r = ctx.get("/v1/customers?risk=low,critical", &ctx.sales).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_body_of_null_means_today() {
    let ctx = Ctx::new().await;
    let r = ctx
        .call(
            Method::POST,
            "/v1/evaluations",
            Some(&ctx.admin),
            &[],
            Some(Value::Null),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    assert_eq!(r.2["recorded"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integer_may_be_written_with_a_zero_fraction() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let uri = format!("/v1/customers/{id}/feedback");
    // JSON Schema's `integer` includes 5.0.
    let r = ctx
        .call(
            Method::POST,
            &uri,
            Some(&ctx.sales),
            &[],
            Some(json!({"satisfaction": 5.0})),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    // A fraction is still not an integer.
    let r = ctx
        .call(
            Method::POST,
            &uri,
            Some(&ctx.sales),
            &[],
            Some(json!({"satisfaction": 4.5})),
        )
        .await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.2);
    assert_eq!(r.2["code"], "malformed_json");
}
