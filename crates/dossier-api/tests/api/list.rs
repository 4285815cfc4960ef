//! GET /v1/customers: filters, search, sorting, keyset pagination, CSV.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{assert_invalid, assert_problem, Ctx};

/// Creates a customer and returns (id, seq).
async fn add(ctx: &Ctx, kind: &str, details: Value, owner: Option<&str>) -> (String, i64) {
    let mut body = json!({"kind": kind, "details": details, "reason": "list test"});
    if let Some(o) = owner {
        body["owner"] = json!(o);
    }
    let r = ctx.create(body).await;
    (
        r.2["id"].as_str().expect("id").to_owned(),
        r.2["seq"].as_i64().expect("seq"),
    )
}

/// Waits until the read model has applied `seq` (and so everything before it).
async fn settle(ctx: &Ctx, id: &str, seq: i64) {
    ctx.current(id, seq).await;
}

async fn list(ctx: &Ctx, query: &str) -> Value {
    let r = ctx.get(&format!("/v1/customers{query}"), &ctx.sales).await;
    assert_eq!(r.0, StatusCode::OK, "{query}: {}", r.2);
    r.2
}

fn names(page: &Value) -> BTreeSet<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["name"].as_str().expect("name").to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A small population with distinct names, kinds, owners, regions, industries.
async fn population(ctx: &Ctx) -> BTreeMap<&'static str, String> {
    let mut ids = BTreeMap::new();
    let (id, _) = ctx.create_person().await; // 张三, 13812345678, zhang.san@Example.COM, 华东, alice
    ids.insert("张三", id);
    let people = [
        (
            "张伟",
            "13900001111",
            "wei@example.com",
            "bob",
            "华南",
            "retail",
        ),
        (
            "李四",
            "13700002222",
            "li.si@example.com",
            "alice",
            "华南",
            "finance",
        ),
        (
            "Zhang San",
            "13600003333",
            "zs@example.org",
            "bob",
            "north",
            "retail",
        ),
        (
            "欧阳修",
            "13500004444",
            "ouyang@example.cn",
            "carol",
            "华东",
            "finance",
        ),
    ];
    for (name, phone, email, owner, region, industry) in people {
        let (id, _) = add(
            ctx,
            "person",
            json!({"name": name, "phone": phone, "email": email, "region": region, "industry": industry}),
            Some(owner),
        )
        .await;
        ids.insert(name, id);
    }
    let (id, _) = add(
        ctx,
        "company",
        json!({"name": "ACME Ltd", "credit_code": "91350100M000100Y43", "region": "north", "industry": "retail"}),
        Some("alice"),
    )
    .await;
    ids.insert("ACME Ltd", id);
    let (id, seq) = add(
        ctx,
        "company",
        json!({"name": "Smith, Jones & Co", "industry": "finance"}),
        None,
    )
    .await;
    ids.insert("Smith, Jones & Co", id.clone());
    settle(ctx, &id, seq).await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters() {
    let ctx = Ctx::new().await;
    let ids = population(&ctx).await;
    let all = set(&[
        "张三",
        "张伟",
        "李四",
        "Zhang San",
        "欧阳修",
        "ACME Ltd",
        "Smith, Jones & Co",
    ]);
    let page = list(&ctx, "").await;
    assert_eq!(names(&page), all);
    assert_eq!(page["next_cursor"], Value::Null);
    let item = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "张三")
        .unwrap()
        .clone();
    assert_eq!(item["id"], ids["张三"].as_str());
    assert_eq!(item["kind"], "person");
    assert_eq!(item["owner"], "alice");
    assert_eq!(item["region"], "华东");
    assert_eq!(item["archived"], false);
    assert_eq!(item["version"], 1);

    assert_eq!(
        names(&list(&ctx, "?kind=company").await),
        set(&["ACME Ltd", "Smith, Jones & Co"])
    );
    assert_eq!(
        names(&list(&ctx, "?owner=bob").await),
        set(&["张伟", "Zhang San"])
    );
    assert_eq!(
        names(&list(&ctx, &format!("?region={}", "%E5%8D%8E%E5%8D%97")).await),
        set(&["张伟", "李四"])
    );
    assert_eq!(
        names(&list(&ctx, "?industry=retail&kind=person").await),
        set(&["张伟", "Zhang San"])
    );
    assert_eq!(
        names(&list(&ctx, "?owner=alice&region=north").await),
        set(&["ACME Ltd"])
    );
    assert!(names(&list(&ctx, "?owner=nobody").await).is_empty());

    // Archived customers are hidden unless asked for.
    let r = ctx
        .patch(
            &ids["李四"],
            "\"1\"",
            json!({"reason": "left", "archive": true}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    settle(&ctx, &ids["李四"], r.2["seq"].as_i64().unwrap()).await;
    let live = list(&ctx, "").await;
    assert!(!names(&live).contains("李四"));
    assert_eq!(names(&live).len(), all.len() - 1);
    assert_eq!(names(&list(&ctx, "?archived=false").await), names(&live));
    let archived = list(&ctx, "?archived=true").await;
    assert_eq!(names(&archived), set(&["李四"]));
    assert_eq!(archived["items"][0]["archived"], true);
    assert_eq!(archived["items"][0]["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search() {
    let ctx = Ctx::new().await;
    population(&ctx).await;
    let q = |s: &str| format!("?q={}", percent(s));
    // A 1-character surname, a 2-character name.
    assert_eq!(names(&list(&ctx, &q("张")).await), set(&["张三", "张伟"]));
    assert_eq!(names(&list(&ctx, &q("张三")).await), set(&["张三"]));
    assert_eq!(names(&list(&ctx, &q("三")).await), set(&["张三"]));
    // Three Chinese characters, and two of them from the middle.
    assert_eq!(names(&list(&ctx, &q("欧阳修")).await), set(&["欧阳修"]));
    assert_eq!(names(&list(&ctx, &q("阳修")).await), set(&["欧阳修"]));
    assert!(names(&list(&ctx, &q("修欧阳")).await).is_empty());
    // Latin substrings, case-insensitive.
    assert_eq!(names(&list(&ctx, &q("ZHANG")).await), set(&["Zhang San"]));
    assert_eq!(names(&list(&ctx, &q("ang s")).await), set(&["Zhang San"]));
    assert_eq!(names(&list(&ctx, &q("cme")).await), set(&["ACME Ltd"]));
    assert_eq!(
        names(&list(&ctx, &q("jones & co")).await),
        set(&["Smith, Jones & Co"])
    );
    assert!(names(&list(&ctx, &q("zhangsan")).await).is_empty());
    // Phone: last 4 digits, the full number with or without country code.
    assert_eq!(names(&list(&ctx, &q("5678")).await), set(&["张三"]));
    assert_eq!(names(&list(&ctx, &q("1111")).await), set(&["张伟"]));
    assert_eq!(names(&list(&ctx, &q("13812345678")).await), set(&["张三"]));
    assert_eq!(
        names(&list(&ctx, &q("+8613812345678")).await),
        set(&["张三"])
    );
    assert!(names(&list(&ctx, &q("1234")).await).is_empty());
    // E-mail: the full address (any case) and the local part.
    assert_eq!(
        names(&list(&ctx, &q("Zhang.San@EXAMPLE.com")).await),
        set(&["张三"])
    );
    assert_eq!(names(&list(&ctx, &q("li.si")).await), set(&["李四"]));
    // Credit code.
    assert_eq!(
        names(&list(&ctx, &q("91350100m000100y43")).await),
        set(&["ACME Ltd"])
    );
    // LIKE wildcards are literal.
    assert!(names(&list(&ctx, &q("%%%")).await).is_empty());
    assert!(names(&list(&ctx, &q("___")).await).is_empty());
    // Combined with a filter.
    assert_eq!(
        names(&list(&ctx, &format!("{}&owner=bob", q("张"))).await),
        set(&["张伟"])
    );
    let r = ctx.get("/v1/customers?q=%20", &ctx.sales).await;
    assert_invalid(&r, "q");
}

/// Every page of `uri` (which has a query already), `limit` rows at a time.
async fn walk_query(ctx: &Ctx, uri: &str, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page_uri = format!("{uri}&limit={limit}");
        if let Some(c) = &cursor {
            page_uri.push_str(&format!("&cursor={c}"));
        }
        let page = list(ctx, &page_uri).await;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= limit);
        seen.extend(items.iter().map(|i| i["name"].as_str().unwrap().to_owned()));
        assert!(seen.len() < 100, "pagination does not end");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return seen,
        }
    }
}

