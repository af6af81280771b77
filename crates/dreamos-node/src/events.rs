//! `GET /api/v1/events`: task and agent changes as Server-Sent Events, from the moment of
//! connecting, woken by the store's change signal (never polled faster than changes come).
//!
//! Each change is one event: `event: task` with `{id, task_id, kind, at_ms, event, attempt,
//! actor, detail, workspace}` or `event: agent` with `{id, agent_id, at_ms, from, to, reason}`;
//! the SSE `id` is `t<ID>` or `a<ID>`. A caller limited to some workspaces sees only the task
//! changes of those workspaces (and of tasks that concern no workspace).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dreamos_store::{Feed, Store};
use futures_util::stream;

use crate::api::{AppState, Caller};
use crate::auth::{Principal, Role};
use crate::error::ApiError;

struct Cursor {
    store: std::sync::Arc<dyn Store>,
    who: Principal,
    changes: tokio::sync::watch::Receiver<u64>,
    closing: tokio::sync::watch::Receiver<bool>,
    task_after: i64,
    agent_after: i64,
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
    fn take(&mut self, feed: Feed) {
        for t in feed.tasks {
            self.task_after = self.task_after.max(t.id);
            if visible(&self.who, &t.kind, t.workspace.as_deref())
                && let Ok(e) = Event::default().event("task").id(format!("t{}", t.id)).json_data(&t)
            {
                self.pending.push_back(e);
            }
        }
        for a in feed.agents {
            self.agent_after = self.agent_after.max(a.id);
            if let Ok(e) = Event::default().event("agent").id(format!("a{}", a.id)).json_data(&a) {
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
    responses(
        (status = 200, description = "an endless event stream", content_type = "text/event-stream", body = String),
    ),
)]
pub async fn events(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let who = caller.require(Role::Viewer, "follow events")?.clone();
    let store = state.queue.store().clone();
    let (task_after, agent_after) = store.feed_heads().await?;
    let changes = store.signals().subscribe();
    let cursor = Cursor {
        store,
        who,
        changes,
        closing: state.closing.clone(),
        task_after,
        agent_after,
        pending: Default::default(),
    };
    let stream = stream::unfold(cursor, |mut c| async move {
        loop {
            if *c.closing.borrow() {
                return None;
            }
            if let Some(e) = c.pending.pop_front() {
                return Some((Ok::<Event, Infallible>(e), c));
            }
            c.changes.borrow_and_update();
            match c.store.feed(c.task_after, c.agent_after, 1_000).await {
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
