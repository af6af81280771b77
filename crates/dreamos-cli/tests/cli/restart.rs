//! Nodes stopped, restarted and killed under remote agents that keep working: reports wait for
//! the node to come back, an agent with several `--server` URLs goes on with another node, and
//! clients find a node on whatever port it listens.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::agents::{cluster_env, create, drop_schema, ok, pg_reachable, task, wait_until};
use crate::{BIN, UpProcess};

/// A remote agent against `servers` (comma-separated), its messages kept in `log`.
fn agent(node: &UpProcess, servers: &str, token: &str, log: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(["--data-dir"])
        .arg(&node.data_dir)
        .args(["--server", servers, "--token", token, "agent", "run", "--capability", "noop"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn submit(node: &UpProcess, sleep_ms: u64) -> i64 {
    let payload = format!("{{\"sleep_ms\": {sleep_ms}}}");
    let v: Value = serde_json::from_str(&ok(node.cli(&[
        "--json",
        "task",
        "submit",
        "noop",
        "--payload",
        &payload,
    ])))
    .unwrap();
    v["id"].as_i64().unwrap_or_else(|| v["task"]["id"].as_i64().expect("a task id"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn history(node: &UpProcess, agent: &str) -> Vec<String> {
    let shown: Value =
        serde_json::from_str(&ok(node.cli(&["--json", "agent", "show", agent]))).unwrap();
    shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The node is stopped (SIGTERM) a second into a remote agent's 4-second task, and started
/// again on the same address once the agent has failed to report the finished task: the agent
/// sends the report again, so the task succeeds on its first attempt, and the agent is never
/// called lost.
#[test]
fn a_remote_agent_rides_out_a_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let node = UpProcess::start_on(dir.path(), &listen, &[]);
    let (_, token) = create(&node, "rider");
    let log = dir.path().join("agent.log");
    let mut runner = agent(&node, &node.url, &token, &log);
    let id = submit(&node, 4_000);
    assert!(
        wait_until(Duration::from_secs(20), || task(&node, id)["state"] == "running"),
        "the agent never took the task"
    );
    std::thread::sleep(Duration::from_secs(1));
    node.terminate();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || log_text().contains("reports failed")),
        "the agent never reported while the node was down:\n{}",
        log_text()
    );
    let node = UpProcess::start_on(dir.path(), &listen, &[]);
    assert!(
        wait_until(Duration::from_secs(60), || task(&node, id)["state"] == "succeeded"),
        "the task did not succeed: {}\nagent said:\n{}",
        task(&node, id),
        log_text()
    );
    assert_eq!(task(&node, id)["attempts"], 1, "agent said:\n{}", log_text());
    let states = history(&node, "rider");
    assert!(!states.iter().any(|s| s == "lost"), "{states:?}");
    let _ = runner.kill();
    let _ = runner.wait();
}

/// Without `--server`, a client finds the node running on its data dir whatever port `--listen`
/// gave it (DATA_DIR/node.json), and the file goes when the node stops.
#[test]
fn clients_find_the_node_of_their_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let node = UpProcess::start(dir.path(), 1);
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["task", "submit", "noop", "--wait"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("node.json")).unwrap())
            .unwrap();
    assert_eq!(info["url"], node.url.as_str());
    node.terminate();
    assert!(!dir.path().join("node.json").exists(), "a stopped node leaves no node.json");
    // A node.json no running node stands behind (shipped in a cloned tree, or left by a node
    // that died) is not believed: the token never goes to the URL it names.
    let forged = r#"{"url": "http://127.0.0.1:9", "tls": false, "pid": 1}"#;
    std::fs::write(dir.path().join("node.json"), forged).unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--token", "secret", "status"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("cannot reach") && !said.contains(":9"), "{said}");
}

/// Two nodes share PostgreSQL; an agent names both. Killing the node it talks to does not stop
/// it: every task succeeds, through the other node.
#[test]
fn an_agent_with_two_servers_keeps_working_while_one_node_is_killed() {
    if !pg_reachable() {
        return;
    }
    let schema = format!("t_failover_{}", std::process::id());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = cluster_env(&schema);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut first = UpProcess::start_with_env(d1.path(), 0, &env);
    let second = UpProcess::start_with_env(d2.path(), 0, &env);
    let (_, token) = create(&first, "both");
    let log = d1.path().join("agent.log");
    let servers = format!("{},{}", first.url, second.url);
    let mut runner = agent(&first, &servers, &token, &log);
    let ids: Vec<i64> = (0..6).map(|_| submit(&second, 700)).collect();
    assert!(
        wait_until(Duration::from_secs(30), || task(&second, ids[0])["state"] == "succeeded"),
        "the agent never worked"
    );
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    for id in &ids {
        assert!(
            wait_until(Duration::from_secs(90), || task(&second, *id)["state"] == "succeeded"),
            "task {id} did not succeed: {}\nagent said:\n{}",
            task(&second, *id),
            log_text()
        );
    }
    assert!(runner.try_wait().unwrap().is_none(), "the agent gave up: {}", log_text());
    let _ = runner.kill();
    let _ = runner.wait();
    second.terminate();
    drop_schema(&schema);
}
