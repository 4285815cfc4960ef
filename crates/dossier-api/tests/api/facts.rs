//! POST /v1/customers/{id}/<collection>: commercial facts, complaint
//! resolution, duplicates on create, and merging duplicate files.

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{assert_invalid, assert_problem, cny, day, person_n, Ctx, Resp};

/// The entries of a customer's history (one page is enough here).
async fn history(ctx: &Ctx, id: &str) -> Vec<Value> {
    let r = ctx
        .get(&format!("/v1/customers/{id}/history?limit=500"), &ctx.sales)
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    r.2["entries"].as_array().expect("entries").clone()
}

/// The history entry written at `version`.
async fn entry(ctx: &Ctx, id: &str, version: i64) -> Value {
    history(ctx, id)
        .await
        .into_iter()
        .find(|e| e["version"] == version)
        .unwrap_or_else(|| panic!("no history entry at version {version}"))
}

/// Asserts a 201 for a fact that creates a record; returns the record id.
fn created(r: &Resp, id: &str, version: i64) -> String {
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    assert_eq!(r.2["id"], id, "{}", r.2);
    assert_eq!(r.2["version"], version, "{}", r.2);
    assert_eq!(r.2["events"], 1, "{}", r.2);
    assert_eq!(r.2["replayed"], false, "{}", r.2);
    assert_eq!(
        r.1.get(header::ETAG).and_then(|v| v.to_str().ok()),
        Some(format!("\"{version}\"").as_str())
    );
    assert_eq!(
        r.1.get("dossier-seq").and_then(|v| v.to_str().ok()),
        Some(r.2["seq"].to_string().as_str())
    );
    let rid = r.2["record_id"].as_str().expect("record_id").to_owned();
    assert!(uuid::Uuid::parse_str(&rid).is_ok(), "{rid}");
    rid
}

/// Asserts a 201 for a fact without a record of its own (credit, legal
/// status, review, consent).
fn changed(r: &Resp, version: i64) {
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    assert_eq!(r.2["version"], version, "{}", r.2);
    assert_eq!(r.2["events"], 1, "{}", r.2);
    assert!(r.2.get("record_id").is_none(), "{}", r.2);
}

/// Asserts a 200 that wrote nothing.
fn unchanged(r: &Resp, version: i64) {
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["events"], 0, "{}", r.2);
    assert_eq!(r.2["version"], version, "{}", r.2);
    assert_eq!(r.2["replayed"], false, "{}", r.2);
}

/// The single change of a fact's history entry.
fn only_change(e: &Value) -> &Value {
    let changes = e["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{e}");
    &changes[0]
}

