//! Tier, risk and completeness, their histories, the sales list filters
//! they feed (JSON and CSV), follow-ups, segments, rules and evaluation runs.

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{assert_invalid, assert_problem, cny, day, Ctx, Resp};

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b',') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Registers a company owned by `owner` in `region`; returns its id.
async fn company(ctx: &Ctx, name: &str, owner: &str, region: &str) -> String {
    let r = ctx
        .create(json!({"kind": "company", "owner": owner,
                       "details": {"name": name, "region": region, "industry": "machinery"}}))
        .await;
    r.2["id"].as_str().unwrap().to_owned()
}

/// Records a fact as sales and returns the seq of its event.
async fn fact(ctx: &Ctx, id: &str, collection: &str, body: Value) -> i64 {
    let r = ctx.fact(id, collection, body).await;
    assert_eq!(r.0, StatusCode::CREATED, "{collection}: {}", r.2);
    r.2["seq"].as_i64().unwrap()
}

async fn order(ctx: &Ctx, id: &str, amount: &str) -> i64 {
    fact(
        ctx,
        id,
        "orders",
        json!({"product": "lathe", "amount": cny(amount), "ordered_on": day(-10)}),
    )
    .await
}

/// An invoice due `days_ago` days ago, never paid.
async fn overdue_invoice(ctx: &Ctx, id: &str, days_ago: i64) -> i64 {
    fact(
        ctx,
        id,
        "invoices",
        json!({"amount": cny("50000"), "issued_on": day(-days_ago - 30), "due_on": day(-days_ago)}),
    )
    .await
}

/// The customer's insights once every projector has applied `seq`.
async fn insights_after(ctx: &Ctx, id: &str, seq: i64) -> Value {
    wait_projectors(ctx, seq).await;
    let r = ctx
        .get(&format!("/v1/customers/{id}/insights"), &ctx.sales)
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    r.2
}

/// Waits until every projector has applied `seq`.
async fn wait_projectors(ctx: &Ctx, seq: i64) {
    for p in [
        "customer_current",
        "customer_tier",
        "customer_risk",
        "follow_ups",
    ] {
        let reached =
            dossier_projections::wait_for(&ctx.store, p, seq, std::time::Duration::from_secs(5))
                .await
                .expect("checkpoint");
        assert!(reached.is_some(), "{p} did not reach seq {seq}");
    }
}

