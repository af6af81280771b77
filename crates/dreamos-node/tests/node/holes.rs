//! The holes a security review found where paths bypassed the HTTP handlers' checks, each
//! tried again as the attacker did: every one must stay closed.

use std::path::Path;
use std::time::Duration;

use dreamos_node::Config;
use serde_json::{Value, json};

use crate::{Api, config, eventually};

/// What the attacks need beyond the shared [`Api`].
impl Api {
    /// A token's secret, issued by the admin.
    async fn secret(&self, body: Value) -> String {
        self.token(body).await.1
    }

    /// Submits as `token`; answers (status, answer).
    async fn submit(&self, token: &str, task: Value) -> (u16, Value) {
        self.post(token, "/api/v1/tasks", task).await
    }

    /// Waits for a task to finish; answers it.
    async fn finished(&self, id: &Value) -> Value {
        self.get(&self.admin, &format!("/api/v1/tasks/{id}?wait_ms=30000")).await.1
    }

    async fn stop(self) {
        self.node.shutdown().await.unwrap();
    }
}

/// A script that, if ever run, leaves a mark: what an attacker would plant.
fn plant(dir: &Path, name: &str, mark: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\ntouch {}\n", mark.display())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_the_nodes_own_programs_whatever_the_payload_says() {
    let dir = tempfile::tempdir().unwrap();
    let evil = tempfile::tempdir().unwrap();
    let mark = evil.path().join("ran");
    for name in ["echo", "printf", "prlimit", "sh"] {
        plant(evil.path(), name, &mark);
    }
    let mut cfg = config(dir.path(), 1);
    cfg.set_exec_allow(&["echo", "printf", "pwd"]);
    let api = Api::start(cfg).await;
    let evil_path = format!("{}:/usr/bin:/bin", evil.path().display());
    for (program, env) in [
        ("echo", json!({ "PATH": evil_path })),
        ("printf", json!({ "PATH": evil_path })),
        ("echo", json!({ "path": evil_path })),
        ("echo", json!({ "LD_PRELOAD": evil.path().join("x.so") })),
        ("echo", json!({ "LD_LIBRARY_PATH": evil.path() })),
        ("printf", json!({ "BASH_ENV": evil.path().join("echo") })),
    ] {
        let task = json!({ "kind": "exec", "payload": { "program": program, "args": ["%s", "x"], "env": env } });
        let (status, v) = api.submit(&api.admin, task).await;
        assert_eq!(status, 201, "{v}");
        let t = api.finished(&v["task"]["id"]).await;
        assert_eq!(
            (t["state"].as_str(), t["error"]["class"].as_str()),
            (Some("failed"), Some("env_not_allowed")),
            "{program} {env}: {t}"
        );
    }
    // A program named by a path the caller chose is not an allowed program either.
    let task = json!({ "kind": "exec", "payload": { "program": evil.path().join("echo") } });
    let t = api.finished(&api.submit(&api.admin, task).await.1["task"]["id"]).await;
    assert_eq!(t["error"]["class"], "program_not_allowed", "{t}");
    // The allowed `echo` is the node's own, found in its own PATH when it started.
    let task = json!({ "kind": "exec", "payload": { "program": "echo", "args": ["hello"] } });
    let t = api.finished(&api.submit(&api.admin, task).await.1["task"]["id"]).await;
    assert_eq!(t["result"]["stdout"], "hello\n", "{t}");
    assert!(!mark.exists(), "a planted program ran");

    // `cwd`: a fresh directory of the run's own unless one under exec_cwd_roots is named.
    let task = json!({ "kind": "exec", "payload": { "program": "pwd" } });
    let t = api.finished(&api.submit(&api.admin, task).await.1["task"]["id"]).await;
    let ran_in = t["result"]["stdout"].as_str().unwrap().trim().to_string();
    let data = dir.path().canonicalize().unwrap();
    assert!(Path::new(&ran_in).starts_with(data.join("exec")), "{ran_in}");
    assert!(!Path::new(&ran_in).exists(), "the run's directory is removed after it");
    for cwd in ["/etc", "/", "/root"] {
        let task = json!({ "kind": "exec", "payload": { "program": "pwd", "cwd": cwd } });
        let t = api.finished(&api.submit(&api.admin, task).await.1["task"]["id"]).await;
        assert_eq!(t["error"]["class"], "cwd_not_allowed", "{cwd}: {t}");
    }
    api.stop().await;
}

