//! The orchestrator: hands work to waiting agents and watches over them.
//!
//! - **Dispatch.** Every agent that asks for work (a remote agent's long-poll claim, or a local
//!   agent's loop) becomes a waiter. One dispatch loop per node offers the waiting agents to
//!   the store in a single transaction ([`AgentOp::Dispatch`]): least-loaded first, within each
//!   agent's slots, the per-kind concurrency limits, capability and label matching, and never
//!   to a draining, stopped or lost agent. It runs whenever the store signals a change (work
//!   appeared, work finished) or a new waiter arrives.
//! - **Leadership.** Among the nodes sharing one store, the holder of the `orchestrator` lease
//!   (a row in the store, renewed at a third of its time) is the leader: only it marks silent
//!   agents lost (failing their leases with `agent_lost`) and expires messages. When it dies
//!   its lease lapses and another node takes over.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use dreamos_core::{Completion, Outcome, Task, error_class};
use dreamos_store::{AgentAnswer, AgentOp, Store, StoreError, Waiter};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::Config;

struct Pending {
    id: u64,
    waiter: Waiter,
    reply: oneshot::Sender<Vec<Task>>,
}

pub struct Orchestrator {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    node_id: String,
    waiting: Mutex<Vec<Pending>>,
    kick: Notify,
    next_id: AtomicU64,
    leader: AtomicBool,
    /// Until when this node's lease surely holds: the time the request to take it was sent
    /// plus its time to live (the store's expiry is no earlier). Past it, the node no longer
    /// counts itself leader even if its renewal is late, so two nodes never both do.
    leader_until: Mutex<Option<std::time::Instant>>,
}

/// Removes a waiter whose claim was dropped before it was answered.
struct Withdraw<'a> {
    orchestrator: &'a Orchestrator,
    id: u64,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.orchestrator.withdraw(self.id);
    }
}

/// The lease-holder name of a remote agent's attempts.
pub fn holder_of(agent_id: &str) -> String {
    format!("agent:{agent_id}")
}

const LEADER_LEASE: &str = "orchestrator";

