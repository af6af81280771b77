//! Submission rules and wake-ups of the queue service (SQLite; the store suite covers both
//! backends).

use std::sync::Arc;
use std::time::Duration;

use dreamos_core::{SystemClock, TaskState};
use dreamos_queue::{KindRegistry, Queue, QueueConfig, QueueError, SubmitRequest};
use dreamos_store::{ClaimRequest, StoreConfig, TaskFilter};
use serde_json::json;

async fn queue() -> (Queue, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let store =
        dreamos_store::open(&url, StoreConfig::default(), Arc::new(SystemClock)).await.unwrap();
    let config = QueueConfig { max_payload_bytes: 1_000, ..QueueConfig::default() };
    (Queue::new(store, KindRegistry::builtin(), config), dir)
}

fn claim(max: usize) -> ClaimRequest {
    ClaimRequest {
        holder: "t".into(),
        capabilities: vec!["noop".into(), "exec".into()],
        kinds: None,
        max,
        lease_ms: 30_000,
    }
}

#[tokio::test]
async fn bad_submissions_are_refused_whole_and_store_nothing() {
    let (q, _dir) = queue().await;
    let good = SubmitRequest::new("noop", json!({}));
    let cases: Vec<(SubmitRequest, &str)> = vec![
        (SubmitRequest::new("nope", json!({})), "unknown_kind"),
        (SubmitRequest::new("exec", json!({ "program": 42 })), "invalid_payload"),
        (SubmitRequest::new("exec", json!({ "program": "ls", "shell": true })), "invalid_payload"),
        (SubmitRequest::new("noop", json!({ "blob": "x".repeat(2_000) })), "payload_too_large"),
        (SubmitRequest { max_attempts: Some(0), ..good.clone() }, "bad_request"),
    ];
    for (bad, code) in cases {
        let err = q.submit("t", vec![good.clone(), bad.clone()]).await.unwrap_err();
        assert_eq!(err.code().as_str(), code, "{bad:?}: {err}");
    }
    assert!(matches!(q.submit("t", vec![]).await, Err(QueueError::BadRequest(_))));
    let stored = q.store().list(&TaskFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert!(stored.is_empty(), "a refused submission stored {} tasks", stored.len());
}

#[tokio::test]
async fn an_idle_claimer_is_woken_by_a_submission() {
    let (q, _dir) = queue().await;
    let claimer = {
        let q = q.clone();
        tokio::spawn(async move { q.claim(claim(1), Duration::from_secs(60)).await.unwrap() })
    };
    // The claimer may or may not be waiting yet; either way it must get the task.
    let id = q.submit("t", vec![SubmitRequest::new("noop", json!({}))]).await.unwrap()[0].id;
    let got = tokio::time::timeout(Duration::from_secs(30), claimer)
        .await
        .expect("claimer never woke")
        .unwrap();
    assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), vec![id]);
}

#[tokio::test]
async fn waiting_for_a_task_returns_when_it_finishes() {
    let (q, _dir) = queue().await;
    let id = q.submit("t", vec![SubmitRequest::new("noop", json!({}))]).await.unwrap()[0].id;
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.wait_finished(id, Duration::from_secs(60)).await.unwrap() })
    };
    let task = q.claim(claim(1), Duration::ZERO).await.unwrap().remove(0);
    let fence = task.lease.unwrap().fence;
    let report = dreamos_core::Completion {
        task_id: id,
        fence,
        outcome: dreamos_core::Outcome::Succeeded { result: json!(7) },
    };
    q.store().complete("t", vec![report]).await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("waiter never woke")
        .unwrap();
    assert_eq!((done.state, done.result), (TaskState::Succeeded, Some(json!(7))));
}

/// Two nodes on one PostgreSQL database: a claimer waiting on one is woken by a submission on
/// the other through LISTEN/NOTIFY (the fallback poll is set far beyond the test's patience).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notify_wakes_a_claimer_on_another_node() {
    let url = std::env::var("DREAMOS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("q_notify_{}", std::process::id());
    let open = |schema: String| {
        let url = url.clone();
        async move {
            let config = StoreConfig { pg_schema: Some(schema), ..StoreConfig::default() };
            dreamos_store::open(&url, config, Arc::new(SystemClock)).await
        }
    };
    let first = match open(schema.clone()).await {
        Ok(s) => s,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL is required in CI: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL unreachable at {url} ({e})");
            return;
        }
    };
    let second = open(schema).await.unwrap();
    let patient =
        QueueConfig { poll_fallback: Duration::from_secs(3_600), ..QueueConfig::default() };
    let node_a = Queue::new(first, KindRegistry::builtin(), patient.clone());
    let node_b = Queue::new(second, KindRegistry::builtin(), patient);
    let claimer = {
        let node_b = node_b.clone();
        tokio::spawn(
            async move { node_b.claim(claim(1), Duration::from_secs(3_600)).await.unwrap() },
        )
    };
    // Submit repeatedly until the claimer holds a task: a submission that lands before the
    // claimer's LISTEN is in place is simply found by its first claim.
    let woke = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            node_a.submit("t", vec![SubmitRequest::new("noop", json!({}))]).await.unwrap();
            if claimer.is_finished() {
                return claimer.await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the claimer on the other node was never woken");
    assert_eq!(woke.len(), 1);
    node_a.store().close().await;
    node_b.store().close().await;
    use sqlx::Executor;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    pool.execute(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS q_notify_{} CASCADE",
        std::process::id()
    )))
    .await
    .unwrap();
}