fn ids(items: &Value) -> Vec<String> {
    items["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i.get("id")
                .or_else(|| i.get("customer_id"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Parses RFC 4180 CSV (quoted fields, doubled quotes, CRLF line ends).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quote");
    assert!(field.is_empty() && row.is_empty(), "last line without CRLF");
    rows
}

async fn csv(ctx: &Ctx, uri: &str) -> Vec<Vec<String>> {
    let r = ctx
        .call(
            Method::GET,
            uri,
            Some(&ctx.sales),
            &[("accept", "text/csv")],
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(
        r.1.get(header::CONTENT_TYPE).unwrap(),
        "text/csv; charset=utf-8"
    );
    parse_csv(r.2.as_str().expect("CSV text"))
}

const CSV_HEADER: [&str; 15] = [
    "id",
    "kind",
    "name",
    "owner",
    "region",
    "industry",
    "tier",
    "importance",
    "lifecycle",
    "risk",
    "signals",
    "tags",
    "archived",
    "version",
    "updated_at",
];

/// A small book of business for alice-sales (and one customer of bob's).
struct Book {
    /// 华东, A tier (big orders), overdue 40 days.
    east_a: String,
    east_a_order: i64,
    east_a_invoice: i64,
    /// 华东, C tier, overdue 40 days.
    east_c: String,
    /// 华南, A tier, overdue 50 days.
    south_a: String,
    /// bob's: 华东, A tier, overdue.
    bobs: String,
}

async fn book(ctx: &Ctx) -> Book {
    let east_a = company(ctx, "东方精密, Ltd.", "alice-sales", "华东").await;
    let east_c = company(ctx, "小河五金", "alice-sales", "华东").await;
    let south_a = company(ctx, "南方重工", "alice-sales", "华南").await;
    let bobs = company(ctx, "北辰机械", "bob", "华东").await;
    let east_a_order = order(ctx, &east_a, "1200000").await;
    let east_a_invoice = overdue_invoice(ctx, &east_a, 40).await;
    order(ctx, &east_c, "5000").await;
    overdue_invoice(ctx, &east_c, 40).await;
    order(ctx, &south_a, "1500000").await;
    overdue_invoice(ctx, &south_a, 50).await;
    order(ctx, &bobs, "2000000").await;
    let last = overdue_invoice(ctx, &bobs, 40).await;
    wait_projectors(ctx, last).await;
    Book {
        east_a,
        east_a_order,
        east_a_invoice,
        east_c,
        south_a,
        bobs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_risk_and_completeness_with_their_history() {
    let ctx = Ctx::new().await;
    let b = book(&ctx).await;
    let v = insights_after(&ctx, &b.east_a, b.east_a_invoice).await;
    let tier = &v["tier"];
    assert_eq!(tier["value_tier"], "A", "{v}");
    assert_eq!(tier["importance"], "important", "{v}");
    assert_eq!(tier["importance_source"], "rule", "{v}");
    assert_eq!(tier["lifecycle"], "new", "{v}");
    assert_eq!(tier["rules_version"], "dossier-default-1");
    assert_eq!(tier["seq"], b.east_a_order, "the order made it A: {v}");
    assert_eq!(tier["inputs"]["trailing_orders"], "1", "{v}");
    assert!(
        tier["inputs"]["trailing_amount"]
            .as_str()
            .is_some_and(|a| a.starts_with("1200000")),
        "{v}"
    );
    let risk = &v["risk"];
    assert_eq!(risk["level"], "medium", "40 days overdue: {v}");
    assert_eq!(risk["seq"], b.east_a_invoice, "{v}");
    let reasons = risk["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{v}");
    assert_eq!(reasons[0]["signal"], "overdue_receivables");
    assert_eq!(reasons[0]["severity"], "medium");
    assert_eq!(reasons[0]["evidence"], json!([b.east_a_invoice]));
    // name, region, industry and owner: 10 + 5 + 10 + 10.
    assert_eq!(v["completeness"]["score"], 35, "{v}");
    let missing: Vec<&str> = v["completeness"]["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(missing.contains(&"credit_code"), "{missing:?}");
    assert!(!missing.contains(&"name") && !missing.contains(&"region"));
    assert!(!missing.contains(&"owner") && !missing.contains(&"industry"));

    // Completeness follows the file at once (it is computed from the log).
    let r = ctx
        .patch(
            &b.east_a,
            "\"3\"",
            json!({"reason": "from the licence", "details": {"credit_code": "91350100M000100Y43"}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let r = ctx
        .get(&format!("/v1/customers/{}/insights", b.east_a), &ctx.sales)
        .await;
    assert_eq!(r.2["completeness"]["score"], 45, "{}", r.2);
    assert!(!r.2["completeness"]["missing"]
        .as_array()
        .unwrap()
        .contains(&json!("credit_code")));

    // When did it become A, and why: the order.
    let h = ctx
        .get(
            &format!("/v1/customers/{}/tier-history", b.east_a),
            &ctx.sales,
        )
        .await;
    assert_eq!(h.0, StatusCode::OK, "{}", h.2);
    let items = h.2["items"].as_array().unwrap();
    assert_eq!(items[0]["value_tier"], "C", "{}", h.2);
    assert_eq!(items[0]["lifecycle"], "prospect", "{}", h.2);
    let became_a = items.iter().find(|i| i["value_tier"] == "A").unwrap();
    assert_eq!(became_a["seq"], b.east_a_order);
    assert_eq!(became_a["importance"], "important");
    assert!(items
        .windows(2)
        .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()));
    // When did it become risky: the invoice, with the signal.
    let h = ctx
        .get(
            &format!("/v1/customers/{}/risk-history", b.east_a),
            &ctx.sales,
        )
        .await;
    assert_eq!(h.0, StatusCode::OK, "{}", h.2);
    let items = h.2["items"].as_array().unwrap();
    assert_eq!(items[0]["level"], "low", "{}", h.2);
    let flagged = items
        .iter()
        .find(|i| i["level"] == "medium")
        .expect("a medium risk row");
    assert_eq!(flagged["seq"], b.east_a_invoice);
    assert_eq!(flagged["reasons"][0]["signal"], "overdue_receivables");

    // Unknown customers; roles.
    let unknown = uuid::Uuid::now_v7();
    for path in ["insights", "tier-history", "risk-history"] {
        let r = ctx
            .get(&format!("/v1/customers/{unknown}/{path}"), &ctx.sales)
            .await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
        let r = ctx
            .get(&format!("/v1/customers/{}/{path}", b.east_a), &ctx.auditor)
            .await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
        let r = ctx
            .get(
                &format!("/v1/customers/{}/{path}", b.east_a),
                &ctx.compliance,
            )
            .await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_a_tier_customers_in_east_china_with_overdue_payments() {
    let ctx = Ctx::new().await;
    let b = book(&ctx).await;
    let query = format!(
        "?owner=alice-sales&tier=A&region={}&signal=overdue_receivables",
        pct("华东")
    );
    let page = {
        let r = ctx.get(&format!("/v1/customers{query}"), &ctx.sales).await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        r.2
    };
    assert_eq!(ids(&page), [b.east_a.as_str()], "{page}");
    let item = &page["items"][0];
    assert_eq!(item["name"], "东方精密, Ltd.");
    assert_eq!(item["tier"], "A");
    assert_eq!(item["importance"], "important");
    assert_eq!(item["lifecycle"], "new");
    assert_eq!(item["risk"], "medium");
    assert_eq!(item["signals"], json!(["overdue_receivables"]));

    // The same list as CSV, parsed back.
    let rows = csv(&ctx, &format!("/v1/customers{query}")).await;
    assert_eq!(rows[0], CSV_HEADER);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = &rows[1];
    assert_eq!(row[0], b.east_a);
    assert_eq!(
        row[1..13],
        [
            "company",
            "东方精密, Ltd.",
            "alice-sales",
            "华东",
            "machinery",
            "A",
            "important",
            "new",
            "medium",
            "overdue_receivables",
            "",
            "false",
        ]
    );
    assert_eq!(row[13], item["version"].to_string());
    assert!(
        chrono::DateTime::parse_from_rfc3339(&row[14]).is_ok(),
        "{row:?}"
    );

    // A longer list: CSV and JSON agree on ids and order.
    for q in [
        "?signal=overdue_receivables&sort=name",
        "?tier=A&sort=-name",
        "?owner=alice-sales",
    ] {
        let json_ids = {
            let r = ctx.get(&format!("/v1/customers{q}"), &ctx.sales).await;
            ids(&r.2)
        };
        let csv_ids: Vec<String> = csv(&ctx, &format!("/v1/customers{q}"))
            .await
            .into_iter()
            .skip(1)
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(csv_ids, json_ids, "{q}");
    }

    // The other filters one by one.
    let list = |q: String| {
        let ctx = &ctx;
        async move {
            let r = ctx.get(&format!("/v1/customers{q}"), &ctx.sales).await;
            assert_eq!(r.0, StatusCode::OK, "{q}: {}", r.2);
            let mut v = ids(&r.2);
            v.sort();
            v
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        list("?tier=A".into()).await,
        sorted(vec![b.east_a.clone(), b.south_a.clone(), b.bobs.clone()])
    );
    assert_eq!(list("?tier=C".into()).await, [b.east_c.as_str()]);
    assert!(list("?tier=B".into()).await.is_empty());
    assert_eq!(
        list("?importance=general".into()).await,
        [b.east_c.as_str()]
    );
    assert_eq!(list("?lifecycle=new".into()).await.len(), 4);
    assert!(list("?lifecycle=dormant".into()).await.is_empty());
    assert_eq!(list("?risk=medium,high".into()).await.len(), 4);
    assert!(list("?risk=low".into()).await.is_empty());
    assert!(list("?signal=complaints".into()).await.is_empty());
    for (q, field) in [
        ("?tier=D", "tier"),
        ("?importance=vip", "importance"),
        ("?lifecycle=zombie", "lifecycle"),
        ("?risk=low,extreme", "risk"),
        ("?signal=gossip", "signal"),
    ] {
        let r = ctx.get(&format!("/v1/customers{q}"), &ctx.sales).await;
        assert_invalid(&r, field);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_most_urgent_first() {
    let ctx = Ctx::new().await;
    let b = book(&ctx).await;
    // The caller's own customers by default (owner = alice-sales).
    let r = ctx.get("/v1/follow-ups", &ctx.sales).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let items = r.2["items"].as_array().unwrap().clone();
    for i in &items {
        assert_eq!(i["owner"], "alice-sales", "{i}");
    }
    let urgencies: Vec<i64> = items
        .iter()
        .map(|i| i["urgency"].as_i64().unwrap())
        .collect();
    assert!(
        urgencies.windows(2).all(|w| w[0] >= w[1]),
        "not by urgency: {urgencies:?}"
    );
    let overdue: Vec<&Value> = items
        .iter()
        .filter(|i| i["kind"] == "payment_overdue")
        .collect();
    // Important customers first; among them the older debt first.
    let order: Vec<&str> = overdue
        .iter()
        .map(|i| i["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, [&b.south_a, &b.east_a, &b.east_c], "{}", r.2);
    let mine = overdue[1];
    assert_eq!(mine["customer_name"], "东方精密, Ltd.");
    assert_eq!(mine["due_on"], day(-39));
    assert_eq!(mine["evidence"], json!([b.east_a_invoice]));
    assert_eq!(mine["tier"], "A");
    assert_eq!(mine["risk"], "medium");
    assert!(mine["urgency"].as_i64() > overdue[2]["urgency"].as_i64());
    assert!(mine["detail"].as_str().is_some_and(|d| !d.is_empty()));

    // A kind, a team, everyone.
    let r = ctx
        .get("/v1/follow-ups?kind=payment_overdue", &ctx.sales)
        .await;
    assert_eq!(
        ids(&r.2),
        [b.south_a.clone(), b.east_a.clone(), b.east_c.clone()]
    );
    let r = ctx.get("/v1/follow-ups?kind=birthday", &ctx.sales).await;
    assert_eq!(r.2["items"], json!([]));
    let r = ctx.get("/v1/follow-ups?owner=bob", &ctx.sales).await;
    assert_eq!(ids(&r.2), [b.bobs.as_str()]);
    let r = ctx
        .get(
            "/v1/follow-ups?owner=bob,alice-sales&kind=payment_overdue",
            &ctx.manager,
        )
        .await;
    assert_eq!(ids(&r.2).len(), 4);
    let r = ctx.get("/v1/follow-ups?all=true", &ctx.manager).await;
    assert_eq!(
        r.2["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "payment_overdue")
            .count(),
        4
    );
    // The manager has no customers of their own.
    let r = ctx.get("/v1/follow-ups", &ctx.manager).await;
    assert_eq!(r.2["items"], json!([]));
    // Due dates, paging.
    let r = ctx
        .get(&format!("/v1/follow-ups?due_by={}", day(-45)), &ctx.sales)
        .await;
    assert_eq!(ids(&r.2), [b.south_a.as_str()]);
    let r = ctx
        .get(
            "/v1/follow-ups?kind=payment_overdue&limit=1&offset=1",
            &ctx.sales,
        )
        .await;
    assert_eq!(ids(&r.2), [b.east_a.as_str()]);

    for (q, field) in [
        ("?all=true&owner=bob", "owner"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?offset=-1", "offset"),
        ("?due_by=tomorrow", "due_by"),
        ("?colour=red", "colour"),
    ] {
        let r = ctx.get(&format!("/v1/follow-ups{q}"), &ctx.sales).await;
        assert_invalid(&r, field);
    }
    let r = ctx.get("/v1/follow-ups", &ctx.auditor).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
}

fn sum(v: &Value) -> i64 {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["count"].as_i64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_count_live_customers() {
    let ctx = Ctx::new().await;
    book(&ctx).await;
    // A prospect without orders, then archived.
    let gone = company(&ctx, "已关闭", "alice-sales", "华东").await;
    let r = ctx
        .patch(&gone, "\"1\"", json!({"reason": "closed", "archive": true}))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    wait_projectors(&ctx, r.2["seq"].as_i64().unwrap()).await;

    let segments = |q: String| {
        let ctx = &ctx;
        async move {
            let r = ctx.get(&format!("/v1/segments{q}"), &ctx.sales).await;
            assert_eq!(r.0, StatusCode::OK, "{q}: {}", r.2);
            let s = r.2;
            let total = s["total"].as_i64().unwrap();
            assert_eq!(sum(&s["tier_risk"]), total, "{s}");
            assert_eq!(sum(&s["lifecycle"]), total, "{s}");
            assert_eq!(sum(&s["importance"]), total, "{s}");
            s
        }
    };
    let live = {
        let r = ctx.get("/v1/customers?limit=200", &ctx.sales).await;
        r.2["items"].as_array().unwrap().len() as i64
    };
    assert_eq!(live, 4);
    let s = segments(String::new()).await;
    assert_eq!(s["total"], live, "{s}");
    assert_eq!(
        s["tier_risk"],
        json!([{"tier": "A", "risk": "medium", "count": 3}, {"tier": "C", "risk": "medium", "count": 1}])
    );
    assert_eq!(s["lifecycle"], json!([{"label": "new", "count": 4}]));
    assert_eq!(
        s["importance"],
        json!([{"label": "general", "count": 1}, {"label": "important", "count": 3}])
    );
    assert_eq!(segments("?owner=alice-sales".into()).await["total"], 3);
    assert_eq!(
        segments(format!("?region={}", pct("华东"))).await["total"],
        3
    );
    assert_eq!(
        segments(format!("?region={}&owner=bob", pct("华东"))).await["total"],
        1
    );
    assert_eq!(segments("?industry=machinery".into()).await["total"], 4);
    let s = segments("?owner=nobody".into()).await;
    assert_eq!(s["total"], 0);

    let r = ctx.get("/v1/segments?tier=A", &ctx.sales).await;
    assert_invalid(&r, "tier");
    let r = ctx.get("/v1/segments", &ctx.auditor).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
}

async fn put_rules(ctx: &Ctx, token: &str, text: &str) -> Resp {
    ctx.call_raw(
        Method::PUT,
        "/v1/rules",
        Some(token),
        &[("content-type", "text/plain")],
        text.as_bytes().to_vec(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_adopted_once_per_version() {
    let ctx = Ctx::new().await;
    let r = ctx.get("/v1/rules", &ctx.sales).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["version"], "dossier-default-1");
    assert_eq!(r.2["seq"], Value::Null);
    let default_sha = r.2["sha256"].as_str().unwrap().to_owned();
    assert_eq!(default_sha.len(), 64);
    let default_text = r.2["text"].as_str().unwrap().to_owned();
    assert!(
        default_text.contains("a_min = \"1000000\""),
        "{default_text}"
    );

    // A customer at 200 000: B under the defaults.
    let id = company(&ctx, "中型客户", "alice-sales", "华北").await;
    let seq = order(&ctx, &id, "200000").await;
    let v = insights_after(&ctx, &id, seq).await;
    assert_eq!(v["tier"]["value_tier"], "B", "{v}");

    let text = default_text
        .replace("version = \"dossier-default-1\"", "version = \"test-2\"")
        .replace("a_min = \"1000000\"", "a_min = \"150000\"");
    // Only admins adopt rules.
    for t in [&ctx.sales, &ctx.manager, &ctx.compliance, &ctx.auditor] {
        let r = put_rules(&ctx, t, &text).await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
    }
    let r = put_rules(&ctx, &ctx.admin, &text).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    assert_eq!(r.2["adopted"], true);
    let adopted = r.2["seq"].as_i64().expect("seq");
    let r = ctx.get("/v1/rules", &ctx.sales).await;
    assert_eq!(r.2["version"], "test-2");
    assert_eq!(r.2["seq"], adopted);
    assert_eq!(r.2["text"], text.as_str());
    assert_ne!(r.2["sha256"], default_sha.as_str());

    // Every customer is re-evaluated under the new rules.
    let v = ctx
        .eventually(&format!("/v1/customers/{id}/insights"), &ctx.sales, |v| {
            v["tier"]["rules_version"] == "test-2"
        })
        .await;
    assert_eq!(v["tier"]["value_tier"], "A", "{v}");
    assert_eq!(v["tier"]["seq"], adopted, "{v}");
    let h = ctx
        .get(&format!("/v1/customers/{id}/tier-history"), &ctx.sales)
        .await;
    let last = h.2["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["value_tier"], "A");
    assert_eq!(last["seq"], adopted);
    assert_eq!(last["rules_version"], "test-2");

    // The same text again: nothing to do.
    let r = put_rules(&ctx, &ctx.admin, &text).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["adopted"], false);
    assert_eq!(r.2["seq"], Value::Null);
    // Other text under the version in force; not TOML; not UTF-8.
    let r = put_rules(&ctx, &ctx.admin, &format!("{text}\n# an edit\n")).await;
    assert_invalid(&r, "rules");
    let r = put_rules(&ctx, &ctx.admin, "version = \n[tier").await;
    assert_invalid(&r, "rules");
    let r = put_rules(&ctx, &ctx.admin, "[tier]\na_min = \"5\"\n").await;
    assert_invalid(&r, "rules");
    let r = ctx
        .call_raw(
            Method::PUT,
            "/v1/rules",
            Some(&ctx.admin),
            &[("content-type", "text/plain")],
            vec![0xff, 0xfe, 0x00],
        )
        .await;
    assert_invalid(&r, "rules");
    let r = ctx.get("/v1/rules", &ctx.sales).await;
    assert_eq!(r.2["seq"], adopted, "refused rules are not adopted");

    // Going back to the defaults is a new adoption.
    let r = put_rules(&ctx, &ctx.admin, &default_text).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    let r = ctx.get("/v1/rules", &ctx.sales).await;
    assert_eq!(r.2["version"], "dossier-default-1");
    assert_eq!(r.2["sha256"], default_sha.as_str());
}

async fn evaluate(ctx: &Ctx, token: &str, body: Option<Value>) -> Resp {
    ctx.call(Method::POST, "/v1/evaluations", Some(token), &[], body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_runs_are_recorded_once_per_date() {
    let ctx = Ctx::new().await;
    for t in [&ctx.sales, &ctx.compliance, &ctx.auditor] {
        let r = evaluate(&ctx, t, None).await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
    }
    let r = evaluate(&ctx, &ctx.admin, Some(json!({"date": day(3)}))).await;
    assert_invalid(&r, "date");
    let r = evaluate(&ctx, &ctx.admin, Some(json!({"date": "03/01/2026"}))).await;
    assert_invalid(&r, "date");
    let r = evaluate(&ctx, &ctx.admin, Some(json!({"when": day(0)}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "malformed_json", &[]);

    // A past date, then today (the default), then today again.
    let r = evaluate(&ctx, &ctx.manager, Some(json!({"date": day(-2)}))).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    assert_eq!(r.2["recorded"], true);
    let first = r.2["seq"].as_i64().unwrap();
    let r = evaluate(&ctx, &ctx.admin, None).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    assert_eq!(r.2["recorded"], true);
    assert!(r.2["seq"].as_i64().unwrap() > first);
    let r = evaluate(&ctx, &ctx.admin, None).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2, json!({"recorded": false, "seq": null}));
    // A date not after the last run.
    let r = evaluate(&ctx, &ctx.manager, Some(json!({"date": day(-2)}))).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["recorded"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_importance_and_addresses_by_patch() {
    let ctx = Ctx::new().await;
    let r = ctx
        .create(
            json!({"kind": "company", "owner": "alice-sales", "tags": ["trade-fair", "vip"],
                       "details": {"name": "标签公司"}}),
        )
        .await;
    let id = r.2["id"].as_str().unwrap().to_owned();
    let other = company(&ctx, "无标签", "alice-sales", "华东").await;
    let r = ctx
        .patch(
            &id,
            "\"1\"",
            json!({"reason": "met at the fair", "add_tags": ["key-account"], "remove_tags": ["vip"],
                   "importance": "special",
                   "add_addresses": [{"label": "warehouse", "text": "上海市浦东新区1号"}]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["events"], 3, "{}", r.2);
    let seq = r.2["seq"].as_i64().unwrap();
    wait_projectors(&ctx, seq).await;
    let file = ctx.current(&id, seq).await;
    assert_eq!(file["tags"], json!(["key-account", "trade-fair"]));
    assert_eq!(file["importance"], "special");
    let addresses = file["addresses"].as_object().unwrap();
    assert_eq!(addresses.len(), 1, "{file}");
    let (address_id, address) = addresses.iter().next().unwrap();
    assert_eq!(address["label"], "warehouse");
    assert_eq!(address["text"], "上海市浦东新区1号");

    // The manual importance wins over the rules.
    let v = insights_after(&ctx, &id, seq).await;
    assert_eq!(v["tier"]["importance"], "special", "{v}");
    assert_eq!(v["tier"]["importance_source"], "manual", "{v}");
    let list = |q: &str| {
        let ctx = &ctx;
        let q = q.to_owned();
        async move {
            let r = ctx.get(&format!("/v1/customers{q}"), &ctx.sales).await;
            assert_eq!(r.0, StatusCode::OK, "{q}: {}", r.2);
            ids(&r.2)
        }
    };
    assert_eq!(list("?importance=special").await, [id.as_str()]);
    assert_eq!(list("?importance=general").await, [other.as_str()]);
    // Tags: every listed tag is required.
    assert_eq!(list("?tag=trade-fair").await, [id.as_str()]);
    assert_eq!(list("?tag=trade-fair,key-account").await, [id.as_str()]);
    assert!(list("?tag=trade-fair,vip").await.is_empty());
    assert!(list("?tag=vip").await.is_empty());
    let rows = csv(&ctx, "/v1/customers?tag=key-account").await;
    assert_eq!(rows[1][0], id);
    assert_eq!(rows[1][7], "special");
    assert_eq!(rows[1][11], "key-account;trade-fair");

    // Back to the rules; the address removed; unknown ones refused.
    let r = ctx
        .patch(
            &id,
            "\"4\"",
            json!({"reason": "review", "importance": null, "remove_addresses": [address_id]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["events"], 2, "{}", r.2);
    let seq = r.2["seq"].as_i64().unwrap();
    wait_projectors(&ctx, seq).await;
    let v = insights_after(&ctx, &id, seq).await;
    assert_eq!(v["tier"]["importance"], "general", "{v}");
    assert_eq!(v["tier"]["importance_source"], "rule", "{v}");
    let file = ctx.current(&id, seq).await;
    assert_eq!(file["importance"], Value::Null);
    assert_eq!(file["addresses"], json!({}));
    let r = ctx
        .patch(
            &id,
            "\"6\"",
            json!({"reason": "r", "remove_addresses": [address_id]}),
        )
        .await;
    assert_invalid(&r, "remove_addresses");
    let r = ctx
        .patch(&id, "\"6\"", json!({"reason": "r", "importance": "vip"}))
        .await;
    assert_invalid(&r, "importance");
    let r = ctx
        .patch(&id, "\"6\"", json!({"reason": "r", "add_tags": ["a,b"]}))
        .await;
    assert_invalid(&r, "add_tags/0");
    // The same importance again changes nothing.
    let r = ctx
        .patch(&id, "\"6\"", json!({"reason": "r", "importance": null}))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["events"], 0);
}
