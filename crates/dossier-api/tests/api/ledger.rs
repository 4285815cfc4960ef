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

/// Parses one export line into owned parts of a stored row.
fn row_of(line: &str) -> (i64, uuid::Uuid, i64, [dossier_chain::Hash; 3], Vec<u8>) {
    let v: serde_json::Value = serde_json::from_str(line).expect("export line is JSON");
    let h = |k: &str| {
        v[k].as_str()
            .unwrap()
            .parse::<dossier_chain::Hash>()
            .unwrap()
    };
    (
        v["seq"].as_i64().unwrap(),
        v["stream_id"].as_str().unwrap().parse().unwrap(),
        v["stream_version"].as_i64().unwrap(),
        [h("prev_hash"), h("stream_prev_hash"), h("hash")],
        v["body"].as_str().unwrap().as_bytes().to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_page_through_the_raw_log_and_verify_it_themselves() {
    let ctx = Ctx::new().await;
    let (a, _) = ctx.create_person().await;
    ctx.create_person().await;
    ctx.patch(&a, "\"1\"", json!({"reason": "r", "owner": "bob"}))
        .await;
    let head = ctx.head().await;

    let mut lines = Vec::new();
    let mut uri = "/v1/ledger/events?limit=2".to_owned();
    loop {
        let r = ctx
            .call(Method::GET, &uri, Some(&ctx.auditor), &[], None)
            .await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        assert_eq!(r.1["content-type"], "application/x-ndjson");
        // The test client parses bodies as JSON: several lines stay text, a
        // page of one line comes back parsed (and re-serialises identically).
        let text = match &r.2 {
            serde_json::Value::String(s) => s.clone(),
            one => one.to_string(),
        };
        lines.extend(text.lines().map(str::to_owned));
        match r.1.get("link") {
            Some(link) => {
                let link = link.to_str().unwrap();
                uri = link[link.find('<').unwrap() + 1..link.find('>').unwrap()].to_owned();
            }
            None => break,
        }
    }
    assert_eq!(lines.len() as i64, head["seq"].as_i64().unwrap());

    let rows: Vec<_> = lines.iter().map(|l| row_of(l)).collect();
    let mut verifier = dossier_chain::Verifier::new();
    for (seq, stream_id, stream_version, [prev, sprev, hash], body) in &rows {
        verifier
            .push(dossier_chain::StoredRow {
                seq: *seq,
                stream_id: *stream_id,
                stream_version: *stream_version,
                prev_hash: *prev,
                stream_prev_hash: *sprev,
                hash: *hash,
                body,
            })
            .expect("the exported log verifies");
    }
    let verified = verifier.finish(None).unwrap();
    assert_eq!(
        verified.head_hash.to_string(),
        head["hash"].as_str().unwrap()
    );

    // Only roles that audit may take the raw log.
    let r = ctx
        .call(
            Method::GET,
            "/v1/ledger/events",
            Some(&ctx.sales),
            &[],
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN);
    let r = ctx
        .call(
            Method::GET,
            "/v1/ledger/events?limit=0",
            Some(&ctx.compliance),
            &[],
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.2["field"], "limit");
}
