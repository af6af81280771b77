//! The maintenance loop: expires lapsed leases, wakes claimers when delayed or backed-off
//! work comes due, and archives finished tasks. It sleeps until the store's next deadline
//! (capped at one second), so it costs nothing on an idle queue.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Queue;

const MAX_SLEEP_MS: i64 = 1_000;
const ARCHIVE_EVERY_MS: i64 = 60_000;

/// Runs until `shutdown` becomes true.
pub fn spawn_maintenance(queue: Queue, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let store = queue.store().clone();
        let mut changes = store.signals().subscribe();
        let mut next_archive = 0_i64;
        loop {
            let now = store.clock().now_ms();
            match store.expire_leases().await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::info!(count = ids.len(), "expired lapsed leases")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "lease expiry failed"),
            }
            if now >= next_archive {
                match store.archive(now - queue.config().archive_after_ms).await {
                    Ok(n) if n > 0 => tracing::info!(count = n, "archived finished tasks"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "archiving failed"),
                }
                next_archive = now + ARCHIVE_EVERY_MS;
            }
            // Work that came due (a delayed task, a retry after backoff) needs no commit to
            // become claimable, so claimers are woken here.
            store.signals().bump(None);
            changes.borrow_and_update();
            loop {
                let now = store.clock().now_ms();
                let next = store.next_deadline().await.ok().flatten().unwrap_or(now + MAX_SLEEP_MS);
                let sleep_ms = (next - now).clamp(5, MAX_SLEEP_MS) as u64;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => break,
                    _ = changes.changed() => {
                        // New work may have an earlier deadline: look again, at most every 20 ms.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        changes.borrow_and_update();
                    }
                    _ = shutdown.changed() => {
                        if *shutdown.borrow() {
                            return;
                        }
                    }
                }
            }
        }
    })
}
