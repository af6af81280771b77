//! The live event feed: task and agent events in commit order, read after a cursor.

use dreamos_core::{EventKind, TaskId};
use serde::{Deserialize, Serialize};

use crate::agents::AgentState;
use crate::conn::{Conn, RowLike, args, fixed};
use crate::{Result, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskChange {
    pub id: i64,
    pub task_id: TaskId,
    pub kind: String,
    pub at_ms: i64,
    pub event: EventKind,
    pub attempt: i64,
    pub actor: String,
    pub detail: Option<String>,
    /// The task's payload `workspace`, if it names one (for scoped readers).
    pub workspace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentChange {
    pub id: i64,
    pub agent_id: String,
    pub at_ms: i64,
    pub from: Option<AgentState>,
    pub to: AgentState,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feed {
    pub tasks: Vec<TaskChange>,
    pub agents: Vec<AgentChange>,
}

pub(crate) async fn read<C: Conn>(
    c: &mut C,
    task_after: i64,
    agent_after: i64,
    limit: usize,
) -> Result<Feed> {
    let limit = limit.clamp(1, 10_000) as i64;
    // Events of archived tasks have no row in `tasks`; they are old news for a live feed.
    let rows = c
        .fetch_all(
            fixed(
                "SELECT e.id, e.task_id, e.at, e.kind AS event, e.attempt, e.actor, e.detail, \
                 t.kind, t.payload FROM task_events e JOIN tasks t ON t.id = e.task_id \
                 WHERE e.id > $1 ORDER BY e.id LIMIT $2",
            ),
            args![task_after, limit],
        )
        .await?;
    let mut tasks = Vec::with_capacity(rows.len());
    for r in &rows {
        let event = r.text("event")?;
        let payload: serde_json::Value = crate::ops::decode(&r.text("payload")?)?;
        tasks.push(TaskChange {
            id: r.int("id")?,
            task_id: TaskId(r.int("task_id")?),
            kind: r.text("kind")?,
            at_ms: r.int("at")?,
            event: EventKind::parse(&event)
                .ok_or_else(|| StoreError::Corrupt(format!("event `{event}`")))?,
            attempt: r.int("attempt")?,
            actor: r.text("actor")?,
            detail: r.opt_text("detail")?,
            workspace: payload.get("workspace").and_then(|w| w.as_str()).map(str::to_string),
        });
    }
    let rows = c
        .fetch_all(
            fixed(
                "SELECT id, agent_id, at, from_state, to_state, reason FROM agent_events \
                 WHERE id > $1 ORDER BY id LIMIT $2",
            ),
            args![agent_after, limit],
        )
        .await?;
    let mut agents = Vec::with_capacity(rows.len());
    for r in &rows {
        agents.push(AgentChange {
            id: r.int("id")?,
            agent_id: r.text("agent_id")?,
            at_ms: r.int("at")?,
            from: r.opt_text("from_state")?.map(|s| AgentState::parse(&s)).transpose()?,
            to: AgentState::parse(&r.text("to_state")?)?,
            reason: r.text("reason")?,
        });
    }
    Ok(Feed { tasks, agents })
}

/// The ids the feed ends at now, so a new subscriber starts from the present.
pub(crate) async fn heads<C: Conn>(c: &mut C) -> Result<(i64, i64)> {
    let t = c
        .fetch_optional(fixed("SELECT COALESCE(MAX(id), 0) AS m FROM task_events"), args![])
        .await?;
    let a = c
        .fetch_optional(fixed("SELECT COALESCE(MAX(id), 0) AS m FROM agent_events"), args![])
        .await?;
    Ok((
        t.map(|r| r.int("m")).transpose()?.unwrap_or(0),
        a.map(|r| r.int("m")).transpose()?.unwrap_or(0),
    ))
}
