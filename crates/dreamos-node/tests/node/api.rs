//! The API in-process: authentication, roles, and a clear error for every kind of bad input
//! with nothing half-stored.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dreamos_core::SystemClock;
use dreamos_node::api::{AppState, router};
use dreamos_node::auth::{self, Role};
use dreamos_node::metrics::Metrics;
use dreamos_queue::{KindRegistry, Queue, QueueConfig};
use dreamos_store::{StoreConfig, TaskFilter};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Api {
    router: Router,
    queue: Queue,
    tokens: Vec<(Role, String)>,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("api.db").display());
        let store =
            dreamos_store::open(&url, StoreConfig::default(), Arc::new(SystemClock)).await.unwrap();
        let queue = Queue::new(
            store.clone(),
            KindRegistry::builtin(),
            QueueConfig { max_payload_bytes: 4_096, ..QueueConfig::default() },
        );
        let mut tokens = Vec::new();
        for role in [Role::Admin, Role::Operator, Role::Viewer, Role::Agent] {
            let issued = auth::issue(role, role.as_str(), 0, None);
            store.create_token(issued.record).await.unwrap();
            tokens.push((role, issued.token));
        }
        let config = Arc::new(crate::config(dir.path(), 0));
        let state = AppState {
            queue: queue.clone(),
            metrics: Arc::new(Metrics::default()),
            orchestrator: dreamos_node::orchestrator::Orchestrator::new(
                store.clone(),
                config.clone(),
                "test",
            ),
            config,
            limits: Default::default(),
            tokens: Default::default(),
            audit_coalescer: Default::default(),
            closing: tokio::sync::watch::channel(false).1,
            draining: tokio::sync::watch::channel(false).1,
            discord: None,
            node_id: "test".into(),
            started: Instant::now(),
            workspaces: Arc::new(dreamos_node::workspaces::Workspaces::new(dir.path())),
        };
        Self { router: router(state), queue, tokens, _dir: dir }
    }

    fn token(&self, role: Role) -> &str {
        &self.tokens.iter().find(|(r, _)| *r == role).unwrap().1
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    async fn stored(&self) -> usize {
        self.queue
            .store()
            .list(&TaskFilter { limit: 1_000, ..Default::default() })
            .await
            .unwrap()
            .len()
    }
}

