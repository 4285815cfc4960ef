use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::common::{assert_invalid, assert_problem, etag, Ctx};

fn is_hex64(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_current_after_create() {
    let ctx = Ctx::new().await;
    let (id, seq) = ctx.create_person().await;
    let r = ctx
        .get(&format!("/v1/customers/{id}?min_seq={seq}"), &ctx.sales)
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(etag(&r), "\"1\"");
    let b = &r.2;
    assert_eq!(b["id"], id.as_str());
    assert_eq!(b["kind"], "person");
    assert_eq!(b["version"], 1);
    assert_eq!(b["last_seq"], seq);
    assert_eq!(b["owner"], "alice");
    assert_eq!(b["archived"], false);
    assert_eq!(b["erased"], false);
    assert_eq!(
        b["details"],
        json!({
            "name": "张三",
            "phone": "+8613812345678",
            "email": "zhang.san@example.com",
            "national_id": "11010519491231002X",
            "region": "华东",
        })
    );
    assert_eq!(b["contacts"], json!({}));
    assert!(is_hex64(&b["last_hash"]), "{b}");
    // The hash of the customer's last event is the chain head's.
    assert_eq!(b["last_hash"], ctx.head().await["hash"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_unknown_or_malformed_id_is_404() {
    let ctx = Ctx::new().await;
    let r = ctx
        .get(&format!("/v1/customers/{}", Uuid::now_v7()), &ctx.sales)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let r = ctx.get("/v1/customers/not-a-uuid", &ctx.sales).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let r = ctx
        .get("/v1/customers/not-a-uuid/history", &ctx.sales)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let r = ctx
        .get(
            &format!("/v1/customers/{}/history", Uuid::now_v7()),
            &ctx.sales,
        )
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let r = ctx
        .get(
            &format!("/v1/customers/{}?at_seq=5", Uuid::now_v7()),
            &ctx.sales,
        )
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_as_of_rebuilds_past_state() {
    let ctx = Ctx::new().await;
    let (id, s1) = ctx.create_person().await;
    let head1 = ctx.head().await;
    assert_eq!(head1["seq"], s1);
    let t1 = head1["recorded_at"].as_str().unwrap().to_owned();
    let hash1 = head1["hash"].clone();

    let r = ctx
        .patch(
            &id,
            "\"1\"",
            json!({"reason": "new phone", "details": {"phone": "13900001111"}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["version"], 2);

    // By position.
    let r = ctx
        .get(&format!("/v1/customers/{id}?at_seq={s1}"), &ctx.sales)
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(etag(&r), "\"1\"");
    assert_eq!(r.2["version"], 1);
    assert_eq!(r.2["last_seq"], s1);
    assert_eq!(r.2["last_hash"], hash1);
    assert_eq!(r.2["last_recorded_at"], t1.as_str());
    assert_eq!(r.2["details"]["phone"], "+8613812345678");
    assert_eq!(r.2["details"]["national_id"], "11010519491231002X");
    assert_eq!(r.2["rebuilt_from_log"], true);
    assert_eq!(r.2["kind"], "person");
    assert_eq!(r.2["owner"], "alice");

    // By recorded time (the '+' of an offset would need escaping; Z does not).
    let r = ctx
        .get(&format!("/v1/customers/{id}?as_of={t1}"), &ctx.sales)
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["version"], 1);
    assert_eq!(r.2["details"]["phone"], "+8613812345678");

    // The same instant written with an offset.
    let t1_offset = chrono::DateTime::parse_from_rfc3339(&t1)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let r = ctx
        .get(
            &format!("/v1/customers/{id}?as_of={}", t1_offset.replace('+', "%2B")),
            &ctx.sales,
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["version"], 1);

    // Now, the current state has the new phone.
    let r = ctx
        .get(&format!("/v1/customers/{id}?at_seq={}", s1 + 1), &ctx.sales)
        .await;
    assert_eq!(r.2["version"], 2);
    assert_eq!(r.2["details"]["phone"], "+8613900001111");

    // Before the customer existed.
    let before = (chrono::DateTime::parse_from_rfc3339(&t1).unwrap()
        - chrono::Duration::microseconds(1))
    .with_timezone(&chrono::Utc)
    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let r = ctx
        .get(&format!("/v1/customers/{id}?as_of={before}"), &ctx.sales)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let r = ctx
        .get(&format!("/v1/customers/{id}?at_seq=0"), &ctx.sales)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);

    // Bad combinations and values.
    let r = ctx
        .get(
            &format!("/v1/customers/{id}?as_of={t1}&at_seq={s1}"),
            &ctx.sales,
        )
        .await;
    assert_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        &["field"],
    );
    let r = ctx
        .get(&format!("/v1/customers/{id}?as_of=yesterday"), &ctx.sales)
        .await;
    assert_invalid(&r, "as_of");
    let r = ctx
        .get(&format!("/v1/customers/{id}?at_seq=-1"), &ctx.sales)
        .await;
    assert_invalid(&r, "at_seq");
    let r = ctx
        .get(&format!("/v1/customers/{id}?at_seq=abc"), &ctx.sales)
        .await;
    assert_invalid(&r, "at_seq");
    let r = ctx
        .get(&format!("/v1/customers/{id}?colour=blue"), &ctx.sales)
        .await;
    assert_invalid(&r, "colour");

    // Auditors cannot read past states either.
    let r = ctx
        .get(&format!("/v1/customers/{id}?at_seq={s1}"), &ctx.auditor)
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
}