/// Under name order a search merges names that start with the text and
/// names that contain it elsewhere: the pages are one sorted list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_in_name_order() {
    let ctx = Ctx::new().await;
    let all = [
        "张三",
        "张伟",
        "李张",
        "欧阳张",
        "王五",
        "Li Wei",
        "Emily",
        "ALICE li",
        "Bob",
        "li",
        "Olivia",
    ];
    let mut last = (String::new(), 0);
    for name in all {
        last = add(&ctx, "person", json!({"name": name}), None).await;
    }
    settle(&ctx, &last.0, last.1).await;
    let sorted = |mut v: Vec<&str>, descending: bool| -> Vec<String> {
        v.sort_by_key(|n| n.to_lowercase());
        if descending {
            v.reverse();
        }
        v.into_iter().map(str::to_owned).collect()
    };
    // Without a search, name order ignores case.
    assert_eq!(
        walk_query(&ctx, "?sort=name", 3).await,
        sorted(all.to_vec(), false)
    );
    for (q, want) in [
        ("张", vec!["张三", "张伟", "李张", "欧阳张"]),
        ("li", vec!["Li Wei", "ALICE li", "li", "Olivia"]),
        ("mi", vec!["Emily"]),
        ("liv", vec!["Olivia"]),
        ("li w", vec!["Li Wei"]),
        ("三", vec!["张三"]),
    ] {
        for sort in ["name", "-name"] {
            let expected = sorted(want.clone(), sort.starts_with('-'));
            for limit in [1, 2, 50] {
                let uri = format!("?q={}&sort={sort}", percent(q));
                assert_eq!(
                    walk_query(&ctx, &uri, limit).await,
                    expected,
                    "q={q} sort={sort} limit={limit}"
                );
            }
        }
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Walks every page of `sort` with limit=2.
async fn walk(ctx: &Ctx, sort: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut uri = format!("/v1/customers?limit=2&sort={sort}");
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={c}"));
        }
        let r = ctx.get(&uri, &ctx.sales).await;
        assert_eq!(r.0, StatusCode::OK, "{uri}: {}", r.2);
        let items = r.2["items"].as_array().expect("items").clone();
        assert!(items.len() <= 2);
        seen.extend(items);
        pages += 1;
        assert!(pages < 100, "pagination does not end");
        match r.2["next_cursor"].as_str() {
            Some(c) => {
                let link = r.1.get(header::LINK).expect("Link").to_str().unwrap();
                assert!(link.contains(&format!("cursor={c}")), "{link}");
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                cursor = Some(c.to_owned());
            }
            None => {
                assert!(!r.1.contains_key(header::LINK));
                return seen;
            }
        }
    }
}

