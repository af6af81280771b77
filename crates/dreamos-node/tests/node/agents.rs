//! Remote agents through the node's HTTP API: identity, the protocol's checks, a Python agent,
//! drain, lost agents and leadership.

use std::sync::Arc;
use std::time::Duration;

use dreamos_core::{NewTask, TaskId, TaskState};
use dreamos_node::{Config, Node};
use dreamos_store::Store;
use serde_json::{Value, json};

use crate::{config, eventually};

struct Remote {
    node: Node,
    http: reqwest::Client,
    base: String,
    admin: String,
}

impl Remote {
    async fn start(cfg: Config) -> Self {
        let node = Node::start(cfg).await.unwrap();
        let admin = std::fs::read_to_string(&node.admin_token_path).unwrap().trim().to_string();
        let base = format!("http://{}", node.addr);
        Self { node, http: reqwest::Client::new(), base, admin }
    }

    fn store(&self) -> Arc<dyn Store> {
        self.node.store.clone()
    }

    async fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        crate::http_call(&self.http, &self.base, token, method, path, body).await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(token, "POST", path, Some(body)).await
    }

    /// Creates an agent; answers (id, token).
    async fn create(&self, name: &str, caps: &[&str], slots: u32) -> (String, String) {
        let (status, v) = self
            .post(
                &self.admin,
                "/api/v1/agents",
                json!({ "name": name, "capabilities": caps, "slots": slots }),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        (v["id"].as_str().unwrap().into(), v["token"].as_str().unwrap().into())
    }

    async fn register(&self, token: &str, caps: &[&str], labels: Value) -> (u16, Value) {
        let caps: Vec<Value> = caps.iter().map(|c| json!({ "name": c })).collect();
        self.post(
            token,
            "/agent/v1/register",
            json!({ "protocol": 1, "capabilities": caps, "labels": labels, "slots": 2 }),
        )
        .await
    }

    async fn claim(&self, token: &str, wait_ms: u64) -> Vec<Value> {
        let (status, v) =
            self.post(token, "/agent/v1/claim", json!({ "max": 2, "wait_ms": wait_ms })).await;
        assert_eq!(status, 200, "{v}");
        v["tasks"].as_array().unwrap().clone()
    }

    /// Claims like a live agent: heartbeats between short long-polls, up to 20 s.
    async fn claim_alive(&self, token: &str) -> Vec<Value> {
        for _ in 0..100 {
            self.post(token, "/agent/v1/heartbeat", json!({ "running": [] })).await;
            let got = self.claim(token, 50).await;
            if !got.is_empty() {
                return got;
            }
        }
        Vec::new()
    }

    async fn agent_state(&self, id: &str) -> String {
        let (_, v) = self.call(&self.admin, "GET", &format!("/api/v1/agents/{id}"), None).await;
        v["state"].as_str().unwrap_or_default().to_string()
    }
}

/// A node without local agents. Agents heartbeat every second (lost after three missed).
fn remote_config(dir: &std::path::Path) -> Config {
    let mut cfg = config(dir, 0);
    cfg.agent_heartbeat_ms = 1_000;
    cfg.leader_ttl_ms = 300;
    cfg
}

