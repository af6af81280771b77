//! Watch mode: keeps an index fresh as files change.
//!
//! The operating system's notifications (inotify, through `notify`) name the changed paths.
//! A worker gathers a burst of them for a few milliseconds (an editor's save is several
//! events), then brings exactly those paths up to date. A changed directory is walked; an
//! overflowing notification queue makes the next update a full rescan.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};

use crate::{Index, ScanError, UpdateSummary};

/// How long a burst may go quiet before it is applied (a save's events arrive within about
/// a millisecond of each other).
const BURST: Duration = Duration::from_millis(2);
/// The longest a burst is gathered before it is applied anyway.
const BURST_LIMIT: Duration = Duration::from_millis(50);
/// Quiet time after which the small segments of saves are merged.
const IDLE: Duration = Duration::from_secs(3);

enum Message {
    Paths(Vec<PathBuf>),
    Rescan,
    Stop,
}

/// A running watch; dropping it stops watching.
pub struct Watch {
    watcher: Option<notify::RecommendedWatcher>,
    send: Sender<Message>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

/// Starts watching the index's root. `on_update` is called after each update that changed
/// the index (or failed).
pub fn watch(
    index: Arc<Index>,
    on_update: impl Fn(Result<&UpdateSummary, &ScanError>) + Send + 'static,
) -> Result<Watch, ScanError> {
    let (send, receive) = channel();
    let events = send.clone();
    let index_dir = index.dir().to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let message = match event {
            Ok(e) if e.need_rescan() => Message::Rescan,
            Ok(e) if e.kind.is_access() => return,
            Ok(e) => {
                // The index's own files (when it lives inside the tree) are not news.
                let paths: Vec<PathBuf> =
                    e.paths.into_iter().filter(|p| !p.starts_with(&index_dir)).collect();
                if paths.is_empty() {
                    return;
                }
                Message::Paths(paths)
            }
            Err(_) => Message::Rescan,
        };
        let _ = events.send(message);
    })
    .map_err(|e| ScanError::Config(format!("cannot watch: {e}")))?;
    watcher
        .watch(index.root(), RecursiveMode::Recursive)
        .map_err(|e| ScanError::Config(format!("cannot watch {}: {e}", index.root().display())))?;
    let worker = std::thread::Builder::new()
        .name("dreamos-watch".into())
        .spawn(move || run(index, receive, on_update))
        .map_err(|e| ScanError::Config(format!("cannot start the watcher: {e}")))?;
    Ok(Watch { watcher: Some(watcher), send, worker: Some(worker) })
}

fn run(
    index: Arc<Index>,
    receive: Receiver<Message>,
    on_update: impl Fn(Result<&UpdateSummary, &ScanError>),
) {
    let mut dirty = false;
    loop {
        let mut paths: Vec<PathBuf> = Vec::new();
        let mut rescan = false;
        let first =
            if dirty { receive.recv_timeout(IDLE) } else { receive.recv().map_err(Into::into) };
        match first {
            Ok(Message::Paths(p)) => paths.extend(p),
            Ok(Message::Rescan) => rescan = true,
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                // Quiet for a while: merge what the saves left behind.
                if let Err(e) = index.compact() {
                    tracing::warn!(error = %e, "compacting the index failed");
                }
                dirty = false;
                continue;
            }
        }
        dirty = true;
        let started = Instant::now();
        loop {
            let left = BURST_LIMIT.saturating_sub(started.elapsed());
            match receive.recv_timeout(BURST.min(left)) {
                Ok(Message::Paths(p)) => paths.extend(p),
                Ok(Message::Rescan) => rescan = true,
                Ok(Message::Stop) => return,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        paths.sort();
        paths.dedup();
        tracing::debug!(
            paths = paths.len(),
            rescan,
            gathered_ms = started.elapsed().as_secs_f64() * 1e3,
            "applying changes"
        );
        let result = if rescan { index.update(&mut |_| {}) } else { index.update_paths(&paths) };
        match &result {
            Ok(summary) if summary.added + summary.changed + summary.deleted == 0 => {}
            Ok(summary) => on_update(Ok(summary)),
            // A path outside the root (a symlink's target) is refused; the rest is news.
            Err(e) => on_update(Err(e)),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.watcher.take();
        let _ = self.send.send(Message::Stop);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
