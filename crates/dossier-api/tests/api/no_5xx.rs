//! No request, however malformed, gets a 5xx; a database outage gets the
//! documented 503 with Retry-After. One test per defect found by trying the
//! API as a new user would (issue 14, §3).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use dossier_api::{app, AppState};
use dossier_seal::MasterKey;
use dossier_service::Service;
use dossier_store::{Keyring, Role, Store};
use dossier_testkit::TestDb;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::common::*;

const SYSTEM: &str = "00000000-0000-0000-0000-00000000d055";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_stream_is_no_customer() {
    let ctx = Ctx::new().await;
    // Puts an event (EvaluationDateReached) on the system stream.
    ctx.service
        .evaluate_as_service()
        .await
        .expect("evaluation run");
    let (id, _) = ctx.create_person().await;
    let now = "2100-01-01T00:00:00Z";
    for uri in [
        format!("/v1/customers/{SYSTEM}"),
        format!("/v1/customers/{SYSTEM}/history"),
        format!("/v1/customers/{SYSTEM}?at_seq=1"),
        format!("/v1/customers/{SYSTEM}?as_of={now}"),
        format!("/v1/customers/{SYSTEM}/insights"),
        format!("/v1/customers/{SYSTEM}/tier-history"),
        format!("/v1/customers/{SYSTEM}/risk-history"),
    ] {
        let r = ctx.get(&uri, &ctx.sales).await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    }
    let r = ctx
        .patch(SYSTEM, "\"1\"", json!({"reason": "x", "owner": "bob"}))
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let order = json!({"product": "p", "amount": cny("10")});
    let r = ctx.fact(SYSTEM, "orders", order).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let invoice = json!({"amount": cny("10"), "due_on": day(30)});
    let r = ctx.fact(SYSTEM, "invoices", invoice).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let r = ctx
        .fact(&id, "merge", json!({"duplicate": SYSTEM, "reason": "dup"}))
        .await;
    assert_invalid(&r, "duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_in_parameters_are_refused() {
    let ctx = Ctx::new().await;
    for (path, param) in [
        ("/v1/customers", "owner"),
        ("/v1/customers", "region"),
        ("/v1/customers", "industry"),
        ("/v1/customers", "tag"),
        ("/v1/customers", "q"),
        ("/v1/follow-ups", "owner"),
        ("/v1/follow-ups", "kind"),
        ("/v1/segments", "owner"),
        ("/v1/segments", "region"),
        ("/v1/segments", "industry"),
    ] {
        let r = ctx.get(&format!("{path}?{param}=a%00b"), &ctx.sales).await;
        assert_invalid(&r, param);
    }
    // And in bodies, wherever they are.
    let mut body = person();
    body["details"]["name"] = json!("张\u{0}三");
    let r = ctx
        .call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[],
            Some(body),
        )
        .await;
    assert_invalid(&r, "details/name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_declared_json() {
    let ctx = Ctx::new().await;
    let body = serde_json::to_vec(&person()).unwrap();
    for headers in [vec![("content-type", "text/plain")], vec![]] {
        let r = ctx
            .call_raw_untyped(Method::POST, "/v1/customers", &ctx.sales, &headers, &body)
            .await;
        assert_problem(
            &r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &[],
        );
    }
    let (id, _) = ctx.create_person().await;
    let change = br#"{"reason": "r", "owner": "bob"}"#;
    let r = ctx
        .call_raw_untyped(
            Method::PATCH,
            &format!("/v1/customers/{id}"),
            &ctx.sales,
            &[("content-type", "text/plain"), ("if-match", "\"1\"")],
            change,
        )
        .await;
    assert_problem(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &[],
    );
    // A JSON type with parameters or a +json suffix is JSON.
    let r = ctx
        .call_raw_untyped(
            Method::PATCH,
            &format!("/v1/customers/{id}"),
            &ctx.sales,
            &[
                (
                    "content-type",
                    "application/merge-patch+json; charset=utf-8",
                ),
                ("if-match", "\"1\""),
            ],
            change,
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    // The log holds the one registration and the one change: the refused
    // requests wrote nothing.
    assert_eq!(ctx.head().await["seq"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_encodings_are_checked() {
    let ctx = Ctx::new().await;
    let (id, seq) = ctx.create_person().await;
    for limit in ["-1", "0", "501"] {
        let r = ctx
            .get(
                &format!("/v1/customers/{id}/history?limit={limit}"),
                &ctx.sales,
            )
            .await;
        assert_invalid(&r, "limit");
    }
    let r = ctx
        .get(
            &format!("/v1/customers/{id}/history?after_version=-1"),
            &ctx.sales,
        )
        .await;
    assert_invalid(&r, "after_version");
    let r = ctx
        .get(&format!("/v1/customers/{id}?min_seq=-1"), &ctx.sales)
        .await;
    assert_invalid(&r, "min_seq");
    // A seq no write has returned yet is refused at once, not after a wait.
    let started = std::time::Instant::now();
    let r = ctx
        .get(
            &format!("/v1/customers/{id}?min_seq={}", seq + 1_000),
            &ctx.sales,
        )
        .await;
    assert_invalid(&r, "min_seq");
    assert!(
        started.elapsed() < Duration::from_millis(1_900),
        "no 2 s wait"
    );
    let r = ctx.get("/v1/customers?q=%FF%FE", &ctx.sales).await;
    assert_invalid(&r, "q");
    // A cursor we never issued, carrying a NUL in its name key.
    let forged = dossier_projections::Cursor {
        sort: "name".into(),
        key: dossier_projections::CursorKey::Text("a\u{0}b".into()),
        id: uuid::Uuid::nil(),
    }
    .encode();
    let r = ctx
        .get(
            &format!("/v1/customers?sort=name&cursor={forged}"),
            &ctx.sales,
        )
        .await;
    assert_invalid(&r, "cursor");
    let r = ctx.get("/v1/customers/%FF%FE", &ctx.sales).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    let r = ctx.get("/v1/customers/%FF%FE/history", &ctx.sales).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_has_one_url() {
    let ctx = Ctx::new().await;
    let (id, seq) = ctx.create_person().await;
    let r = ctx
        .get(&format!("/v1/customers/{id}?min_seq={seq}"), &ctx.sales)
        .await;
    assert_eq!(r.0, StatusCode::OK);
    let simple = id.replace('-', "");
    for other in [
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
        id.to_uppercase(),
        simple,
    ] {
        let uri = format!(
            "/v1/customers/{}",
            other.replace('{', "%7B").replace('}', "%7D")
        );
        let r = ctx.get(&uri, &ctx.sales).await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not_found", &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_registration_get_its_outcome() {
    let ctx = Ctx::new().await;
    let body = person();
    let calls = (0..16).map(|_| {
        ctx.call(
            Method::POST,
            "/v1/customers",
            Some(&ctx.sales),
            &[("idempotency-key", "onboarding-42")],
            Some(body.clone()),
        )
    });
    let answers = futures_util::future::join_all(calls).await;
    let created = answers
        .iter()
        .filter(|r| r.0 == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one registration");
    let ids: std::collections::BTreeSet<String> =
        answers.iter().map(|r| r.2["id"].to_string()).collect();
    for r in &answers {
        assert!(
            r.0 == StatusCode::CREATED || (r.0 == StatusCode::OK && r.2["replayed"] == true),
            "every retry gets the registration's outcome, not a duplicate warning: {} {}",
            r.0,
            r.2
        );
    }
    assert_eq!(ids.len(), 1, "one customer: {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_bounded() {
    let ctx = Ctx::new().await;
    let long = "a".repeat(60_000);
    let r = ctx
        .call(
            Method::GET,
            "/healthz",
            None,
            &[("x-request-id", &long)],
            None,
        )
        .await;
    let id = r.1["x-request-id"].to_str().unwrap();
    assert!(
        id.len() <= dossier_api::MAX_REQUEST_ID,
        "replaced, not echoed"
    );
    let r = ctx
        .call(
            Method::GET,
            "/healthz",
            None,
            &[("x-request-id", "a b\tc")],
            None,
        )
        .await;
    assert_ne!(r.1["x-request-id"], "a b\tc");
    let r = ctx
        .call(
            Method::GET,
            "/healthz",
            None,
            &[("x-request-id", "trace-123.a:b_c")],
            None,
        )
        .await;
    assert_eq!(r.1["x-request-id"], "trace-123.a:b_c", "a sane id is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_verification_at_a_time_and_only_for_roles_that_need_it() {
    let ctx = Ctx::new().await;
    for _ in 0..20 {
        ctx.create_person().await;
    }
    for token in [&ctx.sales, &ctx.manager] {
        let r = ctx
            .call(Method::POST, "/v1/ledger/verify", Some(token), &[], None)
            .await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", &[]);
    }
    let calls = (0..8).map(|_| {
        ctx.call(
            Method::POST,
            "/v1/ledger/verify",
            Some(&ctx.auditor),
            &[],
            None,
        )
    });
    let answers = futures_util::future::join_all(calls).await;
    for r in &answers {
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        assert_eq!(r.2["ok"], true);
    }
    // Callers that arrive while a verification runs share its report (the
    // same elapsed time, to the millisecond): fewer scans than callers.
    let runs: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| format!("{}/{}", r.2["elapsed_ms"], r.2["head_seq"]))
        .collect();
    assert!(
        runs.len() < answers.len(),
        "8 callers, {} verifications",
        runs.len()
    );
}

/// A TCP proxy in front of PostgreSQL that can be cut, as an outage would.
struct Proxy {
    port: u16,
    tasks: JoinSet<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Proxy { port, tasks }
    }

    /// Drops the listener and every connection: new connections are refused.
    fn cut(&mut self) {
        self.tasks.abort_all();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_with_retry_after() {
    let db = TestDb::new().await.unwrap();
    let url = db.url();
    let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let upstream = format!("{}:{}", opts.get_host(), opts.get_port());
    let mut proxy = Proxy::start(upstream).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(opts.port(proxy.port).host("127.0.0.1"))
        .await
        .unwrap();
    let service = Service::new(Store::new(pool), Keyring::new(MasterKey::generate()));
    let (_, token) = service.create_token("sam", Role::Sales).await.unwrap();
    let ctx = OneshotRouter(app(AppState::new(service)));
    let body = json!({"kind": "person", "details": {"name": "李四"}});
    let r = ctx
        .send(Method::POST, "/v1/customers", &token, Some(body.clone()))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    let id = r.2["id"].as_str().unwrap().to_owned();

    proxy.cut();
    // Let the cut connections be noticed by their next use.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (method, uri, body) in [
        (Method::POST, "/v1/customers".to_owned(), Some(body.clone())),
        (Method::POST, "/v1/customers".to_owned(), Some(body)),
        (Method::GET, format!("/v1/customers/{id}?at_seq=10"), None),
        (Method::GET, format!("/v1/customers/{id}"), None),
        (Method::GET, "/v1/customers".to_owned(), None),
        (Method::GET, "/v1/ledger/head".to_owned(), None),
    ] {
        let r = ctx.send(method.clone(), &uri, &token, body).await;
        assert!(
            r.0 == StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri} during an outage: {} {}",
            r.0,
            r.2
        );
        assert!(r.2["code"] == "unavailable", "{}", r.2);
        assert!(
            r.1.contains_key("retry-after"),
            "{method} {uri}: Retry-After"
        );
    }
    let r = ctx.send(Method::GET, "/readyz", &token, None).await;
    assert_eq!(r.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.2["code"], "not_ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_its_page_are_served_without_a_token() {
    let ctx = Ctx::new().await;
    let r = ctx
        .call(Method::GET, "/openapi.json", None, &[], None)
        .await;
    assert_eq!(r.0, StatusCode::OK);
    assert_eq!(r.2, serde_json::to_value(dossier_api::openapi()).unwrap());
    assert_eq!(r.2["openapi"], "3.1.0");
    // The interactive page comes from the binary (vendored), not from a CDN.
    let r = ctx.call(Method::GET, "/docs/", None, &[], None).await;
    assert_eq!(r.0, StatusCode::OK);
    let page = r.2.as_str().expect("an HTML page");
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(!page.contains("https://"), "no external assets: {page}");
    let r = ctx
        .call(Method::GET, "/docs/swagger-ui-bundle.js", None, &[], None)
        .await;
    assert_eq!(r.0, StatusCode::OK);
}
