//! What users rely on from the queue, checked on both backends with a hand-moved clock.

use std::collections::HashSet;
use std::sync::Arc;

use dreamos_core::{
    Completion, EventKind, NewTask, Outcome, Priority, RetryPolicy, TaskError, TaskId, TaskState,
    error_class,
};
use dreamos_store::{ClaimRequest, Heartbeat, Store, StoreError, TaskFilter};
use serde_json::json;

use crate::both_backends;
use crate::common::{AGING_MS, Harness};

const LEASE_MS: i64 = 30_000;

fn noop() -> NewTask {
    NewTask::new("noop", json!({}))
}

fn with_priority(p: Priority) -> NewTask {
    NewTask { priority: p, payload: json!({ "p": p.as_str() }), ..noop() }
}

fn claim_req(holder: &str, max: usize) -> ClaimRequest {
    ClaimRequest {
        holder: holder.into(),
        capabilities: vec!["noop".into()],
        kinds: None,
        max,
        lease_ms: LEASE_MS,
    }
}

async fn submit_one(store: &Arc<dyn Store>, task: NewTask) -> TaskId {
    store.submit(vec![task]).await.unwrap()[0].id
}

async fn state(store: &Arc<dyn Store>, id: TaskId) -> TaskState {
    store.get(id).await.unwrap().unwrap().state
}

fn success(id: TaskId, fence: i64) -> Completion {
    Completion { task_id: id, fence, outcome: Outcome::Succeeded { result: json!({"ok": true}) } }
}

fn failure(id: TaskId, fence: i64, retryable: bool) -> Completion {
    Completion {
        task_id: id,
        fence,
        outcome: Outcome::Failed {
            error: TaskError { class: "boom".into(), message: "it broke".into() },
            retryable,
        },
    }
}

async fn lifecycle_is_recorded(h: &Harness) {
    let s = &h.store;
    let id = submit_one(s, noop()).await;
    assert_eq!(state(s, id).await, TaskState::Queued);
    let claimed = s.claim(claim_req("agent-1", 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let task = &claimed[0];
    assert_eq!((task.id, task.state, task.attempts), (id, TaskState::Running, 1));
    let lease = task.lease.clone().unwrap();
    assert_eq!(lease.holder, "agent-1");
    assert_eq!(lease.expires_at_ms, h.clock_now() + LEASE_MS);

    let progress = dreamos_core::Progress { percent: 40.0, message: "halfway-ish".into() };
    let beat = Heartbeat {
        task_id: id,
        fence: lease.fence,
        lease_ms: LEASE_MS,
        progress: Some(progress.clone()),
        holder: None,
    };
    let answers = s.heartbeat(vec![beat]).await.unwrap();
    assert!(!answers[0].as_ref().unwrap().cancel_requested);
    assert_eq!(s.get(id).await.unwrap().unwrap().progress, Some(progress));

    let results = s.complete("agent-1", vec![success(id, lease.fence)]).await.unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &TaskState::Succeeded);
    let done = s.get(id).await.unwrap().unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert!(done.lease.is_none() && done.finished_at_ms.is_some());

    let kinds: Vec<EventKind> = s.events(id).await.unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Submitted, EventKind::Claimed, EventKind::Succeeded]);
    // Nothing else is claimable.
    assert!(s.claim(claim_req("agent-1", 10)).await.unwrap().is_empty());
}

impl Harness {
    fn clock_now(&self) -> i64 {
        use dreamos_core::Clock;
        self.clock.now_ms()
    }
}

async fn claims_follow_priority_then_submission_order(h: &Harness) {
    let s = &h.store;
    let order =
        [Priority::Low, Priority::Normal, Priority::Critical, Priority::High, Priority::Critical];
    let ids = s.submit(order.iter().map(|p| with_priority(*p)).collect()).await.unwrap();
    let claimed = s.claim(claim_req("a", 10)).await.unwrap();
    let got: Vec<TaskId> = claimed.iter().map(|t| t.id).collect();
    let want = vec![ids[2].id, ids[4].id, ids[3].id, ids[1].id, ids[0].id];
    assert_eq!(got, want);
}

