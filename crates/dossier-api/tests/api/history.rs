use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::{assert_invalid, Ctx};

fn is_hex64(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn change<'a>(entry: &'a Value, field: &str) -> &'a Value {
    entry["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == field)
        .unwrap_or_else(|| panic!("no change of {field} in {entry}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_field_level_changes() {
    let ctx = Ctx::new().await;
    let (id, s1) = ctx.create_person().await;
    let r = ctx
        .patch(
            &id,
            "\"1\"",
            json!({"reason": "customer moved", "details": {"phone": "13900001111"}, "owner": "bob"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let r = ctx
        .call(
            axum::http::Method::PATCH,
            &format!("/v1/customers/{id}"),
            Some(&ctx.manager),
            &[("if-match", "\"3\"")],
            Some(json!({"reason": "closed", "archive": true})),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);

    let r = ctx
        .get(&format!("/v1/customers/{id}/history"), &ctx.sales)
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let page = &r.2;
    assert_eq!(page["customer_id"], id.as_str());
    assert_eq!(page["next_after_version"], Value::Null);
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{page}");

    let types: Vec<&str> = entries
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "CustomerRegistered",
            "CustomerDetailsChanged",
            "OwnerAssigned",
            "CustomerArchived"
        ]
    );
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["version"], i as i64 + 1, "{e}");
        assert_eq!(e["seq"], s1 + i as i64, "{e}");
        assert!(is_hex64(&e["hash"]), "{e}");
        assert_eq!(e["erased"], false);
    }
    // Hashes differ and the last one is the head.
    assert_ne!(entries[0]["hash"], entries[1]["hash"]);
    assert_eq!(entries[3]["hash"], ctx.head().await["hash"]);

    // Who and why.
    for e in &entries[..3] {
        assert_eq!(e["actor"]["name"], ctx.sales_principal.name.as_str(), "{e}");
        assert_eq!(e["actor"]["role"], "sales");
        assert_eq!(e["actor"]["id"], ctx.sales_principal.id.to_string());
    }
    assert_eq!(entries[3]["actor"]["name"], "bob-manager");
    assert_eq!(entries[0]["reason"], "new customer at branch 12");
    assert_eq!(entries[1]["reason"], "customer moved");
    assert_eq!(entries[2]["reason"], "customer moved");
    // One request: one correlation id.
    assert_eq!(entries[1]["correlation_id"], entries[2]["correlation_id"]);
    assert_ne!(entries[0]["correlation_id"], entries[1]["correlation_id"]);

    // What, field by field, decrypted.
    let reg = &entries[0];
    assert_eq!(change(reg, "kind")["after"], "person");
    assert_eq!(change(reg, "phone")["before"], Value::Null);
    assert_eq!(change(reg, "phone")["after"], "+8613812345678");
    assert_eq!(change(reg, "national_id")["after"], "11010519491231002X");
    assert_eq!(change(reg, "name")["after"], "张三");
    assert_eq!(change(reg, "owner")["after"], "alice");

    let phone = &entries[1]["changes"];
    assert_eq!(
        phone,
        &json!([{"field": "phone", "before": "+8613812345678", "after": "+8613900001111"}])
    );
    assert_eq!(
        entries[2]["changes"],
        json!([{"field": "owner", "before": "alice", "after": "bob"}])
    );
    assert_eq!(
        entries[3]["changes"],
        json!([{"field": "archived", "before": false, "after": true}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_through_all_entries() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let mut version = 1;
    for region in ["华南", "华北", "西南"] {
        let r = ctx
            .patch(
                &id,
                &format!("\"{version}\""),
                json!({"reason": "region", "details": {"region": region}}),
            )
            .await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        version = r.2["version"].as_i64().unwrap();
    }
    assert_eq!(version, 4);

    let mut seen = Vec::new();
    let mut after = 0;
    for _ in 0..10 {
        let r = ctx
            .get(
                &format!("/v1/customers/{id}/history?limit=1&after_version={after}"),
                &ctx.sales,
            )
            .await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        let entries = r.2["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{}", r.2);
        seen.push(entries[0]["version"].as_i64().unwrap());
        match r.2["next_after_version"].as_i64() {
            Some(next) => {
                assert_eq!(next, entries[0]["version"].as_i64().unwrap());
                after = next;
            }
            None => {
                assert_eq!(r.2["next_after_version"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(seen, [1, 2, 3, 4]);

    // Two at a time.
    let r = ctx
        .get(
            &format!("/v1/customers/{id}/history?limit=2&after_version=2"),
            &ctx.sales,
        )
        .await;
    let versions: Vec<i64> = r.2["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [3, 4]);
    assert_eq!(r.2["next_after_version"], Value::Null);

    // Past the end: an empty last page, not an error.
    let r = ctx
        .get(
            &format!("/v1/customers/{id}/history?after_version=4"),
            &ctx.sales,
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["entries"], json!([]));
    assert_eq!(r.2["next_after_version"], Value::Null);

    let r = ctx
        .get(
            &format!("/v1/customers/{id}/history?limit=lots"),
            &ctx.sales,
        )
        .await;
    // The field names the parameter that could not be read.
    assert_invalid(&r, "limit");
}
