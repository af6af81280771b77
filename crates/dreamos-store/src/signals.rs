//! Change signals, so that claimers and watchers wait on a change instead of polling.
//!
//! - `changed` is a counter bumped after each commit that may matter to watchers (a task
//!   finished, work appeared). A `watch` channel never loses a wake-up: a waiter that looked at
//!   version N is woken by any later version.
//! - `work` wakes idle claimers, one per task made claimable, so a submission of one task does
//!   not wake every idle agent (64 idle claimers each racing for one task cost more than the
//!   task). Claimers enable their `Notified` before they look, so no wake-up falls between.
//! - `cancels` is a counter bumped after a commit that asked a running task to stop, so that
//!   whoever runs tasks looks at once rather than at its next heartbeat.

use tokio::sync::{Notify, watch};

#[derive(Debug)]
pub struct Signals {
    changed: watch::Sender<u64>,
    work: Notify,
    cancels: watch::Sender<u64>,
}

impl Default for Signals {
    fn default() -> Self {
        Self { changed: watch::Sender::new(0), work: Notify::new(), cancels: watch::Sender::new(0) }
    }
}

/// Most claimers woken one by one for a single commit; past it, all are woken.
const WAKE_ONE_BY_ONE: usize = 64;

impl Signals {
    /// Called after a commit that changed tasks in a way watchers or claimers may care about.
    /// `new_work` is how many tasks became claimable, if known; `None` wakes every claimer.
    pub fn bump(&self, new_work: Option<usize>) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        match new_work {
            Some(n) if n <= WAKE_ONE_BY_ONE => (0..n).for_each(|_| self.work.notify_one()),
            _ => self.work.notify_waiters(),
        }
    }

    /// A receiver that resolves `changed()` after the next bump.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Called after a commit that asked a running task to stop.
    pub fn cancel_requested(&self) {
        self.cancels.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that resolves `changed()` after the next cancellation of a running task
    /// (on any node of the cluster).
    pub fn subscribe_cancels(&self) -> watch::Receiver<u64> {
        self.cancels.subscribe()
    }

    /// What idle claimers wait on (see the module documentation).
    pub fn work(&self) -> &Notify {
        &self.work
    }
}