async fn waiting_low_priority_work_ages_past_fresh_urgent_work(h: &Harness) {
    let s = &h.store;
    let low = submit_one(s, with_priority(Priority::Low)).await;
    // Three levels separate low from critical; waiting a bit longer than three aging
    // intervals puts the old low task ahead of a brand-new critical one.
    h.clock.advance_ms(3 * AGING_MS + 1);
    let critical = submit_one(s, with_priority(Priority::Critical)).await;
    let fresh_low = submit_one(s, with_priority(Priority::Low)).await;
    let got: Vec<TaskId> = s.claim(claim_req("a", 3)).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(got, vec![low, critical, fresh_low]);
}

async fn failures_retry_with_backoff_then_dead_letter(h: &Harness) {
    let s = &h.store;
    let retry = RetryPolicy { max_attempts: 2, base_delay_ms: 1_000, max_delay_ms: 10_000 };
    let id = submit_one(s, NewTask { retry, ..noop() }).await;

    let first = s.claim(claim_req("a", 1)).await.unwrap().remove(0);
    let fence = first.lease.unwrap().fence;
    assert_eq!(
        s.complete("a", vec![failure(id, fence, true)]).await.unwrap()[0].as_ref().unwrap(),
        &TaskState::Queued
    );
    let waiting = s.get(id).await.unwrap().unwrap();
    let delay = waiting.available_at_ms - h.clock_now();
    assert!((500..=1_000).contains(&delay), "backoff {delay} ms is outside half..all of 1 s");
    assert_eq!(waiting.error.as_ref().unwrap().class, "boom");
    // Not claimable during the backoff.
    assert!(s.claim(claim_req("a", 1)).await.unwrap().is_empty());
    h.clock.advance_ms(delay);
    let second = s.claim(claim_req("a", 1)).await.unwrap().remove(0);
    assert_eq!(second.attempts, 2);
    let fence = second.lease.unwrap().fence;
    assert_eq!(
        s.complete("a", vec![failure(id, fence, true)]).await.unwrap()[0].as_ref().unwrap(),
        &TaskState::Failed
    );

    // The dead-letter set: failed tasks stay, listed and inspectable.
    let dead = s
        .list(&TaskFilter { state: Some(TaskState::Failed), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(dead.iter().map(|t| t.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(dead[0].error.as_ref().unwrap().message, "it broke");

    // A manual retry gives it a fresh budget.
    assert_eq!(s.retry(id, "operator").await.unwrap(), TaskState::Queued);
    let again = s.claim(claim_req("a", 1)).await.unwrap().remove(0);
    assert_eq!((again.id, again.attempts), (id, 1));
    let kinds: Vec<EventKind> = s.events(id).await.unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Submitted,
            EventKind::Claimed,
            EventKind::RetryScheduled,
            EventKind::Claimed,
            EventKind::Failed,
            EventKind::Retried,
            EventKind::Claimed
        ]
    );
}

async fn non_retryable_failure_goes_straight_to_dead_letters(h: &Harness) {
    let s = &h.store;
    let id = submit_one(s, noop()).await;
    let fence = s.claim(claim_req("a", 1)).await.unwrap()[0].lease.clone().unwrap().fence;
    s.complete("a", vec![failure(id, fence, false)]).await.unwrap();
    assert_eq!(state(s, id).await, TaskState::Failed);
    // Retrying a task that is not failed or cancelled is refused.
    let ok = submit_one(s, noop()).await;
    assert!(matches!(s.retry(ok, "op").await, Err(StoreError::InvalidTransition { .. })));
}

async fn expired_lease_fails_the_attempt_and_fences_out_the_old_holder(h: &Harness) {
    let s = &h.store;
    let id = submit_one(
        s,
        NewTask { retry: RetryPolicy { base_delay_ms: 0, ..RetryPolicy::default() }, ..noop() },
    )
    .await;
    let old = s.claim(claim_req("slow", 1)).await.unwrap().remove(0).lease.unwrap();
    h.clock.advance_ms(LEASE_MS + 1);
    assert_eq!(s.expire_leases().await.unwrap(), vec![id]);
    let t = s.get(id).await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Queued);
    assert_eq!(t.error.unwrap().class, error_class::LEASE_EXPIRED);

    let new = s.claim(claim_req("fast", 1)).await.unwrap().remove(0).lease.unwrap();
    assert!(new.fence > old.fence);
    // The old holder wakes up: its heartbeat and its completion are both refused.
    let beat = Heartbeat {
        task_id: id,
        fence: old.fence,
        lease_ms: LEASE_MS,
        progress: None,
        holder: None,
    };
    assert!(matches!(
        s.heartbeat(vec![beat]).await.unwrap()[0],
        Err(StoreError::StaleLease { .. })
    ));
    let stale = s.complete("slow", vec![success(id, old.fence)]).await.unwrap();
    assert!(matches!(stale[0], Err(StoreError::StaleLease { .. })));
    assert_eq!(state(s, id).await, TaskState::Running);
    s.complete("fast", vec![success(id, new.fence)]).await.unwrap()[0].as_ref().unwrap();
    assert_eq!(state(s, id).await, TaskState::Succeeded);
    // And once finished, nobody's token works any more.
    assert!(matches!(
        s.complete("fast", vec![success(id, new.fence)]).await.unwrap()[0],
        Err(StoreError::StaleLease { .. })
    ));
    let unknown = s.complete("x", vec![success(TaskId(999_999), 1)]).await.unwrap();
    assert!(matches!(unknown[0], Err(StoreError::NotFound(_))));
}

async fn lost_holders_tasks_are_retried_with_the_given_reason(h: &Harness) {
    let s = &h.store;
    let id = submit_one(
        s,
        NewTask { retry: RetryPolicy { base_delay_ms: 0, ..RetryPolicy::default() }, ..noop() },
    )
    .await;
    let other = submit_one(s, noop()).await;
    s.claim(claim_req("local:node1/0", 1)).await.unwrap();
    s.claim(claim_req("remote-7", 1)).await.unwrap();
    assert_eq!(s.fail_holders("local:node1/", error_class::AGENT_LOST).await.unwrap(), vec![id]);
    let t = s.get(id).await.unwrap().unwrap();
    assert_eq!(
        (t.state, t.error.unwrap().class.as_str()),
        (TaskState::Queued, error_class::AGENT_LOST)
    );
    assert_eq!(state(s, other).await, TaskState::Running);
}

async fn cancellation_of_queued_and_running_tasks(h: &Harness) {
    let s = &h.store;
    let queued = submit_one(s, noop()).await;
    assert_eq!(s.cancel(queued, "op").await.unwrap(), TaskState::Cancelled);
    assert!(matches!(s.cancel(queued, "op").await, Err(StoreError::InvalidTransition { .. })));
    assert!(matches!(s.cancel(TaskId(424_242), "op").await, Err(StoreError::NotFound(_))));

    let running = submit_one(s, noop()).await;
    let lease = s.claim(claim_req("a", 1)).await.unwrap().remove(0).lease.unwrap();
    assert_eq!(s.cancel(running, "op").await.unwrap(), TaskState::Running);
    let beat = Heartbeat {
        task_id: running,
        fence: lease.fence,
        lease_ms: LEASE_MS,
        progress: None,
        holder: None,
    };
    assert!(s.heartbeat(vec![beat]).await.unwrap()[0].as_ref().unwrap().cancel_requested);
    let done = s
        .complete(
            "a",
            vec![Completion { task_id: running, fence: lease.fence, outcome: Outcome::Cancelled }],
        )
        .await
        .unwrap();
    assert_eq!(done[0].as_ref().unwrap(), &TaskState::Cancelled);

    // A running task whose holder vanishes after a cancel request ends cancelled, not retried.
    let orphan = submit_one(s, noop()).await;
    s.claim(claim_req("gone", 1)).await.unwrap();
    s.cancel(orphan, "op").await.unwrap();
    h.clock.advance_ms(LEASE_MS + 1);
    s.expire_leases().await.unwrap();
    assert_eq!(state(s, orphan).await, TaskState::Cancelled);
}

async fn dependencies_wait_and_failures_cascade(h: &Harness) {
    let s = &h.store;
    let a = submit_one(s, noop()).await;
    let b = submit_one(s, NewTask { depends_on: vec![a], ..noop() }).await;
    let c = submit_one(s, NewTask { depends_on: vec![b], ..noop() }).await;
    assert_eq!(state(s, b).await, TaskState::Pending);
    let claimed = s.claim(claim_req("x", 10)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![a],
        "pending tasks are not claimable"
    );
    s.complete("x", vec![success(a, claimed[0].lease.as_ref().unwrap().fence)]).await.unwrap();
    assert_eq!(state(s, b).await, TaskState::Queued);
    assert_eq!(state(s, c).await, TaskState::Pending);

    // b fails for good: c fails with it, and so does a task submitted later that needs b.
    let lease = s.claim(claim_req("x", 1)).await.unwrap().remove(0).lease.unwrap();
    s.complete("x", vec![failure(b, lease.fence, false)]).await.unwrap();
    let ct = s.get(c).await.unwrap().unwrap();
    assert_eq!(
        (ct.state, ct.error.unwrap().class.as_str()),
        (TaskState::Failed, error_class::DEPENDENCY_FAILED)
    );
    let late = submit_one(s, NewTask { depends_on: vec![b], ..noop() }).await;
    assert_eq!(state(s, late).await, TaskState::Failed);

    // Unknown dependencies are refused and nothing is stored.
    let before = s.list(&TaskFilter { limit: 100, ..Default::default() }).await.unwrap().len();
    let refused =
        s.submit(vec![noop(), NewTask { depends_on: vec![TaskId(777_777)], ..noop() }]).await;
    assert!(matches!(refused, Err(StoreError::DependencyNotFound(TaskId(777_777)))));
    assert_eq!(
        s.list(&TaskFilter { limit: 100, ..Default::default() }).await.unwrap().len(),
        before
    );

    // Retrying the failed chain: the dependent waits again for its dependency.
    s.retry(b, "op").await.unwrap();
    assert_eq!(s.retry(c, "op").await.unwrap(), TaskState::Pending);
    let lease = s.claim(claim_req("x", 1)).await.unwrap().remove(0).lease.unwrap();
    s.complete("x", vec![success(b, lease.fence)]).await.unwrap();
    assert_eq!(state(s, c).await, TaskState::Queued);
}

async fn idempotency_key_returns_the_original_task(h: &Harness) {
    let s = &h.store;
    let keyed = |n| NewTask {
        idempotency_key: Some("build-42".into()),
        payload: json!({ "n": n }),
        ..noop()
    };
    let first = s.submit(vec![keyed(1)]).await.unwrap().remove(0);
    let second = s.submit(vec![keyed(2)]).await.unwrap().remove(0);
    assert!(first.created && !second.created);
    assert_eq!(first.id, second.id);
    assert_eq!(s.get(first.id).await.unwrap().unwrap().payload, json!({ "n": 1 }));
    // Concurrent submissions with one key still make one task.
    let key = |i: usize| NewTask {
        idempotency_key: Some("race".into()),
        payload: json!({ "i": i }),
        ..noop()
    };
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.submit(vec![key(i)]).await.unwrap().remove(0) })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut created = 0;
    for hd in handles {
        let r = hd.await.unwrap();
        ids.insert(r.id);
        created += usize::from(r.created);
    }
    assert_eq!((ids.len(), created), (1, 1));
}