/// The whole raw log as text, as an auditor exports it.
async fn ledger_text(ctx: &Ctx) -> String {
    let r = ctx.get("/v1/ledger/events?limit=10000", &ctx.auditor).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    match r.2 {
        Value::String(s) => s,
        one => one.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fact_is_recorded_and_shows_in_the_history() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let today = day(0);

    // Orders.
    let r = ctx
        .fact(
            &id,
            "orders",
            json!({"product": "Widget-A7", "amount": cny("12345.5"), "ordered_on": day(-5),
                   "reason": "signed at the fair"}),
        )
        .await;
    let order = created(&r, &id, 2);
    let e = entry(&ctx, &id, 2).await;
    assert_eq!(e["event_type"], "OrderPlaced");
    assert_eq!(e["reason"], "signed at the fair");
    assert_eq!(e["actor"]["name"], "alice-sales");
    assert_eq!(
        only_change(&e),
        &json!({"field": format!("orders/{order}"), "before": null,
                "after": {"product": "Widget-A7", "amount": cny("12345.5"), "ordered_on": day(-5)}})
    );

    // Invoices: a receivable of that order.
    let r = ctx
        .fact(
            &id,
            "invoices",
            json!({"order_id": order, "amount": cny("12345.5"), "issued_on": day(-5), "due_on": day(25)}),
        )
        .await;
    let invoice = created(&r, &id, 3);
    let e = entry(&ctx, &id, 3).await;
    assert_eq!(e["event_type"], "InvoiceIssued");
    assert_eq!(
        only_change(&e),
        &json!({"field": format!("receivables/{invoice}"), "before": null,
                "after": {"order_id": order, "amount": cny("12345.5"), "issued_on": day(-5), "due_on": day(25)}})
    );

    // Payments: part of that invoice, received today by default.
    let r = ctx
        .fact(
            &id,
            "payments",
            json!({"invoice_id": invoice, "amount": cny("1000")}),
        )
        .await;
    let payment = created(&r, &id, 4);
    let e = entry(&ctx, &id, 4).await;
    assert_eq!(e["event_type"], "PaymentReceived");
    assert_eq!(
        only_change(&e),
        &json!({"field": format!("payments/{payment}"), "before": null,
                "after": {"invoice_id": invoice, "amount": cny("1000"), "received_on": today}})
    );
    let file = ctx.current(&id, r.2["seq"].as_i64().unwrap()).await;
    assert_eq!(file["orders"], json!([order]));
    assert_eq!(file["payments"], json!([payment]));
    assert_eq!(file["receivables"][&invoice]["amount"], cny("12345.5"));
    assert_eq!(file["receivables"][&invoice]["paid"]["amount"], "1000");
    assert_eq!(file["receivables"][&invoice]["due_on"], day(25));

    // Credit: a change, then the same again (a no-op).
    let credit = json!({"rating": "AA", "limit": cny("500000")});
    let r = ctx.fact(&id, "credit", credit.clone()).await;
    changed(&r, 5);
    let e = entry(&ctx, &id, 5).await;
    assert_eq!(e["event_type"], "CreditChanged");
    assert_eq!(
        e["changes"],
        json!([{"field": "credit/rating", "before": null, "after": "AA"},
               {"field": "credit/limit", "before": null, "after": cny("500000")}])
    );
    unchanged(&ctx.fact(&id, "credit", credit).await, 5);

    // Legal status: a change, then the same again.
    let legal = json!({"status": "litigation", "since": day(-3)});
    changed(&ctx.fact(&id, "legal-status", legal.clone()).await, 6);
    let e = entry(&ctx, &id, 6).await;
    assert_eq!(e["event_type"], "LegalStatusChanged");
    assert_eq!(
        only_change(&e),
        &json!({"field": "legal_status", "before": "normal",
                "after": {"status": "litigation", "since": day(-3)}})
    );
    unchanged(&ctx.fact(&id, "legal-status", legal).await, 6);

    // Interactions, complaints, their resolution, feedback and reviews carry
    // personal free text: the history shows it (decrypted), the log does not.
    let notes = [
        "interaction-note-5f1c9e",
        "complaint-note-83ab21",
        "resolution-note-c47d0f",
        "feedback-note-1e9b77",
        "review-note-6a2d34",
    ];
    let r = ctx
        .fact(
            &id,
            "interactions",
            json!({"channel": "visit", "outcome": "positive", "occurred_on": day(-1), "summary": notes[0]}),
        )
        .await;
    let interaction = created(&r, &id, 7);
    let e = entry(&ctx, &id, 7).await;
    assert_eq!(e["event_type"], "InteractionLogged");
    assert_eq!(
        only_change(&e),
        &json!({"field": format!("interactions/{interaction}"), "before": null,
                "after": {"channel": "visit", "outcome": "positive", "occurred_on": day(-1), "summary": notes[0]}})
    );

    let r = ctx
        .fact(
            &id,
            "complaints",
            json!({"category": "delivery-late", "summary": notes[1]}),
        )
        .await;
    let complaint = created(&r, &id, 8);
    let e = entry(&ctx, &id, 8).await;
    assert_eq!(e["event_type"], "ComplaintOpened");
    assert_eq!(
        only_change(&e),
        &json!({"field": format!("complaints/{complaint}"), "before": null,
                "after": {"status": "open", "category": "delivery-late", "summary": notes[1], "opened_on": today}})
    );
    let file = ctx.current(&id, r.2["seq"].as_i64().unwrap()).await;
    assert_eq!(file["open_complaints"], json!([complaint]));

    let r = ctx
        .fact(
            &id,
            &format!("complaints/{complaint}/resolution"),
            json!({"resolution": notes[2]}),
        )
        .await;
    assert_eq!(created(&r, &id, 9), complaint);
    let e = entry(&ctx, &id, 9).await;
    assert_eq!(e["event_type"], "ComplaintResolved");
    assert_eq!(
        only_change(&e),
        &json!({"field": format!("complaints/{complaint}/status"), "before": "open",
                "after": {"status": "resolved", "resolution": notes[2], "resolved_on": today}})
    );
    let file = ctx.current(&id, r.2["seq"].as_i64().unwrap()).await;
    assert_eq!(file["open_complaints"], json!([]));
    assert_eq!(file["resolved_complaints"], json!([complaint]));

    let r = ctx
        .fact(
            &id,
            "feedback",
            json!({"satisfaction": 4, "comment": notes[3], "received_on": day(-2)}),
        )
        .await;
    let feedback = created(&r, &id, 10);
    let e = entry(&ctx, &id, 10).await;
    assert_eq!(e["event_type"], "FeedbackRecorded");
    assert_eq!(
        only_change(&e),
        &json!({"field": format!("feedback/{feedback}"), "before": null,
                "after": {"satisfaction": 4, "comment": notes[3], "received_on": day(-2)}})
    );

    changed(
        &ctx.fact(&id, "reviews", json!({"summary": notes[4]})).await,
        11,
    );
    let e = entry(&ctx, &id, 11).await;
    assert_eq!(e["event_type"], "ReviewCompleted");
    assert_eq!(
        only_change(&e),
        &json!({"field": "last_review", "before": null,
                "after": {"reviewed_on": today, "summary": notes[4]}})
    );

    // Consents: granted, the same again (no-op), then withdrawn.
    let grant = json!({"purpose": "marketing", "granted": true, "on": day(-1)});
    changed(&ctx.fact(&id, "consents", grant.clone()).await, 12);
    let e = entry(&ctx, &id, 12).await;
    assert_eq!(e["event_type"], "ConsentRecorded");
    assert_eq!(
        only_change(&e),
        &json!({"field": "consents/marketing", "before": null,
                "after": {"granted": true, "on": day(-1)}})
    );
    unchanged(&ctx.fact(&id, "consents", grant).await, 12);
    let r = ctx
        .fact(
            &id,
            "consents",
            json!({"purpose": "marketing", "granted": false}),
        )
        .await;
    changed(&r, 13);

    let file = ctx.current(&id, r.2["seq"].as_i64().unwrap()).await;
    assert_eq!(file["version"], 13);
    assert_eq!(
        file["credit"],
        json!({"rating": "AA", "limit": cny("500000")})
    );
    assert_eq!(file["legal_status"], "litigation");
    assert_eq!(file["interactions"], json!([interaction]));
    assert_eq!(file["feedback"], json!([feedback]));
    assert_eq!(file["last_review"], today);
    assert_eq!(file["consents"], json!({"marketing": false}));

    // The raw log: business facts in plain text, free-text notes sealed.
    let log = ledger_text(&ctx).await;
    assert!(log.contains("Widget-A7"), "the export is searchable");
    assert!(
        log.contains("delivery-late"),
        "a category is a business fact"
    );
    for n in notes {
        assert!(!log.contains(n), "{n} is in the raw log in plain text");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effective_at_and_reason_are_kept_with_the_fact() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let r = ctx
        .fact(
            &id,
            "interactions",
            json!({"channel": "call", "outcome": "no_answer",
                   "reason": "weekly calls", "effective_at": "2025-01-02T03:04:05Z"}),
        )
        .await;
    created(&r, &id, 2);
    let e = entry(&ctx, &id, 2).await;
    assert_eq!(e["reason"], "weekly calls");
    let at = chrono::DateTime::parse_from_rfc3339(e["effective_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        at,
        chrono::DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z").unwrap()
    );
    assert_eq!(only_change(&e)["after"]["summary"], Value::Null);
    assert_eq!(only_change(&e)["after"]["outcome"], "no_answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_facts_are_refused_naming_the_field() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let order = |amount: Value| json!({"product": "p", "amount": amount});

    let cases: Vec<(&str, Value, &str)> = vec![
        ("orders", order(cny("1e5")), "amount"),
        ("orders", order(cny("-5")), "amount"),
        ("orders", order(cny("0")), "amount"),
        ("orders", order(cny("1.23456")), "amount"),
        ("orders", order(cny("")), "amount"),
        (
            "orders",
            order(json!({"amount": "10", "currency": "yuan"})),
            "amount",
        ),
        (
            "orders",
            order(json!({"amount": "10", "currency": "C1Y"})),
            "amount",
        ),
        (
            "orders",
            json!({"product": "p", "amount": cny("10"), "ordered_on": day(3)}),
            "ordered_on",
        ),
        (
            "orders",
            json!({"product": "p", "amount": cny("10"), "ordered_on": "2025/01/01"}),
            "ordered_on",
        ),
        (
            "orders",
            json!({"product": " ", "amount": cny("10")}),
            "product",
        ),
        (
            "invoices",
            json!({"amount": cny("10"), "due_on": "soon"}),
            "due_on",
        ),
        (
            "invoices",
            json!({"amount": cny("10"), "issued_on": day(-1), "due_on": day(-2)}),
            "due_on",
        ),
        (
            "invoices",
            json!({"order_id": uuid::Uuid::now_v7(), "amount": cny("10"), "due_on": day(5)}),
            "order_id",
        ),
        (
            "payments",
            json!({"invoice_id": uuid::Uuid::now_v7(), "amount": cny("10")}),
            "invoice_id",
        ),
        (
            "payments",
            json!({"amount": cny("10"), "received_on": day(2)}),
            "received_on",
        ),
        ("credit", json!({"rating": "Z", "limit": null}), "rating"),
        (
            "credit",
            json!({"rating": null, "limit": cny("-1")}),
            "limit",
        ),
        ("legal-status", json!({"status": "jailed"}), "status"),
        (
            "legal-status",
            json!({"status": "litigation", "since": day(2)}),
            "since",
        ),
        (
            "interactions",
            json!({"channel": "fax", "outcome": "positive"}),
            "channel",
        ),
        (
            "interactions",
            json!({"channel": "call", "outcome": "maybe"}),
            "outcome",
        ),
        (
            "interactions",
            json!({"channel": "call", "outcome": "neutral", "occurred_on": day(1)}),
            "occurred_on",
        ),
        (
            "complaints",
            json!({"category": "delivery", "summary": ""}),
            "summary",
        ),
        ("feedback", json!({"satisfaction": 9}), "satisfaction"),
        ("feedback", json!({"satisfaction": 0}), "satisfaction"),
        ("feedback", json!({"satisfaction": -1}), "satisfaction"),
        ("reviews", json!({"reviewed_on": day(4)}), "reviewed_on"),
        (
            "consents",
            json!({"purpose": "marketing", "granted": true, "on": day(1)}),
            "on",
        ),
        (
            "orders",
            json!({"product": "p", "amount": cny("10"), "reason": " "}),
            "reason",
        ),
        (
            "orders",
            json!({"product": "p", "amount": cny("10"), "effective_at": "yesterday"}),
            "effective_at",
        ),
    ];
    for (collection, body, field) in cases {
        let r = ctx.fact(&id, collection, body.clone()).await;
        assert_eq!(
            r.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{collection} {body}: {}",
            r.2
        );
        assert_invalid(&r, field);
    }

    // Not the expected shape at all: money as a number, a missing or an
    // unknown member.
    for (collection, body) in [
        ("orders", json!({"product": "p", "amount": 100})),
        ("orders", json!({"product": "p"})),
        (
            "orders",
            json!({"product": "p", "amount": cny("1"), "colour": "red"}),
        ),
        ("consents", json!({"purpose": "marketing"})),
        ("feedback", json!({"satisfaction": "4"})),
    ] {
        let r = ctx.fact(&id, collection, body.clone()).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "malformed_json", &[]);
    }

    // Nothing was written.
    assert_eq!(history(&ctx, &id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaints_resolve_once() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let r = ctx
        .fact(
            &id,
            "complaints",
            json!({"category": "quality", "summary": "broken on arrival", "opened_on": day(-3)}),
        )
        .await;
    let complaint = created(&r, &id, 2);
    let resolve = |c: String| {
        let ctx = &ctx;
        let id = id.clone();
        async move {
            ctx.fact(
                &id,
                &format!("complaints/{c}/resolution"),
                json!({"resolution": "replaced"}),
            )
            .await
        }
    };
    created(&resolve(complaint.clone()).await, &id, 3);
    // Already resolved, or never opened: the domain refuses.
    let r = resolve(complaint).await;
    assert_problem(&r, StatusCode::CONFLICT, "rejected", &[]);
    let r = resolve(uuid::Uuid::now_v7().to_string()).await;
    assert_problem(&r, StatusCode::CONFLICT, "rejected", &[]);
    // Not an id at all.
    let r = resolve("nope".to_owned()).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    // A resolution date in the future.
    let r = ctx
        .fact(
            &id,
            "complaints",
            json!({"category": "quality", "summary": "again"}),
        )
        .await;
    let second = created(&r, &id, 4);
    let r = ctx
        .fact(
            &id,
            &format!("complaints/{second}/resolution"),
            json!({"resolution": "later", "resolved_on": day(2)}),
        )
        .await;
    assert_invalid(&r, "resolved_on");
    assert_eq!(history(&ctx, &id).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_collections_customers_and_archived_files() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let r = ctx
        .fact(&id, "gifts", json!({"product": "p", "amount": cny("1")}))
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "no_such_route", &[]);
    let r = ctx
        .fact(
            &uuid::Uuid::now_v7().to_string(),
            "orders",
            json!({"product": "p", "amount": cny("1")}),
        )
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let r = ctx
        .fact(
            "not-a-uuid",
            "orders",
            json!({"product": "p", "amount": cny("1")}),
        )
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);

    let r = ctx
        .patch(&id, "\"1\"", json!({"reason": "gone", "archive": true}))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let r = ctx
        .fact(&id, "orders", json!({"product": "p", "amount": cny("1")}))
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "rejected", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_writing_roles_record_facts() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let body = json!({"channel": "chat", "outcome": "neutral"});
    for t in [&ctx.auditor, &ctx.compliance] {
        let r = ctx
            .call(
                Method::POST,
                &format!("/v1/customers/{id}/interactions"),
                Some(t),
                &[],
                Some(body.clone()),
            )
            .await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
    }
    let r = ctx
        .call(
            Method::POST,
            &format!("/v1/customers/{id}/interactions"),
            None,
            &[],
            Some(body.clone()),
        )
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized", &[]);
    let mut version = 1;
    for t in [&ctx.sales, &ctx.manager, &ctx.admin] {
        version += 1;
        let r = ctx
            .call(
                Method::POST,
                &format!("/v1/customers/{id}/interactions"),
                Some(t),
                &[],
                Some(body.clone()),
            )
            .await;
        created(&r, &id, version);
    }
    // Auditors may not merge either.
    let (other, _) = ctx.create_person().await;
    let r = ctx
        .call(
            Method::POST,
            &format!("/v1/customers/{id}/merge"),
            Some(&ctx.auditor),
            &[],
            Some(json!({"duplicate": other, "reason": "same"})),
        )
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
}

async fn order_with_key(ctx: &Ctx, id: &str, key: &str, product: &str) -> Resp {
    ctx.call(
        Method::POST,
        &format!("/v1/customers/{id}/orders"),
        Some(&ctx.sales),
        &[("idempotency-key", key)],
        Some(json!({"product": product, "amount": cny("99.90")})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_fact_is_written_once() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let first = order_with_key(&ctx, &id, "order-1", "Gadget").await;
    created(&first, &id, 2);
    let again = order_with_key(&ctx, &id, "order-1", "Gadget").await;
    assert_eq!(again.0, StatusCode::OK, "{}", again.2);
    assert_eq!(again.2["replayed"], true);
    assert_eq!(again.2["version"], 2);
    assert_eq!(again.2["seq"], first.2["seq"]);
    assert_eq!(again.2["id"], id.as_str());
    // The same key for another request.
    let other = order_with_key(&ctx, &id, "order-1", "Other").await;
    assert_problem(
        &other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        &[],
    );
    let orders: Vec<Value> = history(&ctx, &id)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "OrderPlaced")
        .collect();
    assert_eq!(orders.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_fact_returns_the_same_record_id() {
    let ctx = Ctx::new().await;
    let (id, _) = ctx.create_person().await;
    let first = order_with_key(&ctx, &id, "order-1", "Gadget").await;
    let rid = created(&first, &id, 2);
    let again = order_with_key(&ctx, &id, "order-1", "Gadget").await;
    assert_eq!(again.0, StatusCode::OK, "{}", again.2);
    assert_eq!(again.2["record_id"], rid.as_str(), "{}", again.2);
}

/// POSTs a customer without the fixture's automatic `force`.
async fn register(ctx: &Ctx, body: Value) -> Resp {
    ctx.call(
        Method::POST,
        "/v1/customers",
        Some(&ctx.sales),
        &[],
        Some(body),
    )
    .await
}

fn duplicates(r: &Resp) -> Vec<(String, String)> {
    assert_problem(
        r,
        StatusCode::CONFLICT,
        "duplicate_customer",
        &["duplicates"],
    );
    let mut d: Vec<(String, String)> = r.2["duplicates"]
        .as_array()
        .expect("duplicates")
        .iter()
        .map(|d| {
            (
                d["customer_id"].as_str().unwrap().to_owned(),
                d["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    d.sort();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_refused_unless_forced_with_a_reason() {
    let ctx = Ctx::new().await;
    // 张三: +8613812345678, zhang.san@example.com, national ID 11010519491231002X.
    let (a, seq) = ctx.create_person().await;
    ctx.current(&a, seq).await;
    let company = json!({"kind": "company", "details": {"name": "ACME", "credit_code": "91350100M000100Y43"}});
    let r = register(&ctx, company.clone()).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    let c = r.2["id"].as_str().unwrap().to_owned();
    ctx.current(&c, r.2["seq"].as_i64().unwrap()).await;

    let p = |details: Value| json!({"kind": "person", "details": details, "reason": "walk-in"});
    let one = |field: &str| vec![(a.clone(), field.to_owned())];
    // The phone in another notation, the e-mail in another case, the ID.
    let r = register(
        &ctx,
        p(json!({"name": "张三丰", "phone": "+86 138 1234 5678"})),
    )
    .await;
    assert_eq!(duplicates(&r), one("phone"));
    let r = register(
        &ctx,
        p(json!({"name": "张三丰", "email": "ZHANG.SAN@example.com"})),
    )
    .await;
    assert_eq!(duplicates(&r), one("email"));
    let r = register(
        &ctx,
        p(json!({"name": "张三丰", "national_id": "11010519491231002X"})),
    )
    .await;
    assert_eq!(duplicates(&r), one("national_id"));
    let r = register(&ctx, company.clone()).await;
    assert_eq!(duplicates(&r), vec![(c.clone(), "credit_code".to_owned())]);
    let r = register(
        &ctx,
        p(json!({"name": "张三", "phone": "13812345678", "email": "zhang.san@example.com"})),
    )
    .await;
    let mut both = vec![
        (a.clone(), "email".to_owned()),
        (a.clone(), "phone".to_owned()),
    ];
    both.sort();
    assert_eq!(duplicates(&r), both);

    // Force needs a reason.
    let r = register(
        &ctx,
        json!({"kind": "person", "details": {"name": "张三丰", "phone": "13812345678"}, "force": true}),
    )
    .await;
    assert_invalid(&r, "reason");
    let r = register(
        &ctx,
        json!({"kind": "person", "details": {"name": "张三丰", "phone": "13812345678"},
               "force": true, "reason": "shares the family phone"}),
    )
    .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    // force: false is the default behaviour.
    let r = register(
        &ctx,
        json!({"kind": "person", "details": {"name": "张三丰", "national_id": "11010519491231002X"}, "force": false}),
    )
    .await;
    assert_eq!(duplicates(&r), one("national_id"));

    // Something new is no duplicate.
    let r = register(&ctx, person_n(7)).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);

    // An archived customer is not a live duplicate any more.
    let r = ctx
        .patch(&c, "\"1\"", json!({"reason": "closed", "archive": true}))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    ctx.current(&c, r.2["seq"].as_i64().unwrap()).await;
    let r = register(&ctx, company).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
}

/// Registrations of one phone a moment apart, before any is projected
/// (two clerks, a file imported in parallel): exactly one customer is
/// created, the others are refused as its duplicates, and so is the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_of_one_phone_create_one_customer() {
    let ctx = Ctx::new().await;
    const NAMES: [&str; 12] = [
        "王一", "王二", "王三", "王四", "王五", "王六", "王七", "王八", "王九", "王十", "王敏",
        "王芳",
    ];
    let body = |i: usize| json!({"kind": "person", "details": {"name": NAMES[i], "phone": "139 0000 1111"}});
    let rs = futures_util::future::join_all((0..6).map(|i| register(&ctx, body(i)))).await;
    let created: Vec<String> = rs
        .iter()
        .filter(|r| r.0 == StatusCode::CREATED)
        .map(|r| r.2["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(created.len(), 1, "{rs:?}");
    let first = vec![(created[0].clone(), "phone".to_owned())];
    for r in rs.iter().filter(|r| r.0 != StatusCode::CREATED) {
        assert_eq!(duplicates(r), first);
    }
    let r = register(&ctx, body(9)).await;
    assert_eq!(duplicates(&r), first);
    // Forced with a reason, it is a second customer; both are found next.
    let mut forced = body(10);
    forced["force"] = json!(true);
    forced["reason"] = json!("twins sharing a phone");
    let r = register(&ctx, forced).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    let mut both = vec![
        first[0].clone(),
        (
            r.2["id"].as_str().expect("id").to_owned(),
            "phone".to_owned(),
        ),
    ];
    both.sort();
    assert_eq!(duplicates(&register(&ctx, body(11)).await), both);
}

async fn merge(ctx: &Ctx, survivor: &str, body: Value) -> Resp {
    ctx.call(
        Method::POST,
        &format!("/v1/customers/{survivor}/merge"),
        Some(&ctx.sales),
        &[],
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_a_duplicate_closes_its_file_and_keeps_both_histories() {
    let ctx = Ctx::new().await;
    let (survivor, _) = ctx.create_person().await;
    let (dup, _) = ctx.create_person().await;
    let r = ctx
        .fact(
            &dup,
            "orders",
            json!({"product": "tea", "amount": cny("88")}),
        )
        .await;
    created(&r, &dup, 2);

    let body = json!({"duplicate": dup, "reason": "same person registered twice"});
    let r = merge(&ctx, &survivor, body.clone()).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["id"], survivor.as_str());
    assert_eq!(r.2["version"], 2);
    assert_eq!(r.2["events"], 1);
    let seq = r.2["seq"].as_i64().unwrap();

    // The duplicate: MergedInto + CustomerArchived after its own history.
    let file = ctx.current(&dup, seq).await;
    assert_eq!(file["archived"], true);
    assert_eq!(file["merged_into"], survivor.as_str());
    let h = history(&ctx, &dup).await;
    let types: Vec<&str> = h
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "CustomerRegistered",
            "OrderPlaced",
            "MergedInto",
            "CustomerArchived"
        ]
    );
    assert_eq!(
        h[2]["changes"],
        json!([{"field": "merged_into", "before": null, "after": survivor}])
    );
    assert_eq!(h[2]["reason"], "same person registered twice");
    // The survivor: DuplicateMerged.
    let file = ctx.current(&survivor, seq).await;
    assert_eq!(file["archived"], false);
    assert_eq!(file["absorbed"], json!([dup]));
    let h = history(&ctx, &survivor).await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[1]["event_type"], "DuplicateMerged");
    assert_eq!(
        h[1]["changes"],
        json!([{"field": format!("absorbed/{dup}"), "before": null, "after": true}])
    );
    assert_eq!(h[1]["reason"], "same person registered twice");

    // Repeating the merge is harmless.
    let r = merge(&ctx, &survivor, body).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["events"], 0);
    assert_eq!(r.2["version"], 2);
    assert_eq!(history(&ctx, &dup).await.len(), 4);
    assert_eq!(history(&ctx, &survivor).await.len(), 2);

    // The merged file takes no more facts, and cannot be merged elsewhere.
    let r = ctx
        .fact(
            &dup,
            "orders",
            json!({"product": "tea", "amount": cny("1")}),
        )
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "rejected", &[]);
    let (third, _) = ctx.create_person().await;
    let r = merge(&ctx, &third, json!({"duplicate": dup, "reason": "r"})).await;
    assert_invalid(&r, "duplicate");
    // ... nor be a survivor.
    let r = merge(&ctx, &dup, json!({"duplicate": third, "reason": "r"})).await;
    assert_invalid(&r, "survivor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_merges_are_refused() {
    let ctx = Ctx::new().await;
    let (a, _) = ctx.create_person().await;
    let (b, _) = ctx.create_person().await;
    let r = merge(&ctx, &a, json!({"duplicate": a, "reason": "oops"})).await;
    assert_invalid(&r, "duplicate");
    let r = merge(&ctx, &a, json!({"duplicate": b})).await;
    assert_invalid(&r, "reason");
    let r = merge(
        &ctx,
        &a,
        json!({"duplicate": uuid::Uuid::now_v7(), "reason": "r"}),
    )
    .await;
    assert_invalid(&r, "duplicate");
    let r = merge(
        &ctx,
        &uuid::Uuid::now_v7().to_string(),
        json!({"duplicate": b, "reason": "r"}),
    )
    .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let r = merge(&ctx, &a, json!({"duplicate": "nope", "reason": "r"})).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "malformed_json", &[]);
    // Nothing was written to either file.
    assert_eq!(history(&ctx, &a).await.len(), 1);
    assert_eq!(history(&ctx, &b).await.len(), 1);
}
