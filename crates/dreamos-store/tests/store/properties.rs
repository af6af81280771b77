//! Property tests: random sequences of queue operations, on both backends, checked against a
//! small model after every step. They assert the queue's safety promises: never an illegal
//! transition (each task's event history replays through the state machine to its state),
//! never a lost task, never a stale token accepted, never two holders of one task.

use std::collections::{BTreeMap, HashSet};

use dreamos_core::{
    Completion, EventKind, NewTask, Outcome, Priority, RetryPolicy, Task, TaskError, TaskId,
    TaskState,
};
use dreamos_store::{ClaimRequest, Heartbeat, StoreError, TaskFilter};
use proptest::prelude::*;
use serde_json::json;

use crate::common::{self, Harness};

#[derive(Debug, Clone)]
enum Op {
    Submit { n: usize, priority: u8, depend_on: Option<usize>, max_attempts: u32 },
    Claim { agent: u8, max: usize },
    Report { pick: usize, stale: bool, outcome: u8 },
    Heartbeat { pick: usize, stale: bool },
    Cancel { pick: usize },
    Retry { pick: usize },
    Advance { ms: i64 },
    ExpireLeases,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1..4usize, 0..4u8, proptest::option::of(0..64usize), 1..4u32)
            .prop_map(|(n, priority, depend_on, max_attempts)| Op::Submit { n, priority, depend_on, max_attempts }),
        3 => (0..3u8, 1..4usize).prop_map(|(agent, max)| Op::Claim { agent, max }),
        3 => (0..64usize, proptest::bool::weighted(0.25), 0..5u8)
            .prop_map(|(pick, stale, outcome)| Op::Report { pick, stale, outcome }),
        1 => (0..64usize, any::<bool>()).prop_map(|(pick, stale)| Op::Heartbeat { pick, stale }),
        1 => (0..64usize).prop_map(|pick| Op::Cancel { pick }),
        1 => (0..64usize).prop_map(|pick| Op::Retry { pick }),
        1 => (0..40_000i64).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::ExpireLeases),
    ]
}

const LEASE_MS: i64 = 20_000;

/// What the test knows: every task it submitted and the newest fence any claim handed out.
#[derive(Default)]
struct Model {
    ids: Vec<TaskId>,
    latest_fence: BTreeMap<TaskId, i64>,
}

impl Model {
    fn pick(&self, i: usize) -> Option<TaskId> {
        (!self.ids.is_empty()).then(|| self.ids[i % self.ids.len()])
    }
}

async fn run(h: &Harness, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let s = &h.store;
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Submit { n, priority, depend_on, max_attempts } => {
                let deps: Vec<TaskId> = depend_on.and_then(|i| model.pick(i)).into_iter().collect();
                let task = NewTask {
                    priority: Priority::from_rank(i64::from(priority)).unwrap(),
                    depends_on: deps,
                    retry: RetryPolicy { max_attempts, base_delay_ms: 100, max_delay_ms: 5_000 },
                    ..NewTask::new("noop", json!({}))
                };
                let out = s.submit(vec![task; n]).await.unwrap();
                model.ids.extend(out.iter().map(|t| t.id));
            }
            Op::Claim { agent, max } => {
                let running_before: HashSet<TaskId> = all(h)
                    .await
                    .iter()
                    .filter(|t| t.state == TaskState::Running)
                    .map(|t| t.id)
                    .collect();
                let req = ClaimRequest {
                    holder: format!("agent-{agent}"),
                    capabilities: vec!["noop".into()],
                    kinds: None,
                    max,
                    lease_ms: LEASE_MS,
                };
                let claimed = s.claim(req).await.unwrap();
                prop_assert!(claimed.len() <= max);
                for t in claimed {
                    prop_assert!(
                        !running_before.contains(&t.id),
                        "task {} claimed while held",
                        t.id
                    );
                    let fence = t.lease.unwrap().fence;
                    let previous = model.latest_fence.insert(t.id, fence);
                    prop_assert!(previous.is_none_or(|p| p < fence), "fences must grow");
                }
            }
            Op::Report { pick, stale, outcome } => {
                let Some(id) = model.pick(pick) else { continue };
                let Some(&latest) = model.latest_fence.get(&id) else { continue };
                let fence = if stale { latest - 1 } else { latest };
                let was = s.get(id).await.unwrap().unwrap().state;
                let outcome = match outcome {
                    0 | 1 => Outcome::Succeeded { result: json!(1) },
                    2 => Outcome::Failed {
                        error: TaskError { class: "e".into(), message: "m".into() },
                        retryable: true,
                    },
                    3 => Outcome::Failed {
                        error: TaskError { class: "e".into(), message: "m".into() },
                        retryable: false,
                    },
                    _ => Outcome::Cancelled,
                };
                let answer = s
                    .complete("agent", vec![Completion { task_id: id, fence, outcome }])
                    .await
                    .unwrap()
                    .remove(0);
                if stale || was != TaskState::Running {
                    prop_assert!(
                        matches!(answer, Err(StoreError::StaleLease { .. })),
                        "stale report accepted: {answer:?}"
                    );
                } else {
                    prop_assert!(answer.is_ok(), "current holder refused: {answer:?}");
                }
            }
            Op::Heartbeat { pick, stale } => {
                let Some(id) = model.pick(pick) else { continue };
                let Some(&latest) = model.latest_fence.get(&id) else { continue };
                let was = s.get(id).await.unwrap().unwrap().state;
                let fence = if stale { latest - 1 } else { latest };
                let answer = s
                    .heartbeat(vec![Heartbeat {
                        task_id: id,
                        fence,
                        lease_ms: LEASE_MS,
                        progress: None,
                        holder: None,
                    }])
                    .await
                    .unwrap()
                    .remove(0);
                prop_assert_eq!(answer.is_ok(), !stale && was == TaskState::Running);
            }
            Op::Cancel { pick } => {
                let Some(id) = model.pick(pick) else { continue };
                let was = s.get(id).await.unwrap().unwrap().state;
                let answer = s.cancel(id, "op").await;
                prop_assert_eq!(answer.is_ok(), !was.is_terminal());
            }
            Op::Retry { pick } => {
                let Some(id) = model.pick(pick) else { continue };
                let was = s.get(id).await.unwrap().unwrap().state;
                let answer = s.retry(id, "op").await;
                prop_assert_eq!(
                    answer.is_ok(),
                    matches!(was, TaskState::Failed | TaskState::Cancelled)
                );
            }
            Op::Advance { ms } => h.clock.advance_ms(ms),
            Op::ExpireLeases => {
                s.expire_leases().await.unwrap();
            }
        }
        check_invariants(h, &model).await?;
    }
    Ok(())
}

