//! Tokens (roles, expiry, revocation, workspace scopes) and the audit trail, over HTTP.

use std::time::Duration;

use dreamos_node::Node;
use serde_json::{Value, json};

use crate::{Api, config, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_and_are_revoked_and_every_step_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(config(dir.path(), 1)).await;
    let (viewer_id, viewer) = api.token(json!({ "role": "viewer", "label": "dash" })).await;
    assert_eq!(api.get(&viewer, "/api/v1/status").await.0, 200);
    // A viewer may not submit: denied, and the denial is audited.
    let (status, v) = api.post(&viewer, "/api/v1/tasks", json!({ "kind": "noop" })).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")));
    let (_, v) =
        api.post(&api.admin, &format!("/api/v1/tokens/{viewer_id}/revoke"), json!({})).await;
    assert!(v["revoked"]["revoked_at_ms"].is_i64(), "{v}");
    let (status, v) = api.get(&viewer, "/api/v1/status").await;
    assert_eq!((status, v["message"].as_str()), (401, Some("missing or invalid credentials")));
    // An expired token's holder is told it expired, so they know to ask for a new one...
    let (_, short) = api.token(json!({ "role": "operator", "expires_in_ms": 1 })).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            api.get(&short, "/api/v1/status").await.0 == 401
        })
        .await
    );
    let (_, v) = api.get(&short, "/api/v1/status").await;
    assert_eq!(v["code"], "unauthorized");
    assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");
    // ...but only with its secret: the same id with a wrong secret learns nothing.
    let (id, _) = short.strip_prefix("dros_").unwrap().split_once('_').unwrap();
    let (status, v) = api.get(&format!("dros_{id}_{}", "0".repeat(64)), "/api/v1/status").await;
    assert_eq!((status, v["message"].as_str()), (401, Some("missing or invalid credentials")));
    let (status, v) = api.get("dros_nothere_secret", "/api/v1/status").await;
    assert_eq!((status, v["message"].as_str()), (401, Some("missing or invalid credentials")));
    // Agents' credentials come from `agent create`, not here.
    let (status, _) = api.post(&api.admin, "/api/v1/tokens", json!({ "role": "agent" })).await;
    assert_eq!(status, 400);
    let (_, list) = api.get(&api.admin, "/api/v1/tokens").await;
    let listed = list["tokens"].as_array().unwrap();
    assert!(listed.iter().all(|t| t.get("hash").is_none() && t.get("token").is_none()), "{list}");

    let entries = api.audit().await;
    let has = |actor: &str, action: &str, outcome: &str| {
        entries.iter().any(|e| {
            e["actor"].as_str().unwrap().starts_with(actor)
                && e["action"].as_str().unwrap().contains(action)
                && e["outcome"] == outcome
        })
    };
    assert!(has("admin:", "POST /api/v1/tokens", "201"), "{entries:#?}");
    assert!(has("viewer:dash", "denied POST /api/v1/tasks", "403"), "{entries:#?}");
    assert!(has("admin:", "POST /api/v1/tokens/{id}/revoke", "200"), "{entries:#?}");
    assert!(has("anonymous@127.0.0.1", "auth.failed", "401"), "{entries:#?}");
    let revoked = entries
        .iter()
        .find(|e| e["detail"] == "revoked")
        .expect("a refusal names its reason in the log");
    assert_eq!(revoked["action"], "auth.failed");
    assert!(entries.iter().any(|e| e["detail"] == "expired"));
    assert!(entries.iter().all(|e| e["request_id"].as_str().is_some_and(|r| !r.is_empty())));
    // Reads are not audited; the chain verifies.
    assert!(!entries.iter().any(|e| e["action"].as_str().unwrap().starts_with("GET")));
    let (_, v) = api.get(&api.admin, "/api/v1/audit/verify").await;
    assert_eq!(
        (v["ok"].as_bool(), v["entries"].as_u64()),
        (Some(true), Some(entries.len() as u64)),
        "{v}"
    );
    let (status, _) = api.get(&api.admin.replace("dros_", "dros_x"), "/api/v1/audit").await;
    assert_eq!(status, 401);
    api.node.shutdown().await.unwrap();
}

