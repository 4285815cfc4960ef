use axum::http::{header, Method, StatusCode};
use uuid::Uuid;

use crate::common::{assert_problem, person, person_n, Ctx};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_is_401_with_bearer_challenge() {
    let ctx = Ctx::new().await;
    let r = ctx
        .call(Method::GET, "/v1/ledger/head", None, &[], None)
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized", &[]);
    assert_eq!(r.1.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");

    let r = ctx
        .call(Method::POST, "/v1/customers", None, &[], Some(person()))
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized", &[]);
    assert_eq!(r.1.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_malformed_token_is_401() {
    let ctx = Ctx::new().await;
    let r = ctx
        .call(
            Method::GET,
            "/v1/ledger/head",
            Some("dsr_not-a-real-token"),
            &[],
            None,
        )
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized", &[]);
    assert_eq!(r.1.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");

    // Not a bearer scheme at all.
    let basic = format!("Basic {}", ctx.sales);
    let r = ctx
        .call(
            Method::GET,
            "/v1/ledger/head",
            None,
            &[("authorization", &basic)],
            None,
        )
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized", &[]);

    // Nothing was written.
    assert_eq!(ctx.head().await["seq"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced() {
    let ctx = Ctx::new().await;
    let (id, seq) = ctx.create_person().await;

    // Auditors read the ledger, not customer files.
    let r = ctx.get(&format!("/v1/customers/{id}"), &ctx.auditor).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
    let r = ctx
        .get(&format!("/v1/customers/{}", Uuid::now_v7()), &ctx.auditor)
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
    let r = ctx
        .get(&format!("/v1/customers/{id}/history"), &ctx.auditor)
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);

    // Compliance reads but does not write.
    let r = ctx
        .call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.compliance),
            &[],
            Some(person()),
        )
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
    let r = ctx
        .call(
            Method::PATCH,
            &format!("/v1/customers/{id}"),
            Some(&ctx.compliance),
            &[("if-match", "\"1\"")],
            Some(serde_json::json!({"reason": "x", "owner": "mallory"})),
        )
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
    let r = ctx
        .get(
            &format!("/v1/customers/{id}?min_seq={seq}"),
            &ctx.compliance,
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);

    // Nothing but the create was written.
    let head = ctx.head().await;
    assert_eq!(head["seq"], seq);

    // Auditors may read the head and verify the chain.
    let r = ctx.get("/v1/ledger/head", &ctx.auditor).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let r = ctx
        .call(
            Method::POST,
            "/v1/ledger/verify",
            Some(&ctx.auditor),
            &[],
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["ok"], true, "{}", r.2);

    // Managers and admins write.
    for (i, token) in [&ctx.manager, &ctx.admin].into_iter().enumerate() {
        let r = ctx
            .call(
                Method::POST,
                "/v1/customers",
                Some(token),
                &[],
                Some(person_n(i as u32)),
            )
            .await;
        assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    }
}