async fn delayed_tasks_wait_for_their_time(h: &Harness) {
    let s = &h.store;
    let at = h.clock_now() + 5_000;
    let id = submit_one(s, NewTask { run_at_ms: Some(at), ..noop() }).await;
    assert!(s.claim(claim_req("a", 1)).await.unwrap().is_empty());
    assert_eq!(s.next_deadline().await.unwrap(), Some(at));
    h.clock.advance_ms(5_000);
    assert_eq!(s.claim(claim_req("a", 1)).await.unwrap()[0].id, id);
}

async fn finished_tasks_move_to_the_archive_and_stay_queryable(h: &Harness) {
    let s = &h.store;
    let keyed = NewTask { idempotency_key: Some("arch".into()), ..noop() };
    let id = submit_one(s, keyed.clone()).await;
    let open = submit_one(s, noop()).await;
    let lease = s.claim(claim_req("a", 1)).await.unwrap().remove(0).lease.unwrap();
    s.complete("a", vec![success(id, lease.fence)]).await.unwrap();
    h.clock.advance_ms(10_000);
    assert_eq!(s.archive(h.clock_now() - 5_000).await.unwrap(), 1);
    let archived = s.get(id).await.unwrap().unwrap();
    assert!(archived.archived);
    assert_eq!(archived.state, TaskState::Succeeded);
    let listed =
        s.list(&TaskFilter { archived: true, limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![id]);
    let live = s.list(&TaskFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(live.iter().map(|t| t.id).collect::<Vec<_>>(), vec![open]);
    assert_eq!(s.events(id).await.unwrap().last().unwrap().kind, EventKind::Archived);
    // The key still answers with the archived task; a new id is never the old one.
    let again = s.submit(vec![keyed]).await.unwrap().remove(0);
    assert_eq!((again.id, again.created), (id, false));
    let fresh = submit_one(s, noop()).await;
    assert!(fresh.0 > id.0 && fresh.0 > open.0);
}

async fn agents_claim_only_what_their_capabilities_allow(h: &Harness) {
    let s = &h.store;
    let gpu = submit_one(s, NewTask { capabilities: vec!["gpu".into()], ..noop() }).await;
    let index = submit_one(s, NewTask::new("index", json!({}))).await;
    let plain = submit_one(s, noop()).await;
    let got = s.claim(claim_req("cpu-only", 10)).await.unwrap();
    assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), vec![plain]);
    let caps = |c: &[&str]| ClaimRequest {
        holder: "b".into(),
        capabilities: c.iter().map(|s| s.to_string()).collect(),
        kinds: None,
        max: 10,
        lease_ms: LEASE_MS,
    };
    assert_eq!(
        s.claim(caps(&["noop", "gpu"])).await.unwrap().iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![gpu]
    );
    assert_eq!(
        s.claim(caps(&["index"])).await.unwrap().iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![index]
    );
}

