//! Shared setup for the HTTP API tests: a fresh database, the service, a
//! running set of all projectors, one token per role and a router to
//! call with `oneshot`.

#![allow(dead_code)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use dossier_api::{app, AppState};
use dossier_seal::MasterKey;
use dossier_service::Service;
use dossier_store::{Keyring, Principal, Role, Store};
use dossier_testkit::TestDb;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// Largest response body the tests read.
const READ_LIMIT: usize = 4 * 1024 * 1024;

pub struct Ctx {
    pub store: Store,
    pub service: Service,
    pub router: Router,
    pub sales: String,
    pub sales_principal: Principal,
    pub manager: String,
    pub compliance: String,
    pub auditor: String,
    pub admin: String,
    projectors: Vec<JoinHandle<()>>,
    // Last, so the database outlives everything that uses it.
    pub db: TestDb,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for p in &self.projectors {
            p.abort();
        }
    }
}

pub type Resp = (StatusCode, HeaderMap, Value);

impl Ctx {
    pub async fn new() -> Ctx {
        let db = TestDb::new().await.expect("test database");
        let store = db.store().await.expect("store");
        let keyring = Keyring::new(MasterKey::generate());
        let service = Service::new(store.clone(), keyring.clone());
        let projectors = dossier_projections::all(&keyring, &store)
            .into_iter()
            .map(|p| {
                tokio::spawn(dossier_projections::run(
                    store.clone(),
                    p,
                    Duration::from_millis(50),
                ))
            })
            .collect();
        let token = |name: &'static str, role: Role| {
            let service = service.clone();
            async move { service.create_token(name, role).await.expect("token") }
        };
        let (sales_principal, sales) = token("alice-sales", Role::Sales).await;
        let (_, manager) = token("bob-manager", Role::Manager).await;
        let (_, compliance) = token("carol-compliance", Role::Compliance).await;
        let (_, auditor) = token("dave-auditor", Role::Auditor).await;
        let (_, admin) = token("erin-admin", Role::Admin).await;
        let router = app(AppState::new(service.clone()));
        Ctx {
            store,
            service,
            router,
            sales,
            sales_principal,
            manager,
            compliance,
            auditor,
            admin,
            projectors,
            db,
        }
    }

    /// Sends one request with a raw body (declared JSON unless `headers` set
    /// a content type). Every response must carry x-request-id.
    pub async fn call_raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let typed = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        let mut all = headers.to_vec();
        if !body.is_empty() && !typed {
            all.push(("content-type", "application/json"));
        }
        let r = OneshotRouter(self.router.clone())
            .request(method.clone(), uri, token, &all, body)
            .await;
        assert!(
            r.1.contains_key("x-request-id"),
            "{method} {uri} -> {}: no x-request-id header",
            r.0
        );
        r
    }

    /// Sends one request with a raw body and exactly the headers given
    /// (no content type added).
    pub async fn call_raw_untyped(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        OneshotRouter(self.router.clone())
            .request(method, uri, Some(token), headers, body.to_vec())
            .await
    }

    /// Sends one request; `body` is serialised as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let raw = body
            .map(|b| serde_json::to_vec(&b).expect("json"))
            .unwrap_or_default();
        self.call_raw(method, uri, token, headers, raw).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> Resp {
        self.call(Method::GET, uri, Some(token), &[], None).await
    }

    /// POSTs a customer as sales and returns the 201 response. Fixtures
    /// repeat the same person, so duplicate detection is overridden unless
    /// the body says otherwise (tests of duplicates set `force` themselves).
    pub async fn create(&self, mut body: Value) -> Resp {
        if body.get("force").is_none() {
            body["force"] = json!(true);
            if body.get("reason").is_none() {
                body["reason"] = json!("test fixture");
            }
        }
        let r = self
            .call(
                Method::POST,
                "/v1/customers",
                Some(&self.sales),
                &[],
                Some(body),
            )
            .await;
        assert_eq!(r.0, StatusCode::CREATED, "create failed: {}", r.2);
        r
    }

    /// Creates the standard person and returns (id, seq).
    pub async fn create_person(&self) -> (String, i64) {
        let r = self.create(person()).await;
        (
            r.2["id"].as_str().expect("id").to_owned(),
            r.2["seq"].as_i64().expect("seq"),
        )
    }

    pub async fn patch(&self, id: &str, if_match: &str, body: Value) -> Resp {
        self.call(
            Method::PATCH,
            &format!("/v1/customers/{id}"),
            Some(&self.sales),
            &[("if-match", if_match)],
            Some(body),
        )
        .await
    }

    /// The current read model, once it has caught up with `min_seq`.
    pub async fn current(&self, id: &str, min_seq: i64) -> Value {
        let r = self
            .get(
                &format!("/v1/customers/{id}?min_seq={min_seq}"),
                &self.sales,
            )
            .await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        r.2
    }

    pub async fn head(&self) -> Value {
        let r = self.get("/v1/ledger/head", &self.auditor).await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        r.2
    }
}