async fn wait_task(api: &Api, id: &Value) -> Value {
    let (_, t) = api.get(&api.admin, &format!("/api/v1/tasks/{id}?wait_ms=30000")).await;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_scoped_to_a_workspace_sees_nothing_of_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(config(dir.path(), 1)).await;
    let trees = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("alpha", "def shared_secret_alpha():\n    pass\n"),
        ("beta", "def shared_secret_beta():\n    pass\n"),
    ] {
        let root = trees.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("code.py"), body).unwrap();
        let (status, v) =
            api.post(&api.admin, "/api/v1/workspaces", json!({ "name": name, "path": root })).await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(wait_task(&api, &v["task"]["id"]).await["state"], "succeeded");
    }
    let (_, alpha) = api.token(json!({ "role": "operator", "workspaces": ["alpha"] })).await;
    let (_, v) = api.get(&alpha, "/api/v1/workspaces").await;
    let names: Vec<&str> =
        v["workspaces"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["alpha"]);
    let (status, v) = api.get(&alpha, "/api/v1/search?q=shared_secret").await;
    assert_eq!(status, 200, "{v}");
    let text = v.to_string();
    assert!(text.contains("shared_secret_alpha") && !text.contains("beta"), "{v}");
    let (status, _) = api.get(&alpha, "/api/v1/search?q=shared_secret&workspace=beta").await;
    assert_eq!(status, 404, "another workspace is as good as absent");
    let (status, _) = api.post(&alpha, "/api/v1/workspaces/beta/index", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = api
        .post(
            &alpha,
            "/api/v1/tasks",
            json!({ "kind": "search", "payload": { "query": "x", "workspace": "beta" } }),
        )
        .await;
    assert_eq!(status, 404);
    let (status, v) = api
        .post(&alpha, "/api/v1/tasks", json!({ "kind": "search", "payload": { "query": "x" } }))
        .await;
    assert_eq!(status, 403, "{v}");
    // The other workspace's tasks are invisible.
    let (_, v) = api.get(&alpha, "/api/v1/tasks?limit=100").await;
    let seen: Vec<String> =
        v["tasks"].as_array().unwrap().iter().map(|t| t["payload"].to_string()).collect();
    assert!(
        seen.iter().all(|p| !p.contains("beta")) && seen.iter().any(|p| p.contains("alpha")),
        "{seen:?}"
    );
    let (_, all) = api.get(&api.admin, "/api/v1/tasks?limit=100&kind=index").await;
    let beta_task = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["payload"]["workspace"] == "beta")
        .unwrap()["id"]
        .clone();
    assert_eq!(api.get(&alpha, &format!("/api/v1/tasks/{beta_task}")).await.0, 404);
    assert_eq!(
        api.post(&alpha, &format!("/api/v1/tasks/{beta_task}/retry"), json!({})).await.0,
        404
    );
    api.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_token_and_address_and_submission_quotas() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.rate_limit_per_token = 0.2; // bursts of one request, refilled every 5 s
    let node = Node::start(cfg).await.unwrap();
    let admin = std::fs::read_to_string(&node.admin_token_path).unwrap().trim().to_string();
    let api =
        Api { base: format!("http://{}", node.addr), node, http: reqwest::Client::new(), admin };
    // Issued straight in the store: the admin's own requests are limited too.
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let issued = dreamos_node::auth::issue(dreamos_node::auth::Role::Operator, "ops", 0, None);
        api.node.store.create_token(issued.record).await.unwrap();
        tokens.push(issued.token);
    }
    let (busy, calm) = (tokens[0].clone(), tokens[1].clone());
    assert_eq!(api.get(&busy, "/api/v1/status").await.0, 200);
    let r = api
        .http
        .get(format!("{}/api/v1/status", api.base))
        .bearer_auth(&busy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "rate_limited");
    assert_eq!(api.get(&calm, "/api/v1/status").await.0, 200, "another token is not limited");
    api.node.shutdown().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.submit_quota_per_minute = 5.0;
    let node = Node::start(cfg).await.unwrap();
    let admin = std::fs::read_to_string(&node.admin_token_path).unwrap().trim().to_string();
    let api =
        Api { base: format!("http://{}", node.addr), node, http: reqwest::Client::new(), admin };
    let (_, calm) = api.token(json!({ "role": "operator" })).await;
    // Submission quota: five tasks a minute for operators; admins are not limited.
    let five: Vec<Value> = (0..5).map(|_| json!({ "kind": "noop" })).collect();
    let (status, v) = api.post(&calm, "/api/v1/tasks/batch", json!({ "tasks": five })).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = api.post(&calm, "/api/v1/tasks", json!({ "kind": "noop" })).await;
    assert_eq!((status, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
    assert_eq!(api.post(&api.admin, "/api/v1/tasks", json!({ "kind": "noop" })).await.0, 201);
    api.node.shutdown().await.unwrap();

    // Per address: everything from one address counts, whatever the token.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.rate_limit_per_address = 0.2; // bursts of one request, refilled every 5 s
    let node = Node::start(cfg).await.unwrap();
    let admin = std::fs::read_to_string(&node.admin_token_path).unwrap().trim().to_string();
    let api =
        Api { base: format!("http://{}", node.addr), node, http: reqwest::Client::new(), admin };
    let mut statuses = Vec::new();
    for i in 0..3 {
        let token = if i % 2 == 0 { api.admin.clone() } else { "dros_nobody_x".to_string() };
        statuses.push(api.get(&token, "/api/v1/status").await.0);
    }
    assert_eq!(statuses, vec![200, 429, 429], "{statuses:?}");
    api.node.shutdown().await.unwrap();
}

/// Reads an SSE response until `want` appears in it (or 10 s pass); answers what was read.
async fn read_until(resp: &mut reqwest::Response, want: &str) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains(want) {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_delivers_changes_and_hides_other_workspaces() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(config(dir.path(), 1)).await;
    let (_, scoped) = api.token(json!({ "role": "viewer", "workspaces": ["alpha"] })).await;
    let open = |token: String| {
        let req = api.http.get(format!("{}/api/v1/events", api.base)).bearer_auth(token);
        async move { req.send().await.unwrap() }
    };
    let mut all = open(api.admin.clone()).await;
    let mut mine = open(scoped).await;
    assert_eq!(all.headers()["content-type"], "text/event-stream");
    let store = api.node.store.clone();
    let beta = dreamos_core::NewTask::new("search", json!({ "query": "x", "workspace": "beta" }));
    let beta = store.submit(vec![beta]).await.unwrap()[0].id;
    let noop =
        store.submit(vec![dreamos_core::NewTask::new("noop", json!({}))]).await.unwrap()[0].id;
    // The admin sees both tasks' changes, and the noop run to its end by the local agent.
    let text =
        read_until(&mut all, &format!("\"task_id\":{},\"kind\":\"noop\",\"at_ms\"", noop.0)).await;
    assert!(text.contains(&format!("\"task_id\":{}", beta.0)), "{text}");
    let text = text + &read_until(&mut all, "\"event\":\"succeeded\"").await;
    assert!(text.contains("event: task"), "{text}");
    // The scoped viewer sees the noop but nothing of workspace beta.
    let seen = read_until(&mut mine, "\"event\":\"succeeded\"").await;
    assert!(seen.contains(&format!("\"task_id\":{}", noop.0)), "{seen}");
    assert!(
        !seen.contains("beta") && !seen.contains(&format!("\"task_id\":{},", beta.0)),
        "{seen}"
    );
    // Agents' state changes stream too.
    let (status, _) = api
        .post(&api.admin, "/api/v1/agents", json!({ "name": "watched", "capabilities": ["noop"] }))
        .await;
    assert_eq!(status, 201);
    let text = read_until(&mut all, "event: agent").await;
    assert!(text.contains("\"reason\":\"created\""), "{text}");
    // A node stops with streams open: they end.
    drop(mine);
    tokio::time::timeout(Duration::from_secs(30), api.node.shutdown()).await.unwrap().unwrap();
    let mut rest = String::new();
    while let Ok(Some(chunk)) = all.chunk().await {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_and_connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.request_timeout_ms = 300;
    cfg.max_connections = 1;
    let node = Node::start(cfg).await.unwrap();
    let admin = std::fs::read_to_string(&node.admin_token_path).unwrap().trim().to_string();
    let api =
        Api { base: format!("http://{}", node.addr), node, http: reqwest::Client::new(), admin };
    let id =
        api.node.store.submit(vec![dreamos_core::NewTask::new("noop", json!({}))]).await.unwrap()
            [0]
        .id;
    // Nothing runs the task: a wait for it outlasts the request timeout.
    let (status, v) = api.get(&api.admin, &format!("/api/v1/tasks/{}?wait_ms=60000", id.0)).await;
    assert_eq!((status, v["code"].as_str()), (503, Some("unavailable")), "{v}");
    drop(api.http);
    // One connection at most: while another is open, a new client is served `/healthz` only
    // (a load balancer still sees a live node), and everything else is 503.
    let hog = tokio::net::TcpStream::connect(api.node.addr).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/healthz", api.base);
    let r = client.get(format!("{}/api/v1/status", api.base)).bearer_auth(&api.admin).send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unavailable");
    assert_eq!(reqwest::Client::new().get(&url).send().await.unwrap().status(), 200);
    drop((hog, client));
    let status = |token: String| {
        let url = format!("{}/api/v1/status", api.base);
        async move { reqwest::Client::new().get(url).bearer_auth(token).send().await }
    };
    assert!(
        eventually(Duration::from_secs(10), || {
            let s = status(api.admin.clone());
            async move { s.await.is_ok_and(|r| r.status() == 200) }
        })
        .await,
        "served again once the other connection closed"
    );
    api.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"])
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if made.as_ref().map_or(true, |o| !o.status.success()) {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "openssl is required in CI");
        eprintln!("SKIPPED: openssl cannot make a test certificate: {made:?}");
        return;
    }
    let mut cfg = config(dir.path(), 0);
    cfg.tls_cert = Some(cert.clone());
    cfg.tls_key = Some(key);
    let node = Node::start(cfg).await.unwrap();
    assert_eq!(node.scheme, "https");
    let trusted = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let token = std::fs::read_to_string(&node.admin_token_path).unwrap().trim().to_string();
    let r = trusted
        .get(format!("https://{}/api/v1/status", node.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP gets no answer, and a client that does not trust the certificate refuses it.
    assert!(reqwest::get(format!("http://{}/healthz", node.addr)).await.is_err());
    assert!(reqwest::get(format!("https://{}/healthz", node.addr)).await.is_err());
    node.shutdown().await.unwrap();

    let mut cfg = config(dir.path(), 0);
    cfg.tls_cert = Some(dir.path().join("missing.pem"));
    cfg.tls_key = Some(dir.path().join("missing-key.pem"));
    let err = Node::start(cfg).await.err().expect("a missing certificate is an error");
    assert!(format!("{err:#}").contains("missing.pem"), "{err:#}");
}