async fn submit(store: &Arc<dyn Store>, task: NewTask) -> TaskId {
    store.submit(vec![task]).await.unwrap()[0].id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_protocol_messages_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let r = Remote::start(remote_config(dir.path())).await;
    let (_, token) = r.create("strict", &["noop"], 1).await;
    let cases = [
        ("/agent/v1/register", json!({ "protocol": 1, "capabilities": "noop" })),
        ("/agent/v1/register", json!({ "protocol": 1, "capabilities": [], "extra": true })),
        ("/agent/v1/register", json!({ "protocol": 1, "capabilities": [{ "name": "Bad Name" }] })),
        ("/agent/v1/heartbeat", json!({ "running": [{ "task_id": 0, "fence": 1 }] })),
        ("/agent/v1/claim", json!({ "max": 0 })),
        ("/agent/v1/claim", json!({ "max": 1, "wait_ms": 600000 })),
        ("/agent/v1/tasks/1/complete", json!({ "result": {} })),
        (
            "/agent/v1/tasks/1/fail",
            json!({ "fence": 1, "error": { "class": "Boom!", "message": "x" } }),
        ),
        ("/agent/v1/messages", json!({ "body": "no recipient" })),
        ("/agent/v1/messages", json!({ "to": "x", "broadcast": {}, "body": 1 })),
        ("/agent/v1/messages/ack", json!({ "ids": [] })),
    ];
    for (path, body) in cases {
        let (status, v) = r.post(&token, path, body.clone()).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("protocol_violation")),
            "{path} {body}: {v}"
        );
        assert!(!v["details"]["errors"].as_array().unwrap().is_empty(), "{v}");
    }
    let (status, v) = r.register(&token, &["noop"], json!({})).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) =
        r.post(&token, "/agent/v1/register", json!({ "protocol": 2, "capabilities": [] })).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("unsupported_protocol")), "{v}");
    // Only what the credential was granted may be declared.
    let (status, v) = r.register(&token, &["noop", "exec"], json!({})).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("`exec` was not granted"), "{v}");
    // Operators are not agents.
    let (status, v) = r.post(&r.admin.clone(), "/agent/v1/claim", json!({ "max": 1 })).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    // A message larger than the cap.
    let big = "x".repeat(70 * 1024);
    let (status, v) =
        r.post(&token, "/agent/v1/messages", json!({ "broadcast": {}, "body": big })).await;
    assert_eq!((status, v["code"].as_str()), (413, Some("payload_too_large")), "{v}");
    r.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_act_as_another() {
    let dir = tempfile::tempdir().unwrap();
    let r = Remote::start(remote_config(dir.path())).await;
    let (_, alice) = r.create("alice", &["noop"], 1).await;
    let (_, mallory) = r.create("mallory", &["noop"], 1).await;
    r.register(&alice, &["noop"], json!({})).await;
    r.register(&mallory, &["noop"], json!({})).await;
    let store = r.store();
    let id = submit(&store, NewTask::new("noop", json!({}))).await;
    let task = r.claim(&alice, 5_000).await.remove(0);
    assert_eq!(task["id"], json!(id));
    let fence = task["fence"].as_i64().unwrap();
    let path = format!("/agent/v1/tasks/{}/complete", id.0);
    let (status, v) = r.post(&mallory, &path, json!({ "fence": fence, "result": "mine" })).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    let beat = json!({ "running": [{ "task_id": id.0, "fence": fence }] });
    let (_, v) = r.post(&mallory, "/agent/v1/heartbeat", beat.clone()).await;
    assert_eq!(v["lost"], json!([id.0]), "mallory's heartbeat does not extend alice's lease");
    let (status, v) = r.post(&alice, &path, json!({ "fence": fence, "result": "done" })).await;
    assert_eq!((status, v["state"].as_str()), (200, Some("succeeded")), "{v}");
    let t = store.get(id).await.unwrap().unwrap();
    assert_eq!(t.result, Some(json!("done")));
    // The sender of a message is the authenticated agent, whatever the body says.
    let (_, v) = r.call(&r.admin, "GET", "/api/v1/agents", None).await;
    let alice_id =
        v["agents"].as_array().unwrap().iter().find(|a| a["name"] == "alice").unwrap()["id"]
            .clone();
    r.post(&mallory, "/agent/v1/messages", json!({ "to": alice_id, "body": { "text": "hi" } }))
        .await;
    let (_, inbox) = r.call(&alice, "GET", "/agent/v1/messages", None).await;
    let sender = inbox["messages"][0]["sender"].as_str().unwrap().to_string();
    assert_ne!(sender, alice_id.as_str().unwrap());
    assert!(sender.starts_with("ag_"));
    r.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_agent_speaking_plain_http_joins_and_works() {
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "python3 is required in CI");
        eprintln!("SKIPPED: python3 not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = Remote::start(remote_config(dir.path())).await;
    let (id, token) = r.create("py", &["noop", "python"], 1).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents/py_agent.py");
    let mut child = tokio::process::Command::new("python3")
        .args([script, &r.base, &token])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let store = r.store();
    // Only the Python agent has the `python` capability.
    let mut tasks = Vec::new();
    for n in 0..3 {
        let mut t = NewTask::new("noop", json!({ "n": n }));
        t.capabilities = vec!["python".into()];
        tasks.push(submit(&store, t).await);
    }
    let done = eventually(Duration::from_secs(30), || {
        let store = store.clone();
        let tasks = tasks.clone();
        async move {
            for id in tasks {
                if store.get(id).await.unwrap().unwrap().state != TaskState::Succeeded {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(done, "the Python agent did not finish its tasks");
    for (n, task) in tasks.iter().enumerate() {
        let t = store.get(*task).await.unwrap().unwrap();
        let result = t.result.unwrap();
        assert_eq!((result["by"].as_str(), &result["echo"]), (Some("python"), &json!({ "n": n })));
        let events = store.events(*task).await.unwrap();
        assert!(events.iter().any(|e| e.actor == format!("agent:{id}")), "{events:?}");
    }
    // Request and reply: the operator's message comes back with the same correlation id.
    let (status, v) = r
        .post(
            &r.admin,
            &format!("/api/v1/agents/{id}/messages"),
            json!({ "text": "bye", "wait_ms": 20_000 }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["reply"]["body"]["text"], "bye from python", "{v}");
    assert_eq!(v["reply"]["correlation_id"], v["correlation_id"]);
    let status =
        tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    r.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_lets_running_work_finish_and_takes_no_new_work() {
    let dir = tempfile::tempdir().unwrap();
    let r = Remote::start(remote_config(dir.path())).await;
    let (id, token) = r.create("drainee", &["noop"], 2).await;
    r.register(&token, &["noop"], json!({})).await;
    let store = r.store();
    let first = submit(&store, NewTask::new("noop", json!({}))).await;
    let task = r.claim(&token, 5_000).await.remove(0);
    assert_eq!(task["id"], json!(first));
    let (status, v) = r.post(&r.admin, &format!("/api/v1/agents/{id}/drain"), json!({})).await;
    assert_eq!((status, v["state"].as_str()), (200, Some("draining")), "{v}");
    submit(&store, NewTask::new("noop", json!({}))).await;
    assert!(r.claim(&token, 300).await.is_empty(), "a draining agent gets no new work");
    // Its heartbeat says so, and its running task still completes.
    let beat = json!({ "running": [{ "task_id": first.0, "fence": task["fence"] }] });
    let (_, v) = r.post(&token, "/agent/v1/heartbeat", beat).await;
    assert_eq!((v["state"].as_str(), &v["lost"]), (Some("draining"), &json!([])), "{v}");
    let (status, v) = r
        .post(
            &token,
            &format!("/agent/v1/tasks/{}/complete", first.0),
            json!({ "fence": task["fence"] }),
        )
        .await;
    assert_eq!((status, v["state"].as_str()), (200, Some("succeeded")), "{v}");
    r.post(&r.admin, &format!("/api/v1/agents/{id}/resume"), json!({})).await;
    assert_eq!(r.claim_alive(&token).await.len(), 1, "resumed: takes work again");
    r.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_is_lost_and_its_task_retried_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = remote_config(dir.path());
    cfg.agent_heartbeat_ms = 100;
    let r = Remote::start(cfg).await;
    let (silent_id, silent) = r.create("silent", &["noop"], 1).await;
    let (_, other) = r.create("other", &["noop"], 1).await;
    r.register(&silent, &["noop"], json!({})).await;
    let store = r.store();
    let id = submit(&store, NewTask::new("noop", json!({}))).await;
    let task = r.claim(&silent, 5_000).await.remove(0);
    let old_fence = task["fence"].as_i64().unwrap();
    // No heartbeats: after three intervals (300 ms here) the agent is lost and its task retried.
    let lost = eventually(Duration::from_secs(10), || {
        let r = &r;
        let silent_id = silent_id.clone();
        async move { r.agent_state(&silent_id).await == "lost" }
    })
    .await;
    assert!(lost, "the silent agent was not marked lost");
    assert!(
        eventually(Duration::from_secs(10), || {
            let store = store.clone();
            async move { store.get(id).await.unwrap().unwrap().state == TaskState::Queued }
        })
        .await
    );
    let events = store.events(id).await.unwrap();
    assert!(
        events.iter().any(|e| e.detail.as_deref().is_some_and(|d| d.contains("agent_lost"))),
        "{events:?}"
    );
    r.register(&other, &["noop"], json!({})).await;
    let again = r.claim_alive(&other).await.remove(0);
    assert_eq!(again["id"], json!(id));
    assert!(again["fence"].as_i64().unwrap() > old_fence);
    // The lost agent's late report is refused.
    let path = format!("/agent/v1/tasks/{}/complete", id.0);
    let (status, v) = r.post(&silent, &path, json!({ "fence": old_fence })).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("stale_lease")), "{v}");
    let (status, _) = r.post(&other, &path, json!({ "fence": again["fence"] })).await;
    assert_eq!(status, 200);
    // A heartbeat brings the lost agent back.
    r.post(&silent, "/agent/v1/heartbeat", json!({ "running": [] })).await;
    assert_eq!(r.agent_state(&silent_id).await, "idle");
    r.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_through_local_and_remote_agents() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = remote_config(dir.path());
    cfg.agents = 2;
    let r = Remote::start(cfg).await;
    // Local agents: a `fanout` task's children run, and it succeeds with their results.
    let body = json!({ "kind": "fanout", "payload": { "tasks": [
        { "kind": "noop", "payload": { "part": 1 } },
        { "kind": "noop", "payload": { "part": 2 } },
    ] } });
    let (status, v) = r.post(&r.admin, "/api/v1/tasks", body).await;
    assert_eq!(status, 201, "{v}");
    let id = v["task"]["id"].as_i64().unwrap();
    let (_, t) = r.call(&r.admin, "GET", &format!("/api/v1/tasks/{id}?wait_ms=30000"), None).await;
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(t["result"]["children"].as_array().unwrap().len(), 2, "{t}");
    let events: Vec<&str> =
        t["history"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(events.contains(&"fanned_out"), "{events:?}");

    // A remote agent fans out over the protocol.
    let (_, token) = r.create("splitter", &["fanout", "noop"], 4).await;
    r.register(&token, &["fanout", "noop"], json!({ "pool": "remote" })).await;
    let mut parent = NewTask::new("fanout", json!({ "tasks": [] }));
    parent.capabilities = vec!["label:pool=remote".into()];
    let parent = submit(&r.store(), parent).await;
    let task = r.claim_alive(&token).await.remove(0);
    assert_eq!(task["id"], json!(parent));
    let kids = json!({ "fence": task["fence"], "tasks": [
        { "kind": "noop", "payload": { "n": 1 }, "capabilities": ["label:pool=remote"] },
    ] });
    let (status, v) = r.post(&token, &format!("/agent/v1/tasks/{}/children", parent.0), kids).await;
    assert_eq!(status, 201, "{v}");
    let child = r.claim_alive(&token).await.remove(0);
    assert_eq!(child["id"], v["children"][0]);
    let (status, _) = r
        .post(
            &token,
            &format!("/agent/v1/tasks/{}/complete", child["id"]),
            json!({ "fence": child["fence"], "result": "ok" }),
        )
        .await;
    assert_eq!(status, 200);
    let p = r.store().get(parent).await.unwrap().unwrap();
    assert_eq!(
        (p.state, p.result.unwrap()["children"][0]["result"].clone()),
        (TaskState::Succeeded, json!("ok"))
    );
    r.node.shutdown().await.unwrap();
}

/// Lost-agent detection belongs to a live leader: a node that is stopping (here draining a
/// local task for several heartbeat intervals) gives up leadership at once and marks no agent
/// lost, even one that cannot reach it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_never_marks_agents_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = remote_config(dir.path());
    cfg.agents = 1;
    cfg.grace_ms = 30_000;
    let r = Remote::start(cfg).await;
    let (id, token) = r.create("steady", &["noop"], 1).await;
    r.register(&token, &["noop"], json!({})).await;
    r.post(&token, "/agent/v1/heartbeat", json!({ "running": [] })).await;
    let leads = || async {
        let (_, v) = r.call(&r.admin, "GET", "/api/v1/status", None).await;
        v["orchestrator_leader"] == true
    };
    assert!(eventually(Duration::from_secs(10), leads).await, "the node leads");
    // Six seconds of local work: the stop drains it for twice the three missed heartbeats
    // after which a live leader would call the silent agent lost.
    let work = submit(&r.store(), NewTask::new("noop", json!({ "sleep_ms": 6_000 }))).await;
    let store = r.store();
    assert!(
        eventually(Duration::from_secs(10), || {
            let store = store.clone();
            async move { store.get(work).await.unwrap().unwrap().state == TaskState::Running }
        })
        .await
    );
    drop(store);
    r.node.shutdown().await.unwrap();
    let url = format!("sqlite://{}", dir.path().join("dreamos.db").display());
    let store = dreamos_store::open(
        &url,
        dreamos_store::StoreConfig::default(),
        Arc::new(dreamos_core::SystemClock),
    )
    .await
    .unwrap();
    let agent = match store.agent(dreamos_store::AgentOp::Get { id: id.clone() }).await.unwrap() {
        dreamos_store::AgentAnswer::Agent(a) => a,
        other => panic!("{other:?}"),
    };
    assert_ne!(agent.state, dreamos_store::AgentState::Lost, "{agent:?}");
    assert_eq!(store.get(work).await.unwrap().unwrap().state, TaskState::Succeeded);
    store.close().await;
}

/// `DELETE /api/v1/agents/{id}`: only an unscoped admin deletes, never a connected agent, and
/// the deleted agent's credential stops working at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_is_deleted_only_by_an_unscoped_admin_and_only_when_not_connected() {
    let dir = tempfile::tempdir().unwrap();
    let api = crate::Api::start(remote_config(dir.path())).await;
    let create = |name: &'static str| {
        let api = &api;
        async move {
            let body = json!({ "name": name, "capabilities": ["noop"] });
            let (status, v) = api.post(&api.admin, "/api/v1/agents", body).await;
            assert_eq!(status, 201, "{v}");
            (v["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string())
        }
    };
    let (never_id, _) = create("never").await;
    let (live_id, live_token) = create("live").await;
    let (_, viewer) = api.token(json!({ "role": "viewer" })).await;
    let (_, operator) = api.token(json!({ "role": "operator" })).await;
    let (_, scoped) = api.token(json!({ "role": "admin", "workspaces": ["alpha"] })).await;
    let delete = |token: String, key: String| {
        let api = &api;
        async move { api.call(&token, "DELETE", &format!("/api/v1/agents/{key}"), None).await }
    };
    for (who, token) in [
        ("viewer", &viewer),
        ("operator", &operator),
        ("scoped admin", &scoped),
        ("agent", &live_token),
    ] {
        let (status, v) = delete(token.clone(), never_id.clone()).await;
        assert_eq!(status, 403, "{who}: {v}");
    }
    // Connected: refused until it stops.
    let caps = [json!({ "name": "noop" })];
    let reg = json!({ "protocol": 1, "capabilities": caps, "labels": {} });
    assert_eq!(api.post(&live_token, "/agent/v1/register", reg).await.0, 200);
    let (status, v) = delete(api.admin.clone(), "live".into()).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains("stop it first"), "{v}");
    // An agent that never connected goes, by name or id.
    let (status, v) = delete(api.admin.clone(), "never".into()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], never_id.as_str());
    assert_eq!(api.get(&api.admin, &format!("/api/v1/agents/{never_id}")).await.0, 404);
    assert_eq!(delete(api.admin.clone(), never_id.clone()).await.0, 404);
    // Stopped while it holds a task: refused until the task is done.
    let task = submit(&api.node.store, NewTask::new("noop", json!({}))).await;
    let (_, claimed) =
        api.post(&live_token, "/agent/v1/claim", json!({ "max": 1, "wait_ms": 10_000 })).await;
    let fence = claimed["tasks"][0]["fence"].as_i64().expect("claimed");
    let stop = format!("/api/v1/agents/{live_id}/stop");
    assert_eq!(api.post(&api.admin, &stop, json!({})).await.0, 200);
    let (status, v) = delete(api.admin.clone(), live_id.clone()).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains("running tasks"), "{v}");
    let done = json!({ "fence": fence, "result": {} });
    let path = format!("/agent/v1/tasks/{}/complete", task.0);
    assert_eq!(api.post(&live_token, &path, done).await.0, 200);
    // Then deleted: its credential no longer works.
    assert_eq!(delete(api.admin.clone(), live_id.clone()).await.0, 200);
    let (status, _) = api.post(&live_token, "/agent/v1/heartbeat", json!({ "running": [] })).await;
    assert_eq!(status, 401);
    let (_, list) = api.get(&api.admin, "/api/v1/agents").await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 0, "{list}");
    api.node.shutdown().await.unwrap();
}
