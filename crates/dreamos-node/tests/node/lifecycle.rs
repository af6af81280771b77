//! A real node: local agents run tasks, enforce exec limits, and stop without losing work.

use std::sync::Arc;
use std::time::Duration;

use dreamos_core::{NewTask, RetryPolicy, SystemClock, TaskId, TaskState};
use dreamos_node::Node;
use dreamos_store::{Store, StoreConfig};
use serde_json::json;

use crate::{config, eventually};

async fn reopen(dir: &std::path::Path) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.join("dreamos.db").display());
    dreamos_store::open(&url, StoreConfig::default(), Arc::new(SystemClock)).await.unwrap()
}

async fn state_is(store: &Arc<dyn Store>, id: TaskId, want: TaskState) -> bool {
    store.get(id).await.unwrap().is_some_and(|t| t.state == want)
}

fn once(task: NewTask) -> NewTask {
    NewTask { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_lets_running_work_finish_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path(), 1)).await.unwrap();
    let store = node.store.clone();
    let id =
        store.submit(vec![NewTask::new("noop", json!({ "sleep_ms": 300 }))]).await.unwrap()[0].id;
    let queued = store.submit(vec![NewTask::new("noop", json!({}))]).await.unwrap()[0].id;
    assert!(eventually(Duration::from_secs(10), || state_is(&store, id, TaskState::Running)).await);
    node.shutdown().await.unwrap();
    let store = reopen(dir.path()).await;
    assert_eq!(store.get(id).await.unwrap().unwrap().state, TaskState::Succeeded);
    // The node stopped claiming: the other task may have been taken before the stop, but it
    // is never left running.
    assert_ne!(store.get(queued).await.unwrap().unwrap().state, TaskState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_still_running_after_the_grace_period_is_released_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1);
    cfg.grace_ms = 100;
    let node = Node::start(cfg).await.unwrap();
    let store = node.store.clone();
    let id =
        store.submit(vec![NewTask::new("noop", json!({ "sleep_ms": 600_000 }))]).await.unwrap()[0]
            .id;
    assert!(eventually(Duration::from_secs(10), || state_is(&store, id, TaskState::Running)).await);
    node.shutdown().await.unwrap();
    let store = reopen(dir.path()).await;
    let task = store.get(id).await.unwrap().unwrap();
    assert_eq!((task.state, task.attempts), (TaskState::Queued, 0));
    assert_eq!(
        store.events(id).await.unwrap().last().unwrap().kind,
        dreamos_core::EventKind::Released
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_programs_within_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 2);
    cfg.exec_max_output_bytes = 1_000;
    cfg.set_exec_allow(&["echo", "sleep", "printf", "false"]);
    let node = Node::start(cfg).await.unwrap();
    let store = node.store.clone();
    let submit = |payload: serde_json::Value| {
        let store = store.clone();
        async move { store.submit(vec![once(NewTask::new("exec", payload))]).await.unwrap()[0].id }
    };
    let ok = submit(json!({ "program": "echo", "args": ["hi", "there"] })).await;
    let slow = submit(json!({ "program": "sleep", "args": ["30"], "timeout_ms": 200 })).await;
    let chatty = submit(json!({ "program": "printf", "args": ["%05000d", "0"] })).await;
    let failing = submit(json!({ "program": "false" })).await;
    let refused = submit(json!({ "program": "rm", "args": ["-rf", "/tmp/nothing"] })).await;
    let bad_env = submit(json!({ "program": "echo", "env": { "LD_PRELOAD": "x" } })).await;
    let all = [ok, slow, chatty, failing, refused, bad_env];
    let finished = eventually(Duration::from_secs(30), || {
        let store = store.clone();
        async move {
            for id in all {
                if !store.get(id).await.unwrap().unwrap().state.is_terminal() {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(finished, "exec tasks did not finish");
    let t = store.get(ok).await.unwrap().unwrap();
    assert_eq!(t.result.unwrap()["stdout"], "hi there\n");
    for (id, class) in [
        (slow, "timeout"),
        (chatty, "output_limit"),
        (failing, "exit_status"),
        (refused, "program_not_allowed"),
        (bad_env, "env_not_allowed"),
    ] {
        let t = store.get(id).await.unwrap().unwrap();
        assert_eq!(
            (t.state, t.error.unwrap().class.as_str()),
            (TaskState::Failed, class),
            "task {id}"
        );
    }
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_local_agent_is_restarted_and_a_crash_loop_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1);
    cfg.test_crash_switch = true;
    let node = Node::start(cfg).await.unwrap();
    let store = node.store.clone();
    let crash = || once(NewTask::new("noop", json!({ "crash": true })));
    let first = store.submit(vec![crash()]).await.unwrap()[0].id;
    let after = store.submit(vec![NewTask::new("noop", json!({}))]).await.unwrap()[0].id;
    // The only agent crashed on the first task and was restarted to run the second.
    assert!(
        eventually(Duration::from_secs(20), || state_is(&store, after, TaskState::Succeeded)).await
    );
    let t = store.get(first).await.unwrap().unwrap();
    assert_eq!((t.state, t.error.unwrap().class.as_str()), (TaskState::Failed, "agent_crashed"));

    let token = std::fs::read_to_string(&node.admin_token_path).unwrap().trim().to_string();
    let metrics = || {
        let (url, token) = (format!("http://{}/metrics", node.addr), token.clone());
        async move {
            let r = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
            r.text().await.unwrap()
        }
    };
    assert!(metrics().await.contains("dreamos_local_agents_crash_looping 0"));
    let ids: Vec<TaskId> = store
        .submit((0..4).map(|_| crash()).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(
        eventually(Duration::from_secs(30), || async {
            metrics().await.contains("dreamos_local_agents_crash_looping 1")
        })
        .await,
        "five crashes within a minute are reported as a crash loop"
    );
    assert!(metrics().await.contains("dreamos_local_agent_restarts_total 5"));
    for id in ids {
        assert!(
            eventually(Duration::from_secs(30), || state_is(&store, id, TaskState::Failed)).await
        );
    }
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_programs_are_killed_at_their_cpu_and_memory_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 2);
    cfg.set_exec_allow(&["python3", "sh"]);
    cfg.exec_max_memory_bytes = 200 * 1024 * 1024;
    let node = Node::start(cfg).await.unwrap();
    let store = node.store.clone();
    let submit = |payload: serde_json::Value| {
        let store = store.clone();
        async move { store.submit(vec![once(NewTask::new("exec", payload))]).await.unwrap()[0].id }
    };
    let spin = submit(
        json!({ "program": "sh", "args": ["-c", "while :; do :; done"], "max_cpu_ms": 1000 }),
    )
    .await;
    // Allocates and touches 1 GiB in 64 MiB steps, then sleeps.
    let hog = submit(json!({
        "program": "python3",
        "args": ["-c", "import time\nb = []\nfor _ in range(16): b.append(bytearray(64 << 20))\ntime.sleep(60)"],
        "max_memory_bytes": 100 * 1024 * 1024
    }))
    .await;
    let finished = eventually(Duration::from_secs(60), || {
        let store = store.clone();
        async move {
            for id in [spin, hog] {
                if !store.get(id).await.unwrap().unwrap().state.is_terminal() {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(finished, "runaway programs were not stopped");
    for (id, class) in [(spin, "cpu_limit"), (hog, "memory_limit")] {
        let t = store.get(id).await.unwrap().unwrap();
        let error = t.error.unwrap();
        assert_eq!(
            (t.state, error.class.as_str()),
            (TaskState::Failed, class),
            "{}",
            error.message
        );
    }
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_is_cancelled_through_its_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1);
    cfg.lease_ms = 300; // heartbeats every 100 ms
    let node = Node::start(cfg).await.unwrap();
    let store = node.store.clone();
    let id =
        store.submit(vec![NewTask::new("noop", json!({ "sleep_ms": 600_000 }))]).await.unwrap()[0]
            .id;
    assert!(eventually(Duration::from_secs(10), || state_is(&store, id, TaskState::Running)).await);
    store.cancel(id, "test").await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || state_is(&store, id, TaskState::Cancelled)).await
    );
    node.shutdown().await.unwrap();
}

/// A cancellation reaches a running local task at once, not at its next heartbeat: with a
/// ten-minute lease the next heartbeat is 200 s away, past the wait below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_reaches_a_running_local_task_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 2);
    cfg.lease_ms = 600_000;
    let node = Node::start(cfg).await.unwrap();
    let store = node.store.clone();
    let long = || NewTask::new("noop", json!({ "sleep_ms": 600_000 }));
    let ids: Vec<TaskId> =
        store.submit(vec![long(), long()]).await.unwrap().iter().map(|t| t.id).collect();
    for id in &ids {
        assert!(
            eventually(Duration::from_secs(10), || state_is(&store, *id, TaskState::Running)).await
        );
    }
    store.cancel(ids[0], "test").await.unwrap();
    assert!(
        eventually(Duration::from_secs(30), || state_is(&store, ids[0], TaskState::Cancelled))
            .await,
        "the cancellation waited for a heartbeat"
    );
    // Only the cancelled task stops.
    assert!(state_is(&store, ids[1], TaskState::Running).await);
    store.cancel(ids[1], "test").await.unwrap();
    assert!(
        eventually(Duration::from_secs(30), || state_is(&store, ids[1], TaskState::Cancelled))
            .await
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_created_once_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path(), 0)).await.unwrap();
    assert!(node.admin_token_created);
    let path = node.admin_token_path.clone();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&path).unwrap();
    node.shutdown().await.unwrap();
    let node = Node::start(config(dir.path(), 0)).await.unwrap();
    assert!(!node.admin_token_created);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_a_busy_data_dir_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = Node::start(config(dir.path(), 1)).await.unwrap();
    let token = std::fs::read_to_string(&first.admin_token_path).unwrap();
    let id =
        first.store.submit(vec![NewTask::new("noop", json!({ "sleep_ms": 300 }))]).await.unwrap()
            [0]
        .id;
    let err =
        Node::start(config(dir.path(), 1)).await.err().expect("a second node on one data dir");
    let text = format!("{err:#}");
    assert!(text.contains("in use") && text.contains(&std::process::id().to_string()), "{text}");
    // The first node's work and credentials are untouched.
    let store = first.store.clone();
    assert!(
        eventually(Duration::from_secs(20), || state_is(&store, id, TaskState::Succeeded)).await
    );
    assert_eq!(std::fs::read_to_string(&first.admin_token_path).unwrap(), token);
    let http = reqwest::Client::new();
    let (status, _) = crate::http_call(
        &http,
        &format!("http://{}", first.addr),
        token.trim(),
        "GET",
        "/api/v1/status",
        None,
    )
    .await;
    assert_eq!(status, 200);
    first.shutdown().await.unwrap();
    // Once it has stopped, the data dir is free again.
    Node::start(config(dir.path(), 0)).await.unwrap().shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_separate_from_liveness() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1);
    cfg.grace_ms = 20_000;
    let node = Node::start(cfg).await.unwrap();
    let base = format!("http://{}", node.addr);
    let ready = |base: String| async move {
        let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap()["status"].clone())
    };
    assert_eq!(ready(base.clone()).await, (200, json!("ready")));
    // A stopping node (draining a running task) is alive but not ready.
    let id =
        node.store.submit(vec![NewTask::new("noop", json!({ "sleep_ms": 2_000 }))]).await.unwrap()
            [0]
        .id;
    let store = node.store.clone();
    assert!(eventually(Duration::from_secs(10), || state_is(&store, id, TaskState::Running)).await);
    let stopping = tokio::spawn(node.shutdown());
    assert!(
        eventually(Duration::from_secs(10), || {
            let base = base.clone();
            async move { ready(base).await == (503, json!("draining")) }
        })
        .await
    );
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status(), 200);
    stopping.await.unwrap().unwrap();
}
