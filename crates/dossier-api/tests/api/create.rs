use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;

use crate::common::{assert_invalid, assert_problem, etag, person, Ctx};

fn with_details(details: Value) -> Value {
    json!({"kind": "person", "details": details, "reason": "test"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_person_returns_201_location_and_etag() {
    let ctx = Ctx::new().await;
    let r = ctx
        .call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[],
            Some(person()),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    let id = r.2["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{}", r.2);
    assert_eq!(
        r.1.get(header::LOCATION).unwrap().to_str().unwrap(),
        format!("/v1/customers/{id}")
    );
    assert_eq!(etag(&r), "\"1\"");
    assert_eq!(r.2["version"], 1);
    assert_eq!(r.2["events"], 1);
    assert_eq!(r.2["replayed"], false);
    let seq = r.2["seq"].as_i64().unwrap();
    assert!(seq >= 1, "{}", r.2);
    assert_eq!(
        r.1.get("dossier-seq").unwrap().to_str().unwrap(),
        seq.to_string()
    );

    // Normalised values are what is stored.
    let cur = ctx.current(id, seq).await;
    assert_eq!(cur["details"]["phone"], "+8613812345678");
    assert_eq!(cur["details"]["email"], "zhang.san@example.com");
    assert_eq!(cur["details"]["national_id"], "11010519491231002X");
    assert_eq!(cur["details"]["name"], "张三");
    assert_eq!(cur["details"]["region"], "华东");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_company_with_credit_code() {
    let ctx = Ctx::new().await;
    let r = ctx
        .create(json!({
            "kind": "company",
            "details": {"name": "福州某某科技有限公司", "credit_code": "91350100M000100Y43", "industry": "软件"},
        }))
        .await;
    assert_eq!(etag(&r), "\"1\"");
    let cur = ctx
        .current(r.2["id"].as_str().unwrap(), r.2["seq"].as_i64().unwrap())
        .await;
    assert_eq!(cur["kind"], "company");
    assert_eq!(cur["details"]["credit_code"], "91350100M000100Y43");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validation_errors() {
    let ctx = Ctx::new().await;
    let post = |body: Value| {
        ctx.call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[],
            Some(body),
        )
    };

    let r = post(with_details(json!({"name": "张三", "phone": "12345"}))).await;
    assert_invalid(&r, "details/phone");

    // Check character should be X.
    let r = post(with_details(
        json!({"name": "张三", "national_id": "110105194912310021"}),
    ))
    .await;
    assert_invalid(&r, "details/national_id");

    // A valid credit code, but persons have none.
    let r = post(with_details(
        json!({"name": "张三", "credit_code": "91350100M000100Y43"}),
    ))
    .await;
    assert_invalid(&r, "details/credit_code");

    let r = post(with_details(json!({"name": "张三", "shoe_size": "42"}))).await;
    assert_invalid(&r, "details/shoe_size");

    let r = post(with_details(json!({"phone": "13812345678"}))).await;
    assert_invalid(&r, "details/name");

    let r = post(json!({"kind": "robot", "details": {"name": "张三"}})).await;
    assert_invalid(&r, "kind");

    let r = post(json!({"kind": "person", "details": {"name": "张三"}, "reason": "  "})).await;
    assert_invalid(&r, "reason");

    // Nothing was written by any of them.
    assert_eq!(ctx.head().await["seq"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_malformed_bodies_are_400() {
    let ctx = Ctx::new().await;
    let r = ctx
        .call_raw(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[],
            b"{\"kind\": \"person\",".to_vec(),
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "malformed_json", &[]);

    let r = ctx
        .call_raw(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[],
            Vec::new(),
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "malformed_json", &[]);

    let mut body = person();
    body["colour"] = json!("blue");
    let r = ctx
        .call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[],
            Some(body),
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "malformed_json", &[]);

    // Details values are strings.
    let r = ctx
        .call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[],
            Some(json!({"kind": "person", "details": {"name": 7}})),
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "malformed_json", &[]);
    assert_eq!(ctx.head().await["seq"], 0);
}

/// Personal values never reach the log in plaintext; business facts do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_sealed_at_rest() {
    let ctx = Ctx::new().await;
    let (id, seq) = ctx.create_person().await;
    // A change and a contact too: before/after values and contacts are sealed as well.
    ctx.patch(
        &id,
        "\"1\"",
        json!({"reason": "moved", "details": {"phone": "13900001111"}}),
    )
    .await;
    let r = ctx
        .patch(
            &id,
            "\"2\"",
            json!({"reason": "contact", "add_contacts": [{"name": "李四", "phone": "13700002222", "email": "li@example.com"}]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);

    let owner = ctx.db.owner_pool().await.unwrap();
    let rows = sqlx::query("SELECT body FROM events ORDER BY seq")
        .fetch_all(&owner)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let mut all = String::new();
    for row in rows {
        let body: Vec<u8> = row.get("body");
        all.push_str(&String::from_utf8(body).unwrap());
        all.push('\n');
    }
    let escaped = |s: &str| {
        s.chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect::<String>()
    };
    for secret in [
        "11010519491231002X",
        "13812345678",
        "13900001111",
        "13700002222",
        "zhang.san",
        "li@example.com",
        "张三",
        "李四",
    ] {
        assert!(
            !all.contains(secret),
            "{secret} is stored in plaintext:\n{all}"
        );
        if !secret.is_ascii() {
            assert!(
                !all.to_lowercase().contains(&escaped(secret)),
                "{secret} is stored escaped:\n{all}"
            );
        }
    }
    assert!(
        all.contains("华东") || all.to_lowercase().contains(&escaped("华东")),
        "region (not personal) should be readable in the log:\n{all}"
    );
    // And the API still gives the plaintext back.
    let cur = ctx.current(&id, seq + 2).await;
    assert_eq!(cur["details"]["national_id"], "11010519491231002X");
    assert_eq!(cur["details"]["phone"], "+8613900001111");
    owner.close().await;
}
