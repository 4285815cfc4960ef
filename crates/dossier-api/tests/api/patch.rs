use axum::http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::common::{assert_invalid, assert_problem, etag, Ctx};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_preconditions() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let uri = format!("/v1/customers/{id}");
    let change = json!({"reason": "new phone", "details": {"phone": "13900001111"}});

    let r = ctx
        .call(
            Method::PATCH,
            &uri,
            Some(&ctx.sales),
            &[],
            Some(change.clone()),
        )
        .await;
    assert_problem(
        &r,
        StatusCode::PRECONDITION_REQUIRED,
        "precondition_required",
        &[],
    );

    let r = ctx.patch(&id, "\"7\"", change.clone()).await;
    assert_problem(
        &r,
        StatusCode::PRECONDITION_FAILED,
        "version_mismatch",
        &["current_version"],
    );
    assert_eq!(r.2["current_version"], 1);

    let r = ctx.patch(&id, "W/\"x\"", change.clone()).await;
    assert_invalid(&r, "If-Match");

    let r = ctx
        .patch(&id, "\"1\"", json!({"details": {"phone": "13900001111"}}))
        .await;
    assert_invalid(&r, "reason");

    let r = ctx.patch(&id, "\"1\"", json!({"reason": "nothing"})).await;
    assert_invalid(&r, "body");

    let r = ctx
        .patch(
            &id,
            "\"1\"",
            json!({"reason": "bad", "details": {"phone": "phone"}}),
        )
        .await;
    assert_invalid(&r, "details/phone");

    let r = ctx
        .patch(
            &id,
            "\"1\"",
            json!({"reason": "bad", "details": {"name": null}}),
        )
        .await;
    assert_invalid(&r, "details/name");

    let r = ctx
        .patch(&id, "\"1\"", json!({"reason": "bad", "nickname": "zs"}))
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "malformed_json", &[]);

    let r = ctx
        .patch(&Uuid::now_v7().to_string(), "\"1\"", change.clone())
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);

    // None of the rejected requests wrote anything.
    assert_eq!(ctx.head().await["seq"], 1);
    let r = ctx.patch(&id, "\"1\"", change).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_changes_details_and_owner_then_noop() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;

    let r = ctx
        .patch(
            &id,
            "\"1\"",
            json!({"reason": "customer moved", "details": {"phone": "139 0000 1111"}, "owner": "bob"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["version"], 3, "{}", r.2);
    assert_eq!(r.2["events"], 2, "{}", r.2);
    assert_eq!(r.2["replayed"], false);
    assert_eq!(etag(&r), "\"3\"");
    let seq = r.2["seq"].as_i64().unwrap();

    let cur = ctx.current(&id, seq).await;
    assert_eq!(cur["version"], 3);
    assert_eq!(cur["details"]["phone"], "+8613900001111");
    assert_eq!(cur["owner"], "bob");
    let head = ctx.head().await;
    assert_eq!(head["seq"], seq);

    // The same values again (written differently): nothing to write.
    let r = ctx
        .patch(
            &id,
            "\"3\"",
            json!({"reason": "again", "details": {"phone": "+86 139-0000-1111"}, "owner": "bob"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["events"], 0, "{}", r.2);
    assert_eq!(r.2["version"], 3);
    assert_eq!(r.2["seq"], seq);
    assert_eq!(etag(&r), "\"3\"");
    assert_eq!(ctx.head().await, head, "a no-op PATCH must not write");

    // The old version is stale now.
    let r = ctx
        .patch(&id, "\"1\"", json!({"reason": "late", "owner": "carol"}))
        .await;
    assert_problem(
        &r,
        StatusCode::PRECONDITION_FAILED,
        "version_mismatch",
        &["current_version"],
    );
    assert_eq!(r.2["current_version"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_clears_a_field() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let r = ctx
        .patch(
            &id,
            "\"1\"",
            json!({"reason": "no email", "details": {"email": null}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let cur = ctx.current(&id, r.2["seq"].as_i64().unwrap()).await;
    assert!(cur["details"].get("email").is_none(), "{cur}");
    assert_eq!(cur["details"]["phone"], "+8613812345678");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_adds_and_removes_contacts() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;

    let r = ctx
        .patch(
            &id,
            "\"1\"",
            json!({"reason": "finance contact", "add_contacts": [
                {"name": "李四", "role": "财务", "phone": "13700002222", "email": "li@example.com"}
            ]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["version"], 2);
    let cur = ctx.current(&id, r.2["seq"].as_i64().unwrap()).await;
    let contacts = cur["contacts"].as_object().expect("contacts object");
    assert_eq!(contacts.len(), 1, "{cur}");
    let (contact_id, contact) = contacts.iter().next().unwrap();
    assert!(Uuid::parse_str(contact_id).is_ok());
    assert_eq!(
        contact,
        &json!({"name": "李四", "role": "财务", "phone": "+8613700002222", "email": "li@example.com"})
    );

    // An invalid contact is reported by its position.
    let r = ctx
        .patch(
            &id,
            "\"2\"",
            json!({"reason": "x", "add_contacts": [{"name": "王五", "phone": "000"}]}),
        )
        .await;
    assert_invalid(&r, "add_contacts/0/phone");

    // Removing an unknown contact is a domain rejection.
    let r = ctx
        .patch(
            &id,
            "\"2\"",
            json!({"reason": "x", "remove_contacts": [Uuid::now_v7()]}),
        )
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "rejected", &[]);

    let r = ctx
        .patch(
            &id,
            "\"2\"",
            json!({"reason": "left the company", "remove_contacts": [contact_id]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["version"], 3);
    let cur = ctx.current(&id, r.2["seq"].as_i64().unwrap()).await;
    assert_eq!(cur["contacts"], json!({}), "{cur}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_customer_rejects_changes() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let r = ctx
        .patch(&id, "\"1\"", json!({"reason": "closed", "archive": true}))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["version"], 2);
    let cur = ctx.current(&id, r.2["seq"].as_i64().unwrap()).await;
    assert_eq!(cur["archived"], true);

    let head = ctx.head().await;
    for body in [
        json!({"reason": "reopen?", "owner": "bob"}),
        json!({"reason": "x", "details": {"region": "华南"}}),
        json!({"reason": "x", "archive": true}),
    ] {
        let r = ctx.patch(&id, "\"2\"", body).await;
        assert_problem(&r, StatusCode::CONFLICT, "rejected", &[]);
    }
    assert_eq!(ctx.head().await, head);
}

/// Two writers with the same If-Match: exactly one wins, the other gets 412.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_with_same_version() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    for round in 0..3 {
        let version = 1 + round;
        let if_match = format!("\"{version}\"");
        let (a, b) = tokio::join!(
            ctx.patch(
                &id,
                &if_match,
                json!({"reason": "a", "details": {"region": format!("A{round}")}})
            ),
            ctx.patch(
                &id,
                &if_match,
                json!({"reason": "b", "details": {"region": format!("B{round}")}})
            ),
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::PRECONDITION_FAILED],
            "{} / {}",
            a.2,
            b.2
        );
        let loser = if a.0 == StatusCode::OK { &b } else { &a };
        assert_problem(
            loser,
            StatusCode::PRECONDITION_FAILED,
            "version_mismatch",
            &["current_version"],
        );
        assert_eq!(loser.2["current_version"], version + 1);
    }
    let head = ctx.head().await;
    assert_eq!(head["seq"], 4);
}
