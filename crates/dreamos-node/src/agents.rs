//! The node's built-in local agents and what they run.
//!
//! Each local agent claims one task at a time from the queue (woken by the store's change
//! signal), heartbeats its lease at a third of the lease time while the task runs, stops the
//! task when a heartbeat answers that cancellation was requested or that the lease is lost,
//! and reports the outcome with its fencing token. On shutdown they stop claiming, let running
//! tasks finish within the grace period, and release what is still running after it.

use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use dreamos_core::{Completion, Outcome, Progress, Task, TaskError};
use dreamos_queue::Queue;
use dreamos_store::{ClaimRequest, Heartbeat, StoreError, Waiter};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::code;
use crate::config::Config;
use crate::exec;
use crate::metrics::Metrics;
use crate::orchestrator::Orchestrator;
use crate::workspaces::Workspaces;

/// What the local agents share.
#[derive(Clone)]
pub struct AgentContext {
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// Becomes true when the node stops claiming new work.
    pub stop_claiming: watch::Receiver<bool>,
    /// Becomes true when the grace period is over: running tasks are released.
    pub hard_stop: watch::Receiver<bool>,
    /// The code workspaces (for `index`, `search` and `analyze`).
    pub workspaces: Arc<Workspaces>,
    /// Local agents ask the orchestrator for work like remote ones (limits, least-loaded).
    pub orchestrator: Arc<Orchestrator>,
}

/// The capabilities of every local agent.
pub const LOCAL_CAPABILITIES: [&str; 6] = ["noop", "exec", "index", "search", "analyze", "fanout"];

/// How often a task that reports progress heartbeats (with its latest progress).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The lease-holder prefix of this node's local agents; on start the node fails the attempts
/// a previous run of it left behind (`agent_lost`).
pub fn local_prefix(node_id: &str) -> String {
    format!("local:{node_id}/")
}

pub fn spawn_local_agents(ctx: AgentContext, node_id: &str, count: usize) -> Vec<JoinHandle<()>> {
    (0..count)
        .map(|i| {
            let ctx = ctx.clone();
            // The trailing `/` keeps one agent's name from prefixing another's (1 and 10).
            let holder = format!("{}{i}/", local_prefix(node_id));
            tokio::spawn(async move { supervise(ctx, holder).await })
        })
        .collect()
}

/// Crashes within this window count towards a crash loop.
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// This many crashes within the window is a crash loop.
const CRASH_LOOP: usize = 5;

/// Runs a local agent and restarts it when it crashes (panics): the task it held goes back
/// through the retry policy (`agent_crashed`), and the restart waits 100 ms, doubling with each
/// crash in the last minute up to 30 s. Five crashes within a minute is a crash loop: logged as
/// an error and shown by the `local_agents_crash_looping` metric until the agent runs a minute
/// without crashing.
async fn supervise(ctx: AgentContext, holder: String) {
    let mut crashes: std::collections::VecDeque<std::time::Instant> = Default::default();
    let mut looping = false;
    loop {
        let run = tokio::spawn(agent_loop(ctx.clone(), holder.clone()));
        let error = match run.await {
            Ok(()) => break,
            Err(e) if e.is_panic() => e,
            Err(_) => break,
        };
        let now = std::time::Instant::now();
        crashes.push_back(now);
        while crashes.front().is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW) {
            crashes.pop_front();
        }
        ctx.metrics.agent_restarts.inc();
        match ctx
            .queue
            .store()
            .fail_holders(&holder, dreamos_core::error_class::AGENT_CRASHED)
            .await
        {
            Ok(tasks) => {
                tracing::error!(agent = %holder, error = %error, tasks = tasks.len(), "local agent crashed; its task goes back through the retry policy")
            }
            Err(e) => {
                tracing::error!(agent = %holder, error = %e, "local agent crashed; its lease will lapse")
            }
        }
        let now_looping = crashes.len() >= CRASH_LOOP;
        if now_looping && !looping {
            ctx.metrics.agents_crash_looping.inc();
            tracing::error!(agent = %holder, crashes = crashes.len(), "local agent is crash looping");
        } else if !now_looping && looping {
            ctx.metrics.agents_crash_looping.dec();
        }
        looping = now_looping;
        let backoff =
            Duration::from_millis(100 << (crashes.len().min(9) - 1)).min(Duration::from_secs(30));
        let mut stop = ctx.stop_claiming.clone();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if looping {
        ctx.metrics.agents_crash_looping.dec();
    }
}