impl Orchestrator {
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>, node_id: &str) -> Arc<Self> {
        Arc::new(Self {
            store,
            config,
            node_id: node_id.into(),
            waiting: Mutex::new(Vec::new()),
            kick: Notify::new(),
            next_id: AtomicU64::new(0),
            leader: AtomicBool::new(false),
            leader_until: Mutex::new(None),
        })
    }

    /// Whether this node holds the orchestrator lease.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed) && self.lease_holds()
    }

    fn lease_holds(&self) -> bool {
        let until = *self.leader_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|t| std::time::Instant::now() < t)
    }

    /// How many agents wait for work on this node.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `wait` for work for this agent; an empty answer means none came. Dropping
    /// the future withdraws the agent.
    pub async fn claim(&self, waiter: Waiter, wait: Duration) -> Vec<Task> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, mut answer) = oneshot::channel();
        self.lock().push(Pending { id, waiter, reply });
        let _withdraw = Withdraw { orchestrator: self, id };
        self.kick.notify_one();
        tokio::select! {
            got = &mut answer => return got.unwrap_or_default(),
            _ = tokio::time::sleep(wait) => {}
        }
        // Timed out: withdraw, unless the dispatcher has just taken us (then its answer is
        // already sent, under the same lock).
        if self.withdraw(id) { Vec::new() } else { answer.await.unwrap_or_default() }
    }

    fn withdraw(&self, id: u64) -> bool {
        let mut list = self.lock();
        let before = list.len();
        list.retain(|p| p.id != id);
        list.len() != before
    }

    /// Starts the dispatch loop, which ends when `stop` becomes true, and the leader's duties,
    /// which end as soon as the node starts stopping (`stopping`): a stopping node gives up
    /// leadership at once, so it never marks agents lost while it drains (they may be unable to
    /// reach it then), and a live node takes over.
    pub fn spawn(
        self: &Arc<Self>,
        stopping: watch::Receiver<bool>,
        stop: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let dispatch = {
            let me = self.clone();
            tokio::spawn(async move { me.dispatch_loop(stop).await })
        };
        let lead = {
            let me = self.clone();
            tokio::spawn(async move { me.leader_loop(stopping).await })
        };
        vec![dispatch, lead]
    }

    async fn dispatch_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut changes = self.store.signals().subscribe();
        loop {
            changes.borrow_and_update();
            let snapshot: Vec<(u64, Waiter)> =
                self.lock().iter().map(|p| (p.id, p.waiter.clone())).collect();
            if !snapshot.is_empty() {
                let (ids, waiters): (Vec<u64>, Vec<Waiter>) = snapshot.into_iter().unzip();
                let op =
                    AgentOp::Dispatch { waiters, kind_limits: self.config.kind_limits.clone() };
                match self.store.agent(op).await {
                    Ok(AgentAnswer::Dispatched(lists)) => self.hand_out(&ids, lists).await,
                    Ok(other) => tracing::error!(?other, "unexpected dispatch answer"),
                    Err(StoreError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "dispatch failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    async fn hand_out(&self, ids: &[u64], lists: Vec<Vec<Task>>) {
        let mut orphans: Vec<(String, Vec<Task>)> = Vec::new();
        {
            let mut list = self.lock();
            for (id, tasks) in ids.iter().zip(lists) {
                if tasks.is_empty() {
                    continue;
                }
                match list.iter().position(|p| p.id == *id) {
                    Some(pos) => {
                        let pending = list.swap_remove(pos);
                        if let Err(tasks) = pending.reply.send(tasks) {
                            orphans.push((pending.waiter.claim.holder, tasks));
                        }
                    }
                    None => {
                        let holder = tasks[0].lease.as_ref().map(|l| l.holder.clone());
                        orphans.push((holder.unwrap_or_default(), tasks));
                    }
                }
            }
        }
        // Claimed for an agent that stopped waiting: back to the queue, attempt not counted.
        for (holder, tasks) in orphans {
            let reports = tasks
                .iter()
                .filter_map(|t| t.lease.as_ref().map(|l| (t.id, l.fence)))
                .map(|(task_id, fence)| Completion { task_id, fence, outcome: Outcome::Released })
                .collect();
            if let Err(e) = self.store.complete(&holder, reports).await {
                tracing::warn!(error = %e, "could not release unclaimed work; its lease will lapse");
            }
        }
    }

    async fn leader_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let ttl = self.config.leader_ttl_ms;
        let beat = self.config.agent_heartbeat_ms;
        let tick = Duration::from_millis((ttl / 3).min(beat / 2).max(10) as u64);
        let mut next_expiry = 0_i64;
        loop {
            let op = AgentOp::Lease {
                name: LEADER_LEASE.into(),
                holder: self.node_id.clone(),
                ttl_ms: ttl,
            };
            let sent = std::time::Instant::now();
            let held =
                matches!(self.store.agent(op).await, Ok(AgentAnswer::Lease { held: true, .. }));
            *self.leader_until.lock().unwrap_or_else(|e| e.into_inner()) =
                held.then(|| sent + Duration::from_millis(ttl.max(0) as u64));
            if held != self.leader.swap(held, Ordering::Relaxed) {
                if held {
                    tracing::info!(node = %self.node_id, "this node now leads the orchestrator");
                } else {
                    tracing::info!(node = %self.node_id, "this node no longer leads the orchestrator");
                }
            }
            if held && self.lease_holds() {
                self.leader_duties(&mut next_expiry).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                if self.leader.swap(false, Ordering::Relaxed) {
                    let op = AgentOp::ReleaseLease {
                        name: LEADER_LEASE.into(),
                        holder: self.node_id.clone(),
                    };
                    let _ = self.store.agent(op).await;
                }
                return;
            }
        }
    }

    async fn leader_duties(&self, next_expiry: &mut i64) {
        let op = AgentOp::MarkLost { missed: self.config.agent_missed_heartbeats };
        match self.store.agent(op).await {
            Ok(AgentAnswer::Ids(lost)) => {
                for id in lost {
                    match self.store.fail_holders(&holder_of(&id), error_class::AGENT_LOST).await {
                        Ok(tasks) => {
                            tracing::warn!(agent = %id, tasks = tasks.len(), "agent lost; its tasks go back through the retry policy")
                        }
                        Err(e) => {
                            tracing::warn!(agent = %id, error = %e, "could not fail a lost agent's tasks")
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "lost-agent check failed"),
        }
        let now = self.store.clock().now_ms();
        if now >= *next_expiry {
            *next_expiry = now + 10_000;
            if let Err(e) = self.store.agent(AgentOp::ExpireMessages).await {
                tracing::warn!(error = %e, "message expiry failed");
            }
        }
    }
}