/// The standard person of these tests.
/// A person distinct from [`person`] and from `person_n(m)` for m != n.
pub fn person_n(n: u32) -> Value {
    json!({
        "kind": "person",
        "details": {
            "name": format!("测试{}", ["甲", "乙", "丙", "丁", "戊", "己"][n as usize % 6]),
            "phone": format!("1390000{n:04}"),
            "email": format!("p{n}@example.com"),
        },
    })
}

pub fn person() -> Value {
    json!({
        "kind": "person",
        "details": {
            "name": "张三",
            "phone": "13812345678",
            "email": "zhang.san@Example.COM",
            "national_id": "11010519491231002X",
            "region": "华东",
        },
        "owner": "alice",
        "reason": "new customer at branch 12",
    })
}

/// Asserts an RFC 9457 problem: status, content type, `code`, and exactly the
/// members type, title, status, code, detail plus `extra`.
pub fn assert_problem(r: &Resp, status: StatusCode, code: &str, extra: &[&str]) {
    let (s, headers, body) = r;
    assert_eq!(*s, status, "unexpected status; body: {body}");
    assert_eq!(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "problem content type; body: {body}"
    );
    assert_eq!(body["code"], code, "problem code; body: {body}");
    assert_eq!(
        body["status"],
        status.as_u16(),
        "problem status member; body: {body}"
    );
    let obj = body.as_object().expect("problem is an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec!["code", "detail", "status", "title", "type"];
    want.extend_from_slice(extra);
    want.sort_unstable();
    assert_eq!(keys, want, "problem members; body: {body}");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://")),
        "{body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
}

/// Asserts a 422 validation problem naming `field`.
pub fn assert_invalid(r: &Resp, field: &str) {
    assert_problem(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        &["field"],
    );
    assert_eq!(r.2["field"], field, "{}", r.2);
}

pub fn etag(r: &Resp) -> &str {
    r.1.get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .expect("ETag")
}

impl Ctx {
    /// POSTs a fact (`collection` may be `complaints/{id}/resolution`) as sales.
    pub async fn fact(&self, id: &str, collection: &str, body: Value) -> Resp {
        self.call(
            Method::POST,
            &format!("/v1/customers/{id}/{collection}"),
            Some(&self.sales),
            &[],
            Some(body),
        )
        .await
    }

    /// Polls `GET uri` (every 50 ms, for up to 5 s) until it answers 200 with
    /// a body `done` accepts, and returns that body. The insight read models
    /// are filled asynchronously; this waits for them without sleeping blindly.
    pub async fn eventually(&self, uri: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let r = self.get(uri, token).await;
            if r.0 == StatusCode::OK && done(&r.2) {
                return r.2;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {uri} did not reach the expected state within 5 s; last answer {}: {}",
                r.0,
                r.2
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The date `offset` days from today (UTC, the service's "today" for facts), as YYYY-MM-DD.
pub fn day(offset: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset)).to_string()
}

/// A money body: `{"amount": "…", "currency": "CNY"}`.
pub fn cny(amount: &str) -> Value {
    json!({"amount": amount, "currency": "CNY"})
}

/// A router called with `oneshot`, for tests that build their own service.
pub struct OneshotRouter(pub Router);

impl OneshotRouter {
    /// Sends a request with a JSON body (when given) as `token`.
    pub async fn send(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Resp {
        let (headers, bytes) = match body {
            Some(b) => (
                vec![("content-type", "application/json")],
                serde_json::to_vec(&b).unwrap(),
            ),
            None => (vec![], vec![]),
        };
        self.request(method, uri, Some(token), &headers, bytes)
            .await
    }

    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body)).expect("request");
        let res = self.0.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, READ_LIMIT)
            .await
            .expect("response body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (parts.status, parts.headers, value)
    }
}
