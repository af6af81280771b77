//! Change signals: a counter bumped after each commit, so that claimers and watchers wait on a
//! change instead of polling. A `watch` channel never loses a wake-up: a waiter that looked at
//! version N is woken by any later version.

use tokio::sync::watch;

#[derive(Debug)]
pub struct Signals {
    changed: watch::Sender<u64>,
}

impl Default for Signals {
    fn default() -> Self {
        Self { changed: watch::Sender::new(0) }
    }
}

impl Signals {
    /// Called after a commit that changed tasks.
    pub fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that resolves `changed()` after the next bump.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