async fn concurrent_claimers_never_share_a_task(h: &Harness) {
    let s = &h.store;
    const TOTAL: usize = 600;
    s.submit((0..TOTAL).map(|_| noop()).collect()).await.unwrap();
    let mut handles = Vec::new();
    for agent in 0..8 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = s.claim(claim_req(&format!("agent-{agent}"), 7)).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                let reports =
                    batch.iter().map(|t| success(t.id, t.lease.as_ref().unwrap().fence)).collect();
                for r in s.complete("x", reports).await.unwrap() {
                    r.unwrap();
                }
                mine.extend(batch.into_iter().map(|t| t.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for hd in handles {
        for id in hd.await.unwrap() {
            assert!(seen.insert(id), "task {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), TOTAL);
    let counts = s.counts().await.unwrap();
    let succeeded: u64 =
        counts.iter().filter(|c| c.state == TaskState::Succeeded).map(|c| c.count).sum();
    assert_eq!(succeeded, TOTAL as u64);
}

async fn released_tasks_keep_their_attempt_budget(h: &Harness) {
    let s = &h.store;
    let id = submit_one(
        s,
        NewTask { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..noop() },
    )
    .await;
    let lease = s.claim(claim_req("a", 1)).await.unwrap().remove(0).lease.unwrap();
    let released = s
        .complete(
            "a",
            vec![Completion { task_id: id, fence: lease.fence, outcome: Outcome::Released }],
        )
        .await
        .unwrap();
    assert_eq!(released[0].as_ref().unwrap(), &TaskState::Queued);
    let again = s.claim(claim_req("b", 1)).await.unwrap().remove(0);
    assert_eq!(again.attempts, 1, "a released attempt does not count");
}

/// Many callers at once (on SQLite they share group commits, merged into set-based
/// statements): a bad request among them is refused alone, and every good one gets its own
/// answer.
async fn concurrent_callers_get_their_own_answers(h: &Harness) {
    let s = &h.store;
    let mut handles = Vec::new();
    for i in 0..60_i64 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let task = if i % 20 == 7 {
                NewTask { depends_on: vec![TaskId(900_000 + i)], ..noop() }
            } else {
                NewTask { payload: json!({ "i": i }), ..noop() }
            };
            (i, s.submit(vec![task.clone(), task]).await)
        }));
    }
    let mut ids = HashSet::new();
    for hd in handles {
        let (i, answer) = hd.await.unwrap();
        if i % 20 == 7 {
            assert!(matches!(answer, Err(StoreError::DependencyNotFound(_))), "{i}: {answer:?}");
        } else {
            let got = answer.unwrap();
            assert_eq!(got.len(), 2);
            for t in &got {
                assert!(ids.insert(t.id));
                assert_eq!(
                    s.get(t.id).await.unwrap().unwrap().payload,
                    json!({ "i": i }),
                    "answer of caller {i}"
                );
            }
        }
    }
    assert_eq!(ids.len(), 57 * 2);
    // Concurrent claims and reports, including stale ones, each judged on its own.
    let mut handles = Vec::new();
    for agent in 0..12 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim(claim_req(&format!("a{agent}"), 1)).await.unwrap();
                let Some(t) = got.into_iter().next() else { return mine };
                let fence = t.lease.unwrap().fence;
                let stale = s.complete("x", vec![success(t.id, fence - 1)]).await.unwrap();
                assert!(matches!(stale[0], Err(StoreError::StaleLease { .. })));
                s.complete("x", vec![success(t.id, fence)]).await.unwrap()[0].as_ref().unwrap();
                mine.push(t.id);
            }
        }));
    }
    let mut claimed = HashSet::new();
    for hd in handles {
        for id in hd.await.unwrap() {
            assert!(claimed.insert(id), "{id} claimed twice");
        }
    }
    assert_eq!(claimed, ids);
}