/// How long one claim waits before the agent checks whether it should stop.
const CLAIM_WAIT: Duration = Duration::from_millis(500);

async fn agent_loop(ctx: AgentContext, holder: String) {
    let request = ClaimRequest {
        holder: holder.clone(),
        capabilities: LOCAL_CAPABILITIES.map(String::from).to_vec(),
        kinds: None,
        max: 1,
        lease_ms: ctx.config.lease_ms,
    };
    let waiter = Waiter { agent_id: None, claim: request, slots: 1 };
    let stop = ctx.stop_claiming.clone();
    while !*stop.borrow() {
        // Not raced against the stop: a claim that has just been served holds work already
        // committed to this agent, and dropping it would strand that work until its lease
        // lapsed. A claim waits at most CLAIM_WAIT, and what it brings still runs within the
        // grace period.
        let tasks = ctx.orchestrator.claim(waiter.clone(), CLAIM_WAIT).await;
        for task in tasks {
            run_one(&ctx, &holder, task).await;
        }
    }
}

async fn run_one(ctx: &AgentContext, holder: &str, task: Task) {
    let store = ctx.queue.store();
    let Some(lease) = task.lease.clone() else { return };
    let claimed_at = lease.expires_at_ms - ctx.config.lease_ms;
    ctx.metrics
        .dispatch_latency
        .observe((claimed_at - task.available_at_ms).max(0) as f64 / 1000.0);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let progress: Arc<Mutex<Option<Progress>>> = Arc::new(Mutex::new(None));
    let mut work: std::pin::Pin<Box<dyn std::future::Future<Output = Option<Outcome>> + Send>> =
        if task.kind == "fanout" {
            Box::pin(fan_out(ctx, holder, &task, lease.fence))
        } else {
            Box::pin(async { Some(execute(ctx, &task, cancel_rx, progress.clone()).await) })
        };
    let mut beat_every = Duration::from_millis((ctx.config.lease_ms / 3).max(10) as u64);
    if code::CAPABILITIES.contains(&task.kind.as_str()) {
        beat_every = beat_every.min(PROGRESS_EVERY);
    }
    let mut hard_stop = ctx.hard_stop.clone();
    // A cancellation anywhere in the cluster makes every runner heartbeat at once, which is
    // how it learns whether its own task was the one cancelled.
    let mut cancels = store.signals().subscribe_cancels();
    let mut cancels_open = true;
    let outcome = loop {
        let beat_now = tokio::select! {
            // `None`: the attempt was handed off (fan-out); there is nothing to report.
            outcome = &mut work => break outcome,
            _ = tokio::time::sleep(beat_every) => true,
            changed = cancels.changed(), if cancels_open => {
                cancels_open = changed.is_ok();
                cancels_open
            }
            changed = hard_stop.changed() => {
                if changed.is_err() || *hard_stop.borrow() {
                    break Some(Outcome::Released);
                }
                false
            }
        };
        if !beat_now {
            continue;
        }
        let latest = progress.lock().unwrap_or_else(|e| e.into_inner()).take();
        let beat = Heartbeat {
            task_id: task.id,
            fence: lease.fence,
            lease_ms: ctx.config.lease_ms,
            progress: latest,
            holder: None,
        };
        match store.heartbeat(vec![beat]).await.map(|mut a| a.remove(0)) {
            Ok(Ok(answer)) => {
                if answer.cancel_requested {
                    let _ = cancel_tx.send(true);
                }
            }
            Ok(Err(StoreError::StaleLease { .. } | StoreError::NotFound(_))) => {
                tracing::warn!(agent = %holder, task = %task.id, "lease lost; abandoning the attempt");
                break None;
            }
            Ok(Err(e)) | Err(e) => tracing::warn!(agent = %holder, error = %e, "heartbeat failed"),
        }
    };
    // Dropping `work` here kills a program still running (kill on drop).
    drop(work);
    let Some(outcome) = outcome else { return };
    let label = match &outcome {
        Outcome::Succeeded { .. } => "succeeded",
        Outcome::Failed { .. } => "failed",
        Outcome::Cancelled => "cancelled",
        Outcome::Released => "released",
    };
    let report = Completion { task_id: task.id, fence: lease.fence, outcome };
    match store.complete(holder, vec![report]).await.map(|mut r| r.remove(0)) {
        Ok(Ok(_)) => {
            ctx.metrics.record_finished(label);
            let ran_ms = store.clock().now_ms() - claimed_at;
            ctx.metrics.run_latency.observe(ran_ms.max(0) as f64 / 1000.0);
        }
        Ok(Err(e)) => {
            tracing::warn!(agent = %holder, task = %task.id, error = %e, "report refused")
        }
        Err(e) => {
            tracing::error!(agent = %holder, task = %task.id, error = %e, "report failed; the lease will expire and the task be retried")
        }
    }
}