fn key(item: &Value, sort: &str) -> (chrono::DateTime<chrono::FixedOffset>, String) {
    let field = sort.trim_start_matches('-');
    let at = item[field].as_str().unwrap();
    (
        chrono::DateTime::parse_from_rfc3339(at).unwrap(),
        item["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_row_once() {
    let ctx = Ctx::new().await;
    let mut ids = BTreeSet::new();
    let mut last = (String::new(), 0);
    // Duplicate names exercise the customer_id tie-break.
    for name in ["乙", "甲", "Bob", "alice", "甲", "Carol", "Bob"] {
        last = add(&ctx, "person", json!({"name": name}), None).await;
        ids.insert(last.0.clone());
    }
    settle(&ctx, &last.0, last.1).await;
    for sort in [
        "name",
        "-name",
        "updated_at",
        "-updated_at",
        "created_at",
        "-created_at",
    ] {
        let seen = walk(&ctx, sort).await;
        let got: Vec<String> = seen
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(got.len(), ids.len(), "{sort}: {got:?}");
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), ids, "{sort}");
        if sort.ends_with("_at") {
            let keys: Vec<_> = seen.iter().map(|i| key(i, sort)).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            if sort.starts_with('-') {
                sorted.reverse();
            }
            assert_eq!(keys, sorted, "{sort}");
        }
    }
    // The default is -updated_at.
    let default = list(&ctx, "").await;
    let newest = list(&ctx, "?sort=-updated_at").await;
    assert_eq!(default, newest);
    assert_eq!(default["items"][0]["id"], last.0.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_is_stable_while_customers_are_created() {
    let ctx = Ctx::new().await;
    let mut ids = BTreeSet::new();
    let mut last = (String::new(), 0);
    for c in ['a', 'b', 'c', 'd', 'e', 'f', 'g'] {
        last = add(&ctx, "person", json!({"name": format!("Person {c}")}), None).await;
        ids.insert(last.0.clone());
    }
    settle(&ctx, &last.0, last.1).await;
    for sort in ["-updated_at", "updated_at", "name", "-name"] {
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut uri = format!("/v1/customers?limit=2&sort={sort}");
            if let Some(c) = &cursor {
                uri.push_str(&format!("&cursor={c}"));
            }
            let r = ctx.get(&uri, &ctx.sales).await;
            assert_eq!(r.0, StatusCode::OK, "{uri}: {}", r.2);
            seen.extend(
                r.2["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_owned()),
            );
            let Some(c) = r.2["next_cursor"].as_str() else {
                break;
            };
            cursor = Some(c.to_owned());
            // A new customer lands between pages (and is projected).
            let (id, seq) = add(&ctx, "person", json!({"name": "Person new"}), None).await;
            settle(&ctx, &id, seq).await;
            assert!(seen.len() < 200, "pagination does not end");
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: a row was returned twice");
        assert!(ids.is_subset(&unique), "{sort}: a row was skipped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv() {
    let ctx = Ctx::new().await;
    let ids = population(&ctx).await;
    let r = ctx
        .call(
            Method::GET,
            "/v1/customers?kind=company&sort=name",
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
    let body = r.2.as_str().expect("CSV text");
    let lines: Vec<&str> = body.split_terminator("\r\n").collect();
    assert_eq!(
        lines[0],
        "id,kind,name,owner,region,industry,tier,importance,lifecycle,risk,signals,tags,archived,version,updated_at"
    );
    assert_eq!(lines.len(), 3, "{body}");
    assert!(
        lines[1].starts_with(&format!(
            "{},company,ACME Ltd,alice,north,retail,",
            ids["ACME Ltd"]
        )) && lines[1].contains(",false,1,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(&format!(
            "{},company,\"Smith, Jones & Co\",,,finance,",
            ids["Smith, Jones & Co"]
        )) && lines[2].contains(",false,1,"),
        "{}",
        lines[2]
    );
    assert!(lines[1].ends_with('Z'), "{}", lines[1]);

    // The same page as JSON, and the next page in a Link header.
    let r = ctx
        .call(
            Method::GET,
            "/v1/customers?sort=name&limit=2&q=%E5%BC%A0",
            Some(&ctx.sales),
            &[("accept", "text/csv")],
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::OK);
    let body = r.2.as_str().expect("CSV text");
    assert_eq!(body.split_terminator("\r\n").count(), 3, "{body}");
    assert!(
        !r.1.contains_key(header::LINK),
        "two matches fit on one page"
    );
    let r = ctx
        .call(
            Method::GET,
            "/v1/customers?sort=name&limit=3",
            Some(&ctx.sales),
            &[("accept", "text/csv")],
            None,
        )
        .await;
    let link =
        r.1.get(header::LINK)
            .expect("Link")
            .to_str()
            .unwrap()
            .to_owned();
    let json_page = list(&ctx, "?sort=name&limit=3").await;
    let next = json_page["next_cursor"].as_str().unwrap();
    assert_eq!(
        link,
        format!("</v1/customers?sort=name&limit=3&cursor={next}>; rel=\"next\"")
    );
    let csv_ids: Vec<&str> =
        r.2.as_str()
            .unwrap()
            .split_terminator("\r\n")
            .skip(1)
            .map(|l| &l[..36])
            .collect();
    let json_ids: Vec<&str> = json_page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(csv_ids, json_ids);
    // Following the link gives the next page.
    let uri = link.trim_start_matches('<').split('>').next().unwrap();
    let r = ctx.get(uri, &ctx.sales).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["items"].as_array().unwrap().len(), 3);
    assert_ne!(r.2["items"][0]["id"], json_page["items"][0]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests() {
    let ctx = Ctx::new().await;
    let (id, seq) = ctx.create_person().await;
    settle(&ctx, &id, seq).await;
    for bad in ["nope", "e30", "%25%25", "eyJzb3J0IjoibmFtZSJ9"] {
        let r = ctx
            .get(&format!("/v1/customers?cursor={bad}"), &ctx.sales)
            .await;
        assert_invalid(&r, "cursor");
    }
    // A cursor of one sort order is refused by another.
    let (id2, seq2) = ctx.create_person().await;
    settle(&ctx, &id2, seq2).await;
    let page = list(&ctx, "?limit=1&sort=name").await;
    let c = page["next_cursor"].as_str().expect("a next page");
    let r = ctx
        .get(&format!("/v1/customers?sort=-name&cursor={c}"), &ctx.sales)
        .await;
    assert_invalid(&r, "cursor");
    let r = ctx.get("/v1/customers?color=red", &ctx.sales).await;
    assert_invalid(&r, "color");
    let r = ctx.get("/v1/customers?archived=maybe", &ctx.sales).await;
    assert_invalid(&r, "archived");
    for l in ["0", "201", "-1"] {
        let r = ctx
            .get(&format!("/v1/customers?limit={l}"), &ctx.sales)
            .await;
        assert_invalid(&r, "limit");
    }
    assert_eq!(
        list(&ctx, "?limit=200").await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = ctx.get("/v1/customers?sort=owner", &ctx.sales).await;
    assert_invalid(&r, "sort");
    let r = ctx.get("/v1/customers?kind=robot", &ctx.sales).await;
    assert_invalid(&r, "kind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles() {
    let ctx = Ctx::new().await;
    let r = ctx.get("/v1/customers", &ctx.auditor).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
    for t in [&ctx.sales, &ctx.manager, &ctx.compliance, &ctx.admin] {
        let r = ctx.get("/v1/customers", t).await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        assert_eq!(r.2, json!({"items": [], "next_cursor": null}));
    }
    let r = ctx
        .call(Method::GET, "/v1/customers", None, &[], None)
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized", &[]);
}
