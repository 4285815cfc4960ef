use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::Ctx;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_verify_follow_the_log() {
    let ctx = Ctx::new().await;

    // Empty log.
    let head = ctx.head().await;
    assert_eq!(head["seq"], 0);
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
    assert_eq!(r.2["head_hash"], head["hash"]);

    let (a, _) = ctx.create_person().await;
    let (_, _) = ctx.create_person().await;
    let r = ctx
        .patch(
            &a,
            "\"1\"",
            json!({"reason": "r", "details": {"phone": "13900001111"}, "owner": "bob"}),
        )
        .await;
    assert_eq!(r.2["events"], 2);

    let owner = ctx.db.owner_pool().await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&owner)
        .await
        .unwrap();
    owner.close().await;
    assert_eq!(events, 4);

    let head = ctx.head().await;
    assert_eq!(head["seq"], events);
    assert_eq!(head["seq"], r.2["seq"]);
    let hash = head["hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    assert!(
        head["recorded_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{head}"
    );
    assert!(head["format"].is_string(), "{head}");

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
    assert_eq!(r.2["head_hash"], hash);
    assert_eq!(r.2["head_seq"], events);
    assert_eq!(r.2["events"], events);
    assert_eq!(r.2["streams"], 2);
}
