//! Signals as a terminal sends them: Ctrl-C reaches the node's whole process group, and the
//! programs `exec` tasks run must not die of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dreamos_core::{SystemClock, TaskId, TaskState};
use dreamos_store::StoreConfig;
use serde_json::{Value, json};

use crate::UpProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_the_terminal_lets_a_running_exec_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = UpProcess::start_in_group(dir.path(), 1, &[]);
    let token = node.token();
    let client = reqwest::Client::new();
    let task = json!({ "kind": "exec", "payload": { "program": "sleep", "args": ["3"] } });
    let r = client.post(format!("{}/api/v1/tasks", node.url)).bearer_auth(&token).json(&task);
    let answer: Value = r.send().await.unwrap().json().await.unwrap();
    let id = answer["task"]["id"].as_i64().expect("submitted");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = format!("{}/api/v1/tasks/{id}", node.url);
        let t: Value =
            client.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        if t["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the task never started: {t}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Ctrl-C: SIGINT to every process of the node's group.
    let group = format!("-{}", node.child.id());
    let sent = std::process::Command::new("kill").args(["-INT", "--", &group]).status().unwrap();
    assert!(sent.success());
    node.wait_exit();

    let url = format!("sqlite://{}", dir.path().join("dreamos.db").display());
    let store =
        dreamos_store::open(&url, StoreConfig::default(), Arc::new(SystemClock)).await.unwrap();
    let t = store.get(TaskId(id)).await.unwrap().unwrap();
    assert_eq!((t.state, t.attempts), (TaskState::Succeeded, 1), "{t:?}");
    store.close().await;
}
