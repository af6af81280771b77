//! A node killed with SIGKILL while thousands of accepted tasks are in flight loses none: after
//! a restart every accepted task reaches exactly one terminal state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dreamos_core::{EventKind, SystemClock, TaskId};
use dreamos_store::{StoreConfig, TaskFilter};
use serde_json::{Value, json};

use crate::UpProcess;

const TASKS: usize = 3_000;

async fn post(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> Value {
    let r = client.post(url).bearer_auth(token).json(body).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

async fn status(client: &reqwest::Client, node: &UpProcess, token: &str) -> Value {
    client
        .get(format!("{}/api/v1/status", node.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_work_in_flight_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = UpProcess::start(dir.path(), 2);
    let token = node.token();
    let client = reqwest::Client::new();
    let mut accepted = Vec::new();
    for chunk in 0..TASKS / 500 {
        let tasks: Vec<Value> = (0..500)
            .map(|i| json!({ "kind": "noop", "payload": { "sleep_ms": (i % 3), "n": chunk * 500 + i } }))
            .collect();
        let answer = post(
            &client,
            &format!("{}/api/v1/tasks/batch", node.url),
            &token,
            &json!({ "tasks": tasks }),
        )
        .await;
        accepted
            .extend(answer["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()));
    }
    assert_eq!(accepted.len(), TASKS);
    // Kill it mid-flight: once some work is done and most is not.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&client, &node, &token).await;
        if s["tasks"]["succeeded"].as_u64().unwrap_or(0) >= 50 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(node); // SIGKILL

    let node = UpProcess::start(dir.path(), 2);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status(&client, &node, &token).await;
        let t = &s["tasks"];
        let done: u64 =
            ["succeeded", "failed", "cancelled"].iter().map(|k| t[*k].as_u64().unwrap_or(0)).sum();
        if done == TASKS as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "tasks never finished after the restart: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.terminate();

    // Inspect the store itself.
    let url = format!("sqlite://{}", dir.path().join("dreamos.db").display());
    let store =
        dreamos_store::open(&url, StoreConfig::default(), Arc::new(SystemClock)).await.unwrap();
    let tasks = store.list(&TaskFilter { limit: 10_000, ..Default::default() }).await.unwrap();
    assert_eq!(tasks.len(), TASKS, "tasks lost or invented");
    let by_id: HashMap<i64, _> = tasks.iter().map(|t| (t.id.0, t)).collect();
    for id in &accepted {
        let task = by_id.get(id).unwrap_or_else(|| panic!("accepted task {id} is gone"));
        assert_eq!(task.state, dreamos_core::TaskState::Succeeded, "task {id}");
        let events = store.events(TaskId(*id)).await.unwrap();
        let terminal = events
            .iter()
            .filter(|e| {
                matches!(e.kind, EventKind::Succeeded | EventKind::Failed | EventKind::Cancelled)
            })
            .count();
        assert_eq!(terminal, 1, "task {id} reached {terminal} terminal states: {events:?}");
    }
    store.close().await;
}
