//! `GET /api/v1/events`: task and agent changes as Server-Sent Events in commit order, woken
//! by the store's change signal (never polled faster than changes come).
//!
//! Each change is one event: `event: task` with `{id, tx, task_id, kind, at_ms, event,
//! attempt, actor, detail, workspace}` or `event: agent` with `{id, tx, agent_id, at_ms, from,
//! to, reason}`. The SSE `id` is the feed position after that event (`TX.ID.TX.ID`): a client
//! that reconnects with it as `Last-Event-ID` gets exactly what came after, if that is within
//! `feed_retention_ms`; an older or unknown position starts with `event: reset` (what was
//! missed is not replayed) and goes on from the present. Without `Last-Event-ID` the stream
//! starts at the present. A caller limited to some workspaces sees only the task changes of
//! those workspaces (and of tasks that concern no workspace).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dreamos_store::{Feed, FeedCursor, Store};
use futures_util::stream;

use crate::api::{AppState, Caller};
use crate::auth::{Principal, Role};
use crate::error::ApiError;

struct Cursor {
    store: std::sync::Arc<dyn Store>,
    who: Principal,
    changes: tokio::sync::watch::Receiver<u64>,
    closing: tokio::sync::watch::Receiver<bool>,
    at: FeedCursor,
    pending: std::collections::VecDeque<Event>,
}

fn visible(who: &Principal, kind: &str, workspace: Option<&str>) -> bool {
    match (&who.workspaces, workspace) {
        (None, _) => true,
        (Some(_), Some(w)) => who.sees(w),
        (Some(_), None) => !crate::code::CAPABILITIES.contains(&kind),
    }
}

impl Cursor {
    /// Queues a page of the feed; each event's id is the position just after it, so a client
    /// resuming from it gets the rest of the page again (the task events first, then the
    /// agent events, as here).
    fn take(&mut self, feed: Feed) {
        for t in feed.tasks {
            self.at.tasks = dreamos_store::FeedPos { tx: t.tx, id: t.id };
            if visible(&self.who, &t.kind, t.workspace.as_deref())
                && let Ok(e) = Event::default().event("task").id(self.at.to_string()).json_data(&t)
            {
                self.pending.push_back(e);
            }
        }
        for a in feed.agents {
            self.at.agents = dreamos_store::FeedPos { tx: a.tx, id: a.id };
            if let Ok(e) = Event::default().event("agent").id(self.at.to_string()).json_data(&a) {
                self.pending.push_back(e);
            }
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "system",
    summary = "Server-Sent Events: task and agent changes this token may see.",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event (its SSE id)")),
    responses(
        (status = 200, description = "an endless event stream", content_type = "text/event-stream", body = String),
    ),
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = caller.require(Role::Viewer, "follow events")?.clone();
    let store = state.queue.store().clone();
    // An id this stream did not give (or gave before its format changed) cannot be resumed
    // from: like one past the retention window, it is told so with `reset`, which an
    // EventSource client survives (an error status would end its reconnecting for good).
    let asked = headers
        .get("last-event-id")
        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<FeedCursor>().ok()));
    let mut pending = std::collections::VecDeque::new();
    let at = match asked {
        Some(Some(at)) if within_retention(&state, &store, at).await? => at,
        asked => {
            if asked.is_some() {
                let note = serde_json::json!({
                    "reason": "that position is unknown or older than the feed keeps: what came between is not replayed",
                    "retention_ms": state.config.feed_retention_ms,
                });
                if let Ok(e) = Event::default().event("reset").json_data(note) {
                    pending.push_back(e);
                }
            }
            store.feed_heads().await?
        }
    };
    let changes = store.signals().subscribe();
    let cursor = Cursor { store, who, changes, closing: state.closing.clone(), at, pending };
    let stream = stream::unfold(cursor, |mut c| async move {
        loop {
            if *c.closing.borrow() {
                return None;
            }
            if let Some(e) = c.pending.pop_front() {
                return Some((Ok::<Event, Infallible>(e), c));
            }
            c.changes.borrow_and_update();
            match c.store.feed(c.at, 1_000).await {
                Ok(feed) if !feed.tasks.is_empty() || !feed.agents.is_empty() => {
                    c.take(feed);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "event feed read failed");
                    return None;
                }
            }
            // Nothing new: wait for a commit (or a second, for agent changes that wake nobody).
            tokio::select! {
                changed = c.changes.changed() => if changed.is_err() { return None },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = c.closing.wait_for(|closed| *closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Whether a reader may resume at `at`: the next task event after it is no older than
/// `feed_retention_ms` (a reader with nothing after it is up to date).
async fn within_retention(
    state: &AppState,
    store: &std::sync::Arc<dyn Store>,
    at: FeedCursor,
) -> Result<bool, ApiError> {
    let cutoff = store.clock().now_ms() - state.config.feed_retention_ms;
    let next = store.feed(at, 1).await?;
    let oldest =
        next.tasks.iter().map(|t| t.at_ms).chain(next.agents.iter().map(|a| a.at_ms)).min();
    Ok(oldest.is_none_or(|t| t >= cutoff))
}