async fn a_task_reads_with_its_history_live_or_archived(h: &Harness) {
    let s = &h.store;
    assert!(s.detail(TaskId(999)).await.unwrap().is_none());
    let id = submit_one(s, noop()).await;
    let (task, events) = s.detail(id).await.unwrap().unwrap();
    assert_eq!((task.id, task.state, events.len()), (id, TaskState::Queued, 1));
    let lease = s.claim(claim_req("a", 1)).await.unwrap().remove(0).lease.unwrap();
    s.complete("a", vec![success(id, lease.fence)]).await.unwrap();
    let (task, events) = s.detail(id).await.unwrap().unwrap();
    assert_eq!(task, s.get(id).await.unwrap().unwrap());
    assert_eq!(events, s.events(id).await.unwrap());
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Submitted, EventKind::Claimed, EventKind::Succeeded]);
    h.clock.advance_ms(10_000);
    assert_eq!(s.archive(h.clock_now() - 5_000).await.unwrap(), 1);
    let (task, events) = s.detail(id).await.unwrap().unwrap();
    assert!(task.archived, "read from the archive");
    assert_eq!(events.last().map(|e| e.kind), Some(EventKind::Archived));
    assert_eq!(events, s.events(id).await.unwrap());
}

both_backends!(
    a_task_reads_with_its_history_live_or_archived,
    concurrent_callers_get_their_own_answers,
    lifecycle_is_recorded,
    claims_follow_priority_then_submission_order,
    waiting_low_priority_work_ages_past_fresh_urgent_work,
    failures_retry_with_backoff_then_dead_letter,
    non_retryable_failure_goes_straight_to_dead_letters,
    expired_lease_fails_the_attempt_and_fences_out_the_old_holder,
    lost_holders_tasks_are_retried_with_the_given_reason,
    cancellation_of_queued_and_running_tasks,
    dependencies_wait_and_failures_cascade,
    idempotency_key_returns_the_original_task,
    delayed_tasks_wait_for_their_time,
    finished_tasks_move_to_the_archive_and_stay_queryable,
    agents_claim_only_what_their_capabilities_allow,
    concurrent_claimers_never_share_a_task,
    released_tasks_keep_their_attempt_budget,
);