async fn all(h: &Harness) -> Vec<Task> {
    h.store.list(&TaskFilter { limit: 10_000, ..Default::default() }).await.unwrap()
}

async fn check_invariants(h: &Harness, model: &Model) -> Result<(), TestCaseError> {
    let tasks = all(h).await;
    prop_assert_eq!(tasks.len(), model.ids.len(), "a task was lost or invented");
    for t in &tasks {
        prop_assert_eq!(t.state == TaskState::Running, t.lease.is_some());
        prop_assert_eq!(t.state.is_terminal(), t.finished_at_ms.is_some());
        prop_assert!(t.attempts <= t.retry.max_attempts);
        if let Some(lease) = &t.lease {
            // Exactly one holder: the lease carries the newest fence ever handed out.
            prop_assert_eq!(Some(&lease.fence), model.latest_fence.get(&t.id));
        }
        let events = h.store.events(t.id).await.unwrap();
        let replayed = replay(&events.iter().map(|e| e.kind).collect::<Vec<_>>());
        prop_assert!(
            replayed.as_ref().is_ok_and(|states| states.contains(&t.state)),
            "task {} is {} but its history {:?} replays to {:?}",
            t.id,
            t.state,
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            replayed
        );
    }
    Ok(())
}

/// Replays a history through the state machine; the states it may end in, or the first
/// illegal step.
fn replay(kinds: &[EventKind]) -> Result<Vec<TaskState>, String> {
    use TaskState::*;
    let mut states: Vec<TaskState> = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let from = |allowed: &[TaskState]| states.iter().any(|s| allowed.contains(s));
        let next: Vec<TaskState> = match kind {
            EventKind::Submitted if i == 0 => vec![Queued, Pending],
            EventKind::Unblocked if from(&[Pending]) => vec![Queued],
            EventKind::Claimed if from(&[Queued]) => vec![Running],
            EventKind::Released | EventKind::RetryScheduled if from(&[Running]) => vec![Queued],
            EventKind::Succeeded if from(&[Running, Pending]) => vec![Succeeded],
            EventKind::FannedOut if from(&[Running]) => vec![Pending],
            EventKind::Failed if from(&[Running, Pending]) => vec![Failed],
            EventKind::CancelRequested if from(&[Running]) => vec![Running],
            EventKind::Cancelled if from(&[Queued, Pending, Running]) => vec![Cancelled],
            EventKind::Retried if from(&[Failed, Cancelled]) => vec![Queued, Pending],
            EventKind::Archived if from(&[Succeeded, Failed, Cancelled]) => states.clone(),
            other => return Err(format!("illegal {other:?} at step {i} from {states:?}")),
        };
        states = next;
    }
    Ok(states)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_queue_safe_sqlite(ops in proptest::collection::vec(op(), 1..60)) {
        runtime().block_on(async {
            let h = common::sqlite().await;
            let result = run(&h, ops).await;
            h.finish().await;
            result
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_queue_safe_postgres(ops in proptest::collection::vec(op(), 1..60)) {
        runtime().block_on(async {
            let Some(h) = common::postgres().await else { return Ok(()) };
            let result = run(&h, ops).await;
            h.finish().await;
            result
        })?;
    }
}