#[test]
fn a_configuration_cannot_allow_payloads_to_set_the_search_path_or_loader() {
    for name in ["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "ld_audit", "PYTHONPATH", "BASH_ENV"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dreamos.toml"), format!("exec_env_allow = [\"{name}\"]\n"))
            .unwrap();
        let err = Config::load(dir.path(), None, Default::default()).unwrap_err();
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

/// Whether a process is gone (or a zombie no one reaped: it runs nothing).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_kills_everything_a_run_started_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let work_dir = work.path().canonicalize().unwrap();
    let mut cfg = config(dir.path(), 2);
    cfg.set_exec_allow(&["sh"]);
    cfg.exec_cwd_roots = vec![work_dir.clone()];
    let api = Api::start(cfg).await;
    // A background child keeps the output pipe open after its parent exits: the run still
    // ends with the parent, and the child with it.
    let detached = json!({ "kind": "exec", "payload": {
        "program": "sh", "args": ["-c", "sleep 300 & echo $! > detached.pid; echo started"],
        "cwd": work_dir,
    } });
    // A run past its timeout takes its children along.
    let timed_out = json!({ "kind": "exec", "payload": {
        "program": "sh", "args": ["-c", "sleep 300 & echo $! > timed.pid; sleep 300"],
        "cwd": work_dir, "timeout_ms": 500,
    }, "max_attempts": 1 });
    let a = api.submit(&api.admin, detached).await.1["task"]["id"].clone();
    let b = api.submit(&api.admin, timed_out).await.1["task"]["id"].clone();
    let t = api.finished(&a).await;
    assert_eq!(
        (t["state"].as_str(), t["result"]["stdout"].as_str()),
        (Some("succeeded"), Some("started\n")),
        "{t}"
    );
    let t = api.finished(&b).await;
    assert_eq!(
        (t["state"].as_str(), t["error"]["class"].as_str()),
        (Some("failed"), Some("timeout")),
        "{t}"
    );
    let pid = |name: &str| -> i32 {
        std::fs::read_to_string(work_dir.join(name)).unwrap().trim().parse().unwrap()
    };
    for name in ["detached.pid", "timed.pid"] {
        let p = pid(name);
        assert!(
            eventually(Duration::from_secs(10), || async move { gone(p) }).await,
            "{name}: {p} outlived its run"
        );
    }
    api.stop().await;
}