/// `fanout`: the children are submitted and this task waits for them in the store (it is no
/// longer running, so the agent is free at once); the store completes it when they finish.
async fn fan_out(ctx: &AgentContext, holder: &str, task: &Task, fence: i64) -> Option<Outcome> {
    let fail = |class: &str, message: String| {
        Some(Outcome::Failed {
            error: TaskError { class: class.into(), message },
            retryable: false,
        })
    };
    let requests: Vec<dreamos_queue::SubmitRequest> =
        match serde_json::from_value(task.payload["tasks"].clone()) {
            Ok(r) => r,
            Err(e) => return fail("invalid_payload", format!("fanout tasks: {e}")),
        };
    let tasks = dreamos_service::Tasks::new(ctx.queue.clone());
    match tasks.fanout_children(task, holder, fence, requests).await {
        Ok(ids) => {
            tracing::info!(task = %task.id, children = ids.len(), "fanned out");
            None
        }
        Err(e @ dreamos_service::ServiceError::Refused { .. }) => fail("forbidden", e.to_string()),
        Err(dreamos_service::ServiceError::Queue(e)) => fail("invalid_payload", e.to_string()),
        Err(e) => fail("fan_out_failed", e.to_string()),
    }
}

async fn execute(
    ctx: &AgentContext,
    task: &Task,
    mut cancel: watch::Receiver<bool>,
    progress: Arc<Mutex<Option<Progress>>>,
) -> Outcome {
    match task.kind.as_str() {
        // `noop` succeeds at once, or after `sleep_ms` (to stand in for real work in tests);
        // `"crash": true` makes the agent running it crash (to exercise its supervision), on a
        // node configured for such tests only (`test_crash_switch`).
        "noop" => {
            if ctx.config.test_crash_switch
                && task.payload.get("crash").and_then(|v| v.as_bool()) == Some(true)
            {
                panic!("noop task {} asked its agent to crash", task.id);
            }
            let sleep_ms = task.payload.get("sleep_ms").and_then(|v| v.as_u64()).unwrap_or(0);
            if sleep_ms > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
                    _ = cancel.wait_for(|c| *c) => return Outcome::Cancelled,
                }
            }
            Outcome::Succeeded { result: json!({}) }
        }
        "exec" => exec::run(&ctx.config, &task.payload, task.timeout_ms, cancel).await,
        // Parsing and indexing are CPU work: off the async executor. (An index update is
        // not interrupted by cancellation; the task is cancelled when it reports.)
        "index" | "search" | "analyze" => {
            let (workspaces, task) = (ctx.workspaces.clone(), task.clone());
            match tokio::task::spawn_blocking(move || code::run(&workspaces, &task, &progress))
                .await
            {
                Ok(outcome) => outcome,
                Err(e) => Outcome::Failed {
                    error: TaskError { class: "panic".into(), message: e.to_string() },
                    retryable: false,
                },
            }
        }
        other => Outcome::Failed {
            error: TaskError {
                class: "unsupported_kind".into(),
                message: format!("local agents cannot run `{other}`"),
            },
            retryable: false,
        },
    }
}
