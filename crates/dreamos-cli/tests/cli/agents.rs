//! Remote agents as separate `dreamos agent run` processes: one killed mid-task has its task
//! re-run by another, and its stale report is refused; operators drive them from the CLI.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{BIN, UpProcess};

pub(crate) fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// (id, token) of a new agent.
pub(crate) fn create(node: &UpProcess, name: &str) -> (String, String) {
    let v: Value = serde_json::from_str(&ok(node.cli(&[
        "--json",
        "agent",
        "create",
        name,
        "--capability",
        "noop",
        "--slots",
        "1",
    ])))
    .unwrap();
    (v["id"].as_str().unwrap().into(), v["token"].as_str().unwrap().into())
}

pub(crate) fn run_agent(node: &UpProcess, token: &str) -> Child {
    Command::new(BIN)
        .args(["--data-dir"])
        .arg(&node.data_dir)
        .args([
            "--server",
            &node.url,
            "--token",
            token,
            "agent",
            "run",
            "--slots",
            "1",
            "--capability",
            "noop",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub(crate) fn task(node: &UpProcess, id: i64) -> Value {
    serde_json::from_str(&ok(node.cli(&["--json", "task", "show", &id.to_string()]))).unwrap()
}

pub(crate) fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_killed_agent_s_task_is_rerun_elsewhere_and_its_stale_report_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = UpProcess::start_with_env(
        dir.path(),
        0,
        &[("DREAMOS_AGENT_HEARTBEAT_MS", "200"), ("DREAMOS_LEASE_MS", "1500")],
    );
    let (a_id, a_token) = create(&node, "doomed");
    let (b_id, b_token) = create(&node, "survivor");
    let mut a = run_agent(&node, &a_token);
    let submitted: Value = serde_json::from_str(&ok(node.cli(&[
        "--json",
        "task",
        "submit",
        "noop",
        "--payload",
        r#"{"sleep_ms": 1000}"#,
    ])))
    .unwrap();
    let id = submitted["id"].as_i64().unwrap();
    let holder_a = format!("agent:{a_id}");
    assert!(
        wait_until(Duration::from_secs(20), || task(&node, id)["lease"]["holder"]
            == json!(holder_a)),
        "agent A never ran the task"
    );
    let fence_a = task(&node, id)["lease"]["fence"].as_i64().unwrap();
    a.kill().unwrap();
    a.wait().unwrap();
    let mut b = run_agent(&node, &b_token);
    assert!(
        wait_until(Duration::from_secs(30), || task(&node, id)["state"] == "succeeded"),
        "the task was not re-run: {}",
        task(&node, id)
    );
    let t = task(&node, id);
    let history = t["history"].as_array().unwrap();
    let claims: Vec<&str> = history
        .iter()
        .filter(|e| e["event"] == "claimed")
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(claims, vec![holder_a.as_str(), &format!("agent:{b_id}")], "{t}");
    assert!(
        history.iter().any(|e| e["detail"]
            .as_str()
            .is_some_and(|d| d.contains("agent_lost") || d.contains("lease_expired"))),
        "{t}"
    );
    // A's report, arriving late with its old fencing token, is refused.
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", "-H", "Content-Type: application/json"])
        .args(["-H", &format!("Authorization: Bearer {a_token}")])
        .args(["-d", &json!({ "fence": fence_a, "result": "late" }).to_string()])
        .arg(format!("{}/agent/v1/tasks/{id}/complete", node.url))
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["code"], "stale_lease", "{answer}");
    assert_eq!(task(&node, id)["result"], json!({}), "the first report stands");

    // Operators see and steer agents from the CLI.
    let list = ok(node.cli(&["agent", "list"]));
    assert!(list.contains("survivor") && list.contains("doomed"), "{list}");
    let reply = ok(node.cli(&["agent", "message", "survivor", "status?", "--wait", "20s"]));
    assert!(reply.contains("survivor received \"status?\""), "{reply}");
    let stopped = ok(node.cli(&["agent", "stop", "survivor"]));
    assert!(stopped.contains("stopped"), "{stopped}");
    assert!(
        wait_until(Duration::from_secs(20), || b.try_wait().unwrap().is_some()),
        "agent B did not stop"
    );
    assert!(b.wait().unwrap().success());
    let shown: Value =
        serde_json::from_str(&ok(node.cli(&["--json", "agent", "show", "survivor"]))).unwrap();
    let states: Vec<&str> =
        shown["history"].as_array().unwrap().iter().map(|e| e["to"].as_str().unwrap()).collect();
    assert_eq!(states.first(), Some(&"starting"));
    assert_eq!(states.last(), Some(&"stopped"), "{shown}");
    node.terminate();
}

pub(crate) fn pg_url() -> String {
    std::env::var("DREAMOS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// The settings of a node of a test cluster: PostgreSQL, its own schema, a short leader lease.
pub(crate) fn cluster_env(schema: &str) -> [(&'static str, String); 3] {
    [
        ("DREAMOS_STORE", pg_url()),
        ("DREAMOS_STORE_SCHEMA", schema.to_string()),
        ("DREAMOS_LEADER_TTL_MS", "600".to_string()),
    ]
}

/// Drops a test cluster's schema.
pub(crate) fn drop_schema(schema: &str) {
    let _ = Command::new("psql")
        .args([&pg_url(), "-q", "-c", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
        .output();
}

pub(crate) fn pg_reachable() -> bool {
    let ok = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        Duration::from_secs(2),
    )
    .is_ok();
    if !ok {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "PostgreSQL is required in CI but unreachable at {}",
            pg_url()
        );
        eprintln!("SKIPPED: PostgreSQL unreachable at {}", pg_url());
    }
    ok
}

fn leads(node: &UpProcess) -> Option<bool> {
    let out = node.cli(&["--json", "status"]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["orchestrator_leader"].as_bool()
}

#[test]
fn two_nodes_on_one_postgres_have_one_leader_and_fail_over() {
    if !pg_reachable() {
        return;
    }
    let schema = format!("t_leader_{}", std::process::id());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = cluster_env(&schema);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let n1 = UpProcess::start_with_env(d1.path(), 0, &env);
    let n2 = UpProcess::start_with_env(d2.path(), 0, &env);
    assert!(
        wait_until(Duration::from_secs(20), || leads(&n1) == Some(true)
            || leads(&n2) == Some(true)),
        "no leader"
    );
    // Exactly one leads, and keeps leading while it lives.
    for _ in 0..10 {
        let (a, b) = (leads(&n1), leads(&n2));
        assert_ne!(a, b, "exactly one leader: {a:?} {b:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (mut leader, follower) = if leads(&n1) == Some(true) { (n1, n2) } else { (n2, n1) };
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || leads(&follower) == Some(true)),
        "the follower did not take over after the leader died"
    );
    // The dead node comes back while the other leads: it follows.
    let dead_dir = leader.data_dir.clone();
    drop(leader);
    let back = UpProcess::start_with_env(&dead_dir, 0, &env);
    for _ in 0..5 {
        assert_eq!(leads(&back), Some(false), "a restarted node does not steal a live lease");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A leader that stops cleanly hands over at once.
    follower.terminate();
    assert!(wait_until(Duration::from_secs(20), || leads(&back) == Some(true)));
    back.terminate();
    drop_schema(&schema);
}

/// An agent stopped as a service manager stops it (SIGTERM) leaves cleanly: `stopped` at once,
/// never `lost`, so no lost-agent alert is raised. It runs with the slots it was created with.
#[test]
fn an_agent_stopped_with_sigterm_deregisters() {
    let dir = tempfile::tempdir().unwrap();
    let node = UpProcess::start(dir.path(), 0);
    let (_, token) = create(&node, "tidy");
    // No --slots: the agent runs with the slots it was created with (1), not a default.
    let mut agent = Command::new(BIN)
        .args(["--data-dir"])
        .arg(&node.data_dir)
        .args(["--server", &node.url, "--token", &token, "agent", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = |node: &UpProcess| -> String {
        let v: Value =
            serde_json::from_str(&ok(node.cli(&["--json", "agent", "show", "tidy"]))).unwrap();
        v["state"].as_str().unwrap_or_default().to_string()
    };
    assert!(wait_until(Duration::from_secs(20), || state(&node) == "idle"), "never registered");
    let shown: Value =
        serde_json::from_str(&ok(node.cli(&["--json", "agent", "show", "tidy"]))).unwrap();
    assert_eq!(shown["slots"], 1, "{shown}");
    let sent = Command::new("kill").args(["-TERM", &agent.id().to_string()]).status().unwrap();
    assert!(sent.success());
    assert!(
        wait_until(Duration::from_secs(20), || agent.try_wait().unwrap().is_some()),
        "the agent did not stop"
    );
    assert!(agent.wait().unwrap().success());
    assert_eq!(state(&node), "stopped");
    let shown: Value =
        serde_json::from_str(&ok(node.cli(&["--json", "agent", "show", "tidy"]))).unwrap();
    let states: Vec<&str> =
        shown["history"].as_array().unwrap().iter().map(|e| e["to"].as_str().unwrap()).collect();
    assert!(!states.contains(&"lost"), "{states:?}");
    node.terminate();
}