/// Whether this machine lets the node make a pids cgroup (as root with cgroup v1 or v2).
fn cgroups_available() -> bool {
    let probe =
        Path::new("/sys/fs/cgroup/pids").join(format!("dreamos-probe-{}", std::process::id()));
    let v1 = std::fs::create_dir(&probe).is_ok() && std::fs::remove_dir(&probe).is_ok();
    v1 || std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "pids"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_contained_by_the_process_limit() {
    if !cgroups_available() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI needs a pids cgroup for this test"
        );
        eprintln!("SKIPPED: this machine gives no pids cgroup to contain `exec` programs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1);
    cfg.set_exec_allow(&["python3"]);
    cfg.exec_max_processes = 16;
    let api = Api::start(cfg).await;
    // Tries to keep 100 children alive at once, counting those that start; at most 16
    // processes may exist, the parent among them.
    let script = "import os, time\nok = 0\nfor _ in range(100):\n    try:\n        pid = os.fork()\n    except OSError:\n        continue\n    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n    ok += 1\nprint(ok)\n";
    let bomb = json!({ "kind": "exec", "max_attempts": 1, "payload": {
        "program": "python3", "timeout_ms": 20000, "args": ["-c", script],
    } });
    let t = api.finished(&api.submit(&api.admin, bomb).await.1["task"]["id"]).await;
    let started: u32 =
        t["result"]["stdout"].as_str().unwrap_or("100").trim().parse().unwrap_or(100);
    assert!(started < 16, "{started} processes started under a limit of 16: {t}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_spawns_children_with_its_own_rights_not_the_parents() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(config(dir.path(), 0)).await;
    let create = |caps: Vec<&'static str>, name: &'static str| {
        let body = json!({ "name": name, "capabilities": caps, "slots": 2 });
        let (http, base, admin) = (api.http.clone(), api.base.clone(), api.admin.clone());
        async move {
            let (s, v) =
                crate::http_call(&http, &base, &admin, "POST", "/api/v1/agents", Some(body)).await;
            assert_eq!(s, 201, "{v}");
            v["token"].as_str().unwrap().to_string()
        }
    };
    let plain = create(vec!["noop"], "plain").await;
    let trusted = create(vec!["noop", "exec"], "trusted").await;
    for (agent, caps) in [(&plain, vec!["noop"]), (&trusted, vec!["noop", "exec"])] {
        let caps: Vec<Value> = caps.iter().map(|c| json!({ "name": c })).collect();
        let (s, v) = api
            .post(
                agent,
                "/agent/v1/register",
                json!({ "protocol": 1, "capabilities": caps, "slots": 2 }),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    // An admin's task, claimed by an agent granted only `noop`.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (s, v) = api.submit(&api.admin, json!({ "kind": "noop" })).await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["task"]["id"].clone());
    }
    let claim = |agent: String| {
        let (http, base) = (api.http.clone(), api.base.clone());
        async move {
            for _ in 0..100 {
                crate::http_call(
                    &http,
                    &base,
                    &agent,
                    "POST",
                    "/agent/v1/heartbeat",
                    Some(json!({ "running": [] })),
                )
                .await;
                let (_, v) = crate::http_call(
                    &http,
                    &base,
                    &agent,
                    "POST",
                    "/agent/v1/claim",
                    Some(json!({ "max": 1, "wait_ms": 50 })),
                )
                .await;
                if let Some(t) = v["tasks"].as_array().and_then(|a| a.first()) {
                    return t.clone();
                }
            }
            panic!("nothing to claim");
        }
    };
    let held = claim(plain.clone()).await;
    let exec_child = json!({ "fence": held["fence"], "tasks": [
        { "kind": "exec", "payload": { "program": "echo", "args": ["as admin"] } },
    ] });
    let path = format!("/agent/v1/tasks/{}/children", held["id"]);
    let (status, v) = api.post(&plain, &path, exec_child.clone()).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    // Nor a kind it was not granted, hidden in a fan-out.
    let nested = json!({ "fence": held["fence"], "tasks": [
        { "kind": "fanout", "payload": { "tasks": [{ "kind": "exec", "payload": { "program": "echo" } }] } },
    ] });
    assert_eq!(api.post(&plain, &path, nested).await.0, 403);
    // What it was granted, it may spawn; the child is the agent's, not the admin's.
    let noop_child = json!({ "fence": held["fence"], "tasks": [{ "kind": "noop" }] });
    let (status, v) = api.post(&plain, &path, noop_child).await;
    assert_eq!(status, 201, "{v}");
    let (_, child) = api.get(&api.admin, &format!("/api/v1/tasks/{}", v["children"][0])).await;
    assert!(child["submitter"].as_str().unwrap().starts_with("agent:"), "{child}");
    // An agent an admin explicitly granted `exec` may spawn it.
    let held = claim(trusted.clone()).await;
    let exec_child = json!({ "fence": held["fence"], "tasks": [
        { "kind": "exec", "payload": { "program": "echo", "args": ["granted"] } },
    ] });
    let (status, v) =
        api.post(&trusted, &format!("/agent/v1/tasks/{}/children", held["id"]), exec_child).await;
    assert_eq!(status, 201, "{v}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_mints_nothing_above_its_role_or_beyond_its_scope() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(config(dir.path(), 0)).await;
    let scoped_admin = api.secret(json!({ "role": "admin", "workspaces": ["alpha"] })).await;
    let operator = api.secret(json!({ "role": "operator" })).await;
    let (other_id, _) =
        api.token_by(&api.admin.clone(), json!({ "role": "viewer", "workspaces": ["beta"] })).await;
    for body in [
        json!({ "role": "admin" }),
        json!({ "role": "viewer" }),
        json!({ "role": "operator", "workspaces": ["beta"] }),
        json!({ "role": "operator", "workspaces": ["alpha", "beta"] }),
    ] {
        let (status, v) = api.post(&scoped_admin, "/api/v1/tokens", body.clone()).await;
        assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")), "{body}: {v}");
    }
    let (status, v) = api
        .post(
            &scoped_admin,
            "/api/v1/tokens",
            json!({ "role": "operator", "workspaces": ["alpha"] }),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    for role in ["operator", "admin", "viewer"] {
        assert_eq!(api.post(&operator, "/api/v1/tokens", json!({ "role": role })).await.0, 403);
    }
    // A scoped admin sees only tokens within its scope, and revokes no other.
    let (_, list) = api.get(&scoped_admin, "/api/v1/tokens").await;
    let scopes: Vec<Value> =
        list["tokens"].as_array().unwrap().iter().map(|t| t["workspaces"].clone()).collect();
    assert!(!scopes.is_empty() && scopes.iter().all(|s| *s == json!(["alpha"])), "{list}");
    let (status, _) =
        api.post(&scoped_admin, &format!("/api/v1/tokens/{other_id}/revoke"), json!({})).await;
    assert_eq!(status, 404);
    // The audit log spans every workspace: not for a scoped admin.
    assert_eq!(api.get(&scoped_admin, "/api/v1/audit").await.0, 403);
    assert_eq!(api.get(&scoped_admin, "/api/v1/audit/verify").await.0, 403);
    // Lifetimes are bounded: no overflow into an already expired token.
    let (status, v) = api
        .post(&api.admin, "/api/v1/tokens", json!({ "role": "viewer", "expires_in_ms": i64::MAX }))
        .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_hold_through_fan_out_idempotency_retry_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(config(dir.path(), 0)).await;
    let alpha = api.secret(json!({ "role": "operator", "workspaces": ["alpha"] })).await;
    let operator = api.secret(json!({ "role": "operator" })).await;
    // Fan-out: the tasks it carries are checked as if submitted one by one, at any depth.
    let search_beta =
        json!({ "kind": "search", "payload": { "query": "secret", "workspace": "beta" } });
    for payload in [
        json!({ "tasks": [search_beta] }),
        json!({ "tasks": [{ "kind": "noop" }, { "kind": "fanout", "payload": { "tasks": [search_beta] } }] }),
    ] {
        let (status, v) = api.submit(&alpha, json!({ "kind": "fanout", "payload": payload })).await;
        assert_eq!(status, 404, "{v}");
    }
    let exec = json!({ "kind": "exec", "payload": { "program": "echo" } });
    let (status, _) =
        api.submit(&operator, json!({ "kind": "fanout", "payload": { "tasks": [exec] } })).await;
    assert_eq!(status, 403, "an operator's fan-out cannot carry `exec`");
    let (status, _) = api
        .post(
            &operator,
            "/api/v1/tasks/batch",
            json!({ "tasks": [{ "kind": "fanout", "payload": { "tasks": [exec] } }] }),
        )
        .await;
    assert_eq!(status, 403);

    // Idempotency keys are their submitter's own, on every route that takes one.
    let secret =
        json!({ "kind": "noop", "payload": { "secret": "admin's" }, "idempotency_key": "nightly" });
    let (status, mine) = api.submit(&api.admin, secret).await;
    assert_eq!(status, 201);
    assert_eq!(mine["task"]["idempotency_key"], "nightly", "shown as given: {mine}");
    let reuse = json!({ "kind": "noop", "idempotency_key": "nightly" });
    let (status, theirs) = api.submit(&alpha, reuse.clone()).await;
    assert_eq!((status, theirs["created"].as_bool()), (201, Some(true)), "{theirs}");
    assert_ne!(theirs["task"]["id"], mine["task"]["id"]);
    assert!(!theirs.to_string().contains("admin's"));
    let (status, v) = api.post(&operator, "/api/v1/tasks/batch", json!({ "tasks": [reuse] })).await;
    assert_eq!(status, 201);
    assert_ne!(v["tasks"][0]["id"], mine["task"]["id"], "{v}");
    let (status, again) =
        api.submit(&api.admin, json!({ "kind": "noop", "idempotency_key": "nightly" })).await;
    assert_eq!(
        (status, &again["task"]["id"]),
        (200, &mine["task"]["id"]),
        "the owner still matches"
    );
    // A fan-out child's key cannot be guessed into.
    let fan = json!({ "kind": "fanout", "payload": { "tasks": [{ "kind": "noop", "payload": { "child": "secret" } }] } });
    let (_, parent) = api.submit(&api.admin, fan).await;
    let guess =
        json!({ "kind": "noop", "idempotency_key": format!("fanout:{}:0", parent["task"]["id"]) });
    let (status, v) = api.submit(&operator, guess).await;
    assert_eq!((status, v["created"].as_bool()), (201, Some(true)), "{v}");

    // Retry and cancel need the right to submit that task.
    let delayed = json!({ "kind": "exec", "run_at_ms": 32503680000000_i64, "payload": { "program": "echo" } });
    let (_, admins) = api.submit(&api.admin, delayed).await;
    let id = &admins["task"]["id"];
    let (status, v) = api.post(&operator, &format!("/api/v1/tasks/{id}/cancel"), json!({})).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    assert_eq!(api.post(&api.admin, &format!("/api/v1/tasks/{id}/cancel"), json!({})).await.0, 200);
    let (status, v) = api.post(&operator, &format!("/api/v1/tasks/{id}/retry"), json!({})).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    assert_eq!(api.post(&api.admin, &format!("/api/v1/tasks/{id}/retry"), json!({})).await.0, 200);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_never_expose_the_data_dir_or_system_trees() {
    // The node's data dir lies inside the tree registered as a workspace.
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("app.py"), "def handler():\n    return 1\n").unwrap();
    let data = tree.path().join("node-data");
    let mut cfg = config(&data, 1);
    cfg.workspace_roots = vec![std::env::temp_dir().canonicalize().unwrap()];
    let api = Api::start(cfg).await;
    let (status, v) = api
        .post(&api.admin, "/api/v1/workspaces", json!({ "name": "app", "path": tree.path() }))
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(api.finished(&v["task"]["id"]).await["state"], "succeeded");
    let viewer = api.secret(json!({ "role": "viewer" })).await;
    let (status, v) = api.get(&viewer, "/api/v1/search?q=handler&workspace=app").await;
    assert_eq!(status, 200);
    assert!(v.to_string().contains("app.py"), "{v}");
    for q in ["/dros_/", "dros", "/secret/", "/legacy_until/"] {
        let (_, v) =
            api.get(&viewer, &format!("/api/v1/search?q={}&workspace=app", urlencode(q))).await;
        assert!(!v.to_string().contains("node-data"), "{q}: {v}");
    }
    // The data dir itself, system trees and anything outside workspace_roots are refused.
    for path in [data.clone(), "/etc".into(), "/".into(), "/proc".into(), "/usr/share".into()] {
        let (status, v) = api.post(&api.admin, "/api/v1/workspaces", json!({ "path": path })).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (403, Some("forbidden")),
            "{}: {v}",
            path.display()
        );
    }
    api.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(
            |b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_requests_cannot_fill_the_disk_through_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(config(dir.path(), 0)).await;
    let long = "x".repeat(60_000);
    for _ in 0..200 {
        let (status, _) = api.get("dros_nobody_nothing", &format!("/api/v1/tasks/{long}")).await;
        assert_eq!(status, 401);
    }
    let (_, v) = api.get(&api.admin, "/api/v1/audit?limit=10000").await;
    let failures: Vec<&Value> =
        v["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "auth.failed").collect();
    assert_eq!(failures.len(), 1, "coalesced: {failures:?}");
    assert!(failures[0]["target"].as_str().unwrap().len() < 1_000, "targets are cut");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_one_address_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.header_read_timeout_ms = 300;
    cfg.max_connections_per_address = 20;
    let api = Api::start(cfg).await;
    // A request head that never ends: the node closes the connection.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut slow = tokio::net::TcpStream::connect(api.node.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the slow connection stayed open: {read:?}");
    // Many idle connections from one address: past its cap they are closed at once, and
    // another address is still served.
    let mut hogs = Vec::new();
    for _ in 0..40 {
        hogs.push(tokio::net::TcpStream::connect(api.node.addr).await.unwrap());
    }
    let mut closed = 0;
    for hog in &mut hogs {
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(100), hog.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 20, "{closed} of 40 connections from one address were closed");
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let r = other.get(format!("{}/healthz", api.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(hogs);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_reach_the_credential_that_asked_not_every_token_with_its_label() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(config(dir.path(), 0)).await;
    // Two operators with the same default label.
    let first = api.secret(json!({ "role": "operator" })).await;
    let second = api.secret(json!({ "role": "operator" })).await;
    let (s, v) = api
        .post(&api.admin, "/api/v1/agents", json!({ "name": "answerer", "capabilities": ["noop"] }))
        .await;
    assert_eq!(s, 201, "{v}");
    let agent = v["token"].as_str().unwrap().to_string();
    let (s, _) =
        api.post(&first, "/api/v1/agents/answerer/messages", json!({ "body": "ping" })).await;
    assert_eq!(s, 201);
    let (_, inbox) = api.get(&agent, "/agent/v1/messages").await;
    let message = inbox["messages"][0].clone();
    let reply = json!({ "to": message["sender"], "body": "pong", "correlation_id": message["correlation_id"] });
    let (s, v) = api.post(&agent, "/agent/v1/messages", reply).await;
    assert_eq!(s, 201, "{v}");
    let (_, theirs) = api.get(&second, "/api/v1/messages").await;
    assert_eq!(theirs["messages"], json!([]), "another operator read the reply: {theirs}");
    let (_, mine) = api.get(&first, "/api/v1/messages").await;
    assert_eq!(mine["messages"][0]["body"], "pong", "{mine}");
    // Audit actors name the credential.
    let (_, audit) = api.get(&api.admin, "/api/v1/audit?limit=1000").await;
    let actors: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .filter(|a| a.starts_with("operator:"))
        .collect();
    assert!(actors.iter().all(|a| a.contains('#')), "{actors:?}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_is_private_and_test_switches_are_off() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let api = Api::start(config(&data, 1)).await;
    let (s, v) =
        api.submit(&api.admin, json!({ "kind": "noop", "payload": { "crash": true } })).await;
    assert_eq!(s, 201);
    assert_eq!(
        api.finished(&v["task"]["id"]).await["state"],
        "succeeded",
        "the crash switch is off"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let m = mode(&path);
        assert_eq!(m & 0o077, 0, "{} is mode {m:o}", path.display());
    }
    api.stop().await;
}
