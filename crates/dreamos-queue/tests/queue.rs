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