#[tokio::test]
async fn bad_requests_get_a_stable_code_and_store_nothing() {
    let api = Api::new().await;
    let admin = Some(api.token(Role::Admin));
    let big = json!({ "kind": "noop", "payload": { "x": "y".repeat(5_000) } }).to_string();
    /// method, path, token, body, expected status, expected code
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("POST", "/api/v1/tasks", admin, Some("{not json"), 400, "malformed_json"),
        ("POST", "/api/v1/tasks", admin, Some(r#"{"kind":"nope"}"#), 400, "unknown_kind"),
        (
            "POST",
            "/api/v1/tasks",
            admin,
            Some(r#"{"kind":"exec","payload":{"program":1}}"#),
            422,
            "invalid_payload",
        ),
        ("POST", "/api/v1/tasks", admin, Some(&big), 413, "payload_too_large"),
        (
            "POST",
            "/api/v1/tasks",
            admin,
            Some(r#"{"kind":"noop","colour":"red"}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/tasks",
            admin,
            Some(r#"{"kind":"noop","priority":"urgent"}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/tasks",
            admin,
            Some(r#"{"kind":"noop","depends_on":[999]}"#),
            422,
            "dependency_not_found",
        ),
        (
            "POST",
            "/api/v1/tasks/batch",
            admin,
            Some(r#"{"tasks":[{"kind":"noop"},{"kind":"nope"}]}"#),
            400,
            "unknown_kind",
        ),
        ("GET", "/api/v1/tasks/12345", admin, None, 404, "not_found"),
        ("GET", "/api/v1/tasks/abc", admin, None, 400, "bad_request"),
        ("POST", "/api/v1/tasks/777/cancel", admin, None, 404, "not_found"),
        ("GET", "/api/v1/tasks?state=sleeping", admin, None, 400, "bad_request"),
        ("GET", "/api/v1/tasks?limit=0", admin, None, 400, "bad_request"),
        ("GET", "/api/v1/nothing-here", admin, None, 404, "not_found"),
        ("GET", "/api/v1/tasks", None, None, 401, "unauthorized"),
        ("GET", "/api/v1/tasks", Some("dros_abc_def"), None, 401, "unauthorized"),
        ("GET", "/api/v1/tasks", Some("garbage"), None, 401, "unauthorized"),
        ("GET", "/metrics", None, None, 401, "unauthorized"),
    ];
    for (method, path, token, body, status, code) in cases {
        let (got_status, got) = api.send(method, path, token, body).await;
        assert_eq!(
            (got_status.as_u16(), got["code"].as_str().unwrap_or("?")),
            (status, code),
            "{method} {path} {body:?}: {got}"
        );
        assert!(got["message"].as_str().is_some_and(|m| !m.is_empty()), "{got}");
    }
    // A wrong secret for a real token id is refused like any other bad token.
    let real = api.token(Role::Admin);
    let forged = format!("{}{}", &real[..real.len() - 4], "0000");
    assert_eq!(
        api.send("GET", "/api/v1/tasks", Some(&forged), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Without a JSON content type.
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/tasks")
        .header(header::AUTHORIZATION, format!("Bearer {real}"))
        .body(Body::from(r#"{"kind":"noop"}"#))
        .unwrap();
    assert_eq!(
        api.router.clone().oneshot(request).await.unwrap().status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(api.stored().await, 0, "a refused request stored something");
}

#[tokio::test]
async fn roles_decide_who_may_do_what() {
    let api = Api::new().await;
    let noop = Some(r#"{"kind":"noop"}"#);
    let exec = Some(r#"{"kind":"exec","payload":{"program":"true"}}"#);
    for (role, path, body, want) in [
        (Role::Viewer, "/api/v1/tasks", noop, 403),
        (Role::Agent, "/api/v1/tasks", noop, 403),
        (Role::Operator, "/api/v1/tasks", noop, 201),
        (Role::Operator, "/api/v1/tasks", exec, 403),
        (Role::Admin, "/api/v1/tasks", exec, 201),
    ] {
        let (status, body) = api.send("POST", path, Some(api.token(role)), body).await;
        assert_eq!(status.as_u16(), want, "{role} POST {path}: {body}");
    }
    let (status, _) = api.send("GET", "/api/v1/tasks", Some(api.token(Role::Viewer)), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        api.send("POST", "/api/v1/tasks/1/cancel", Some(api.token(Role::Viewer)), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api.send("GET", "/api/v1/tasks", Some(api.token(Role::Agent)), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// One row per route of the permission matrix (docs/security.md): method, a path that reaches
/// the route, a body, and the least role that may use it (`None`: only agents). `/healthz` and
/// the endless event stream are checked on their own.
type Row = (&'static str, &'static str, Option<&'static str>, Option<Role>);

fn matrix() -> Vec<Row> {
    use Role::*;
    let task = r#"{"kind":"noop"}"#;
    let batch = r#"{"tasks":[{"kind":"noop"}]}"#;
    let text = r#"{"text":"hi"}"#;
    // method, path, body, who may (None: only agents)
    vec![
        ("GET", "/metrics", None, Some(Viewer)),
        ("GET", "/api/v1/status", None, Some(Viewer)),
        ("GET", "/api/v1/openapi.json", None, Some(Viewer)),
        ("GET", "/api/v1/kinds", None, Some(Viewer)),
        ("GET", "/api/v1/tasks", None, Some(Viewer)),
        ("GET", "/api/v1/tasks/1", None, Some(Viewer)),
        ("POST", "/api/v1/tasks", Some(task), Some(Operator)),
        ("POST", "/api/v1/tasks/batch", Some(batch), Some(Operator)),
        ("POST", "/api/v1/tasks/1/cancel", None, Some(Operator)),
        ("POST", "/api/v1/tasks/1/retry", None, Some(Operator)),
        ("GET", "/api/v1/workspaces", None, Some(Viewer)),
        ("GET", "/api/v1/search?q=x", None, Some(Viewer)),
        ("POST", "/api/v1/workspaces", Some(r#"{"path":"/nonexistent"}"#), Some(Admin)),
        ("DELETE", "/api/v1/workspaces/nope", None, Some(Admin)),
        ("POST", "/api/v1/workspaces/nope/index", None, Some(Operator)),
        ("GET", "/api/v1/agents", None, Some(Viewer)),
        ("GET", "/api/v1/agents/nobody", None, Some(Viewer)),
        ("DELETE", "/api/v1/agents/nobody", None, Some(Admin)),
        ("POST", "/api/v1/agents", Some(r#"{"name":"bad name"}"#), Some(Admin)),
        ("POST", "/api/v1/agents/nobody/drain", None, Some(Operator)),
        ("POST", "/api/v1/agents/nobody/resume", None, Some(Operator)),
        ("POST", "/api/v1/agents/nobody/stop", None, Some(Operator)),
        ("POST", "/api/v1/agents/nobody/restart", None, Some(Operator)),
        ("POST", "/api/v1/agents/nobody/messages", Some(text), Some(Operator)),
        ("POST", "/api/v1/agents/broadcast", Some(text), Some(Operator)),
        ("GET", "/api/v1/messages", None, Some(Operator)),
        ("POST", "/api/v1/tokens", Some(r#"{"role":"nobody"}"#), Some(Admin)),
        ("GET", "/api/v1/tokens", None, Some(Admin)),
        ("POST", "/api/v1/tokens/nope/revoke", None, Some(Admin)),
        ("GET", "/api/v1/audit", None, Some(Admin)),
        ("GET", "/api/v1/audit/verify", None, Some(Admin)),
        ("GET", "/api/v1/config", None, Some(Admin)),
        ("POST", "/agent/v1/register", Some(r#"{"protocol":1,"capabilities":[]}"#), None),
        ("POST", "/agent/v1/heartbeat", Some(r#"{"running":[]}"#), None),
        ("POST", "/agent/v1/claim", Some(r#"{"max":1}"#), None),
        ("POST", "/agent/v1/tasks/1/progress", Some(r#"{"fence":1,"percent":1}"#), None),
        ("POST", "/agent/v1/tasks/1/complete", Some(r#"{"fence":1}"#), None),
        (
            "POST",
            "/agent/v1/tasks/1/fail",
            Some(r#"{"fence":1,"error":{"class":"x","message":"y"}}"#),
            None,
        ),
        (
            "POST",
            "/agent/v1/reports",
            Some(r#"{"reports":[{"task_id":1,"fence":1,"result":1}]}"#),
            None,
        ),
        (
            "POST",
            "/agent/v1/tasks/1/children",
            Some(r#"{"fence":1,"tasks":[{"kind":"noop"}]}"#),
            None,
        ),
        ("POST", "/agent/v1/messages", Some(r#"{"broadcast":{},"body":1}"#), None),
        ("GET", "/agent/v1/messages", None, None),
        ("GET", "/agent/v1/me", None, None),
        ("POST", "/agent/v1/messages/ack", Some(r#"{"ids":[1]}"#), None),
        ("POST", "/agent/v1/deregister", Some(r#"{"reason":"x"}"#), None),
    ]
}

/// The permission matrix of docs/security.md, checked for every route and every role: a role
/// below the row's is refused (403), a role at or above it is not (whatever else the request
/// then meets: 404 for a missing agent, 400 for a bad body).
#[tokio::test]
async fn permission_matrix_is_enforced_route_by_route() {
    use Role::*;
    let api = Api::new().await;
    let rows = matrix();
    for (method, path, body, least) in rows {
        for role in [Viewer, Operator, Admin, Agent] {
            let allowed = match least {
                Some(least) => role.allows(least),
                None => role == Agent,
            };
            let (status, answer) = api.send(method, path, Some(api.token(role)), body).await;
            if allowed {
                assert!(
                    !matches!(status.as_u16(), 401 | 403),
                    "{role} {method} {path} should be allowed: {status} {answer}"
                );
            } else {
                assert_eq!(
                    status.as_u16(),
                    403,
                    "{role} {method} {path} should be refused: {answer}"
                );
            }
            let (status, _) = api.send(method, path, None, body).await;
            assert_eq!(status.as_u16(), 401, "{method} {path} without a token");
        }
    }
    // The event stream answers at once; its body never ends, so only the status is read.
    for role in [Viewer, Operator, Admin, Agent] {
        let request = axum::http::Request::builder()
            .uri("/api/v1/events")
            .header(header::AUTHORIZATION, format!("Bearer {}", api.token(role)))
            .body(Body::empty())
            .unwrap();
        let status = api.router.clone().oneshot(request).await.unwrap().status().as_u16();
        assert_eq!(status, if role == Agent { 403 } else { 200 }, "{role} GET /api/v1/events");
    }
}

#[tokio::test]
async fn submit_show_cancel_retry_and_idempotency_over_http() {
    let api = Api::new().await;
    let op = Some(api.token(Role::Operator));
    let (status, created) = api
        .send(
            "POST",
            "/api/v1/tasks",
            op,
            Some(r#"{"kind":"noop","priority":"high","idempotency_key":"k1"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["task"]["id"].as_i64().unwrap();
    assert_eq!(created["task"]["priority"], "high");
    let (status, again) = api
        .send("POST", "/api/v1/tasks", op, Some(r#"{"kind":"noop","idempotency_key":"k1"}"#))
        .await;
    assert_eq!(
        (status, again["created"].as_bool(), again["task"]["id"].as_i64()),
        (StatusCode::OK, Some(false), Some(id))
    );

    let (_, cancelled) = api.send("POST", &format!("/api/v1/tasks/{id}/cancel"), op, None).await;
    assert_eq!(cancelled["state"], "cancelled");
    let (status, again) = api.send("POST", &format!("/api/v1/tasks/{id}/cancel"), op, None).await;
    assert_eq!((status.as_u16(), again["code"].as_str()), (409, Some("invalid_transition")));
    let (_, retried) = api.send("POST", &format!("/api/v1/tasks/{id}/retry"), op, None).await;
    assert_eq!(retried["state"], "queued");
    let (_, shown) = api.send("GET", &format!("/api/v1/tasks/{id}"), op, None).await;
    let events: Vec<&str> =
        shown["history"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, vec!["submitted", "cancelled", "retried"]);

    let (status, batch) = api
        .send(
            "POST",
            "/api/v1/tasks/batch",
            op,
            Some(r#"{"tasks":[{"kind":"noop"},{"kind":"noop","priority":"low"}]}"#),
        )
        .await;
    assert_eq!((status, batch["tasks"].as_array().map(Vec::len)), (StatusCode::CREATED, Some(2)));
    let (_, listed) = api.send("GET", "/api/v1/tasks?state=queued&limit=2", op, None).await;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 2);
    assert!(listed["next_before"].is_i64(), "a full page has a cursor: {listed}");

    let (status, metrics) = api.send("GET", "/metrics", op, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    assert!(text.contains("dreamos_tasks{state=\"queued\",priority=\"low\"} 1"), "{text}");
    assert!(text.contains("dreamos_dispatch_latency_seconds_bucket"), "{text}");
    let (status, health) = api.send("GET", "/healthz", None, None).await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ok")));
}

/// Request parsing never panics and never answers 5xx, whatever the body: arbitrary bytes,
/// and JSON-shaped values of arbitrary structure, sent to every route that takes a body, with
/// the most privileged token the route accepts.
#[test]
fn arbitrary_bodies_never_crash_the_api() {
    use proptest::prelude::*;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let api = runtime.block_on(Api::new());
    let routes: Vec<(&str, Role)> = vec![
        ("/api/v1/tasks", Role::Admin),
        ("/api/v1/tasks/batch", Role::Admin),
        ("/api/v1/workspaces", Role::Admin),
        ("/api/v1/agents", Role::Admin),
        ("/api/v1/agents/broadcast", Role::Admin),
        ("/api/v1/tokens", Role::Admin),
        ("/agent/v1/register", Role::Agent),
        ("/agent/v1/heartbeat", Role::Agent),
        ("/agent/v1/claim", Role::Agent),
        ("/agent/v1/reports", Role::Agent),
        ("/agent/v1/messages", Role::Agent),
        ("/agent/v1/tasks/1/children", Role::Agent),
        ("/agent/v1/deregister", Role::Agent),
    ];
    let json_value = proptest::arbitrary::any::<String>().prop_map(|s| json!(s)).boxed();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        json_value,
    ];
    let value = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("kind".to_string()),
                    Just("payload".to_string()),
                    Just("tasks".to_string()),
                    Just("protocol".to_string()),
                    Just("capabilities".to_string()),
                    Just("max".to_string()),
                    Just("fence".to_string()),
                    Just("running".to_string()),
                    Just("role".to_string()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let bodies = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        value.prop_map(|v| v.to_string()),
    ];
    let config =
        ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(route in 0..routes.len(), body in bodies)| {
        let (path, role) = routes[route];
        let (status, answer) = runtime.block_on(api.send("POST", path, Some(api.token(role)), Some(&body)));
        prop_assert!(status.as_u16() < 500, "{path} answered {status} to {body:?}: {answer}");
    });
}

/// Whether a concrete request path reaches an OpenAPI path template.
fn reaches(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap();
    let (a, b): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(t, p)| t.starts_with('{') || t == p)
}

/// The OpenAPI document describes every route the node serves, and nothing it does not: each
/// row of the permission matrix (plus `/healthz` and the event stream) is one documented
/// operation, and each documented operation is one row. Every operation but `/healthz` asks for
/// the bearer token and documents the error answers it can give, in the one error shape.
#[tokio::test]
async fn openapi_document_describes_every_route() {
    let api = Api::new().await;
    let (status, doc) =
        api.send("GET", "/api/v1/openapi.json", Some(api.token(Role::Viewer)), None).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut routes: Vec<(&str, &str)> = matrix().iter().map(|(m, p, _, _)| (*m, *p)).collect();
    routes.extend([("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/api/v1/events")]);
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (template, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            documented.push((method.to_uppercase(), template.clone()));
            let responses = operation["responses"].as_object().unwrap();
            if template != "/healthz" && template != "/readyz" {
                assert_eq!(operation["security"], json!([{ "bearer": [] }]), "{template}");
                for status in ["401", "403", "429"] {
                    let schema = &responses[status]["content"]["application/json"]["schema"];
                    assert_eq!(schema["$ref"], "#/components/schemas/ErrorBody", "{template}");
                }
            }
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {template}");
        }
    }
    for (method, path) in &routes {
        let found = documented.iter().filter(|(m, t)| m == method && reaches(t, path)).count();
        assert_eq!(found, 1, "{method} {path} is not documented exactly once");
    }
    for (method, template) in &documented {
        assert!(
            routes.iter().any(|(m, p)| m == method && reaches(template, p)),
            "{method} {template} is documented but no route of the matrix reaches it"
        );
    }
    // The protocol's messages are described by the schemas the node validates them with.
    let claim = &doc["paths"]["/agent/v1/claim"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    assert_eq!(claim, "#/components/schemas/protocol.claim");
    assert_eq!(doc["components"]["schemas"]["protocol.claim"]["required"], json!(["max"]));
    let (status, _) = api.send("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Failures the handlers never see (a path segment that does not parse, a method the route
/// lacks) still answer in the one error shape.
#[tokio::test]
async fn errors_outside_the_handlers_keep_the_error_shape() {
    let api = Api::new().await;
    let agent = Some(api.token(Role::Agent));
    let (status, body) = api
        .send("POST", "/agent/v1/tasks/not-a-number/progress", agent, Some(r#"{"fence":1}"#))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "bad_request", "{body}");
    let (status, body) = api.send("PUT", "/api/v1/tasks", Some(api.token(Role::Admin)), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed", "{body}");
}
