//! The live event feed: task and agent events in commit order, read after a cursor.
//!
//! A position is `(tx, id)`: the event's transaction and its id. On SQLite `tx` is always 0
//! (one writer, so ids follow commit order). On PostgreSQL ids are taken at insert, not at
//! commit, so the feed reads only the events of transactions older than every transaction
//! still in progress (the snapshot's xmin), ordered by `(tx, id)`: an event can never appear
//! behind a reader's cursor, whatever the commit order. An open transaction delays the feed
//! (never loses from it) until it ends.

use dreamos_core::{EventKind, TaskId};
use serde::{Deserialize, Serialize};

use crate::agents::AgentState;
use crate::conn::{Conn, Dialect, RowLike, args, dynamic, fixed};
use crate::{Result, StoreError};

/// A place in one of the feed's two streams: after the event `id` of transaction `tx`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FeedPos {
    pub tx: i64,
    pub id: i64,
}

/// Where a reader of the feed is: its place in the task stream and in the agent stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCursor {
    pub tasks: FeedPos,
    pub agents: FeedPos,
}

impl std::fmt::Display for FeedCursor {
    /// `TX.ID.TX.ID` (tasks, then agents): the SSE event id, given back as `Last-Event-ID`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (t, a) = (self.tasks, self.agents);
        write!(f, "{}.{}.{}.{}", t.tx, t.id, a.tx, a.id)
    }
}

impl std::str::FromStr for FeedCursor {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<i64> = s
            .split('.')
            .map(|p| p.parse::<i64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("`{s}` is not a feed position (TX.ID.TX.ID)"))?;
        match parts[..] {
            [ttx, tid, atx, aid] if parts.iter().all(|p| *p >= 0) => Ok(Self {
                tasks: FeedPos { tx: ttx, id: tid },
                agents: FeedPos { tx: atx, id: aid },
            }),
            _ => Err(format!("`{s}` is not a feed position (TX.ID.TX.ID)")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskChange {
    pub id: i64,
    /// The event's transaction (0 on SQLite): with `id`, its place in the feed.
    pub tx: i64,
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
    /// The event's transaction (0 on SQLite): with `id`, its place in the feed.
    pub tx: i64,
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

/// The condition and order that read one stream (`e`) after a position ($1, $2) in commit
/// order; $3 is the limit.
fn after<C: Conn>() -> (&'static str, &'static str, &'static str) {
    match C::DIALECT {
        Dialect::Sqlite => ("e.tx AS tx", "e.id > $2 AND $1 >= 0", "e.id"),
        Dialect::Postgres => (
            "e.tx::text::bigint AS tx",
            "(e.tx, e.id) > ($1::text::xid8, $2) AND e.tx < pg_snapshot_xmin(pg_current_snapshot())",
            "e.tx, e.id",
        ),
    }
}

pub(crate) async fn read<C: Conn>(c: &mut C, cursor: FeedCursor, limit: usize) -> Result<Feed> {
    let limit = limit.clamp(1, 10_000) as i64;
    let (tx, cond, order) = after::<C>();
    // Events of archived tasks have no row in `tasks`; they are old news for a live feed.
    let rows = c
        .fetch_all(
            dynamic(format!(
                "SELECT e.id, {tx}, e.task_id, e.at, e.kind AS event, e.attempt, e.actor, e.detail, \
                 t.kind, t.payload FROM task_events e JOIN tasks t ON t.id = e.task_id \
                 WHERE {cond} ORDER BY {order} LIMIT $3"
            )),
            args![cursor.tasks.tx.to_string(), cursor.tasks.id, limit],
        )
        .await?;
    let mut tasks = Vec::with_capacity(rows.len());
    for r in &rows {
        let event = r.text("event")?;
        let payload: serde_json::Value = crate::ops::decode(&r.text("payload")?)?;
        tasks.push(TaskChange {
            id: r.int("id")?,
            tx: r.int("tx")?,
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
            dynamic(format!(
                "SELECT e.id, {tx}, e.agent_id, e.at, e.from_state, e.to_state, e.reason \
                 FROM agent_events e WHERE {cond} ORDER BY {order} LIMIT $3"
            )),
            args![cursor.agents.tx.to_string(), cursor.agents.id, limit],
        )
        .await?;
    let mut agents = Vec::with_capacity(rows.len());
    for r in &rows {
        agents.push(AgentChange {
            id: r.int("id")?,
            tx: r.int("tx")?,
            agent_id: r.text("agent_id")?,
            at_ms: r.int("at")?,
            from: r.opt_text("from_state")?.map(|s| AgentState::parse(&s)).transpose()?,
            to: AgentState::parse(&r.text("to_state")?)?,
            reason: r.text("reason")?,
        });
    }
    Ok(Feed { tasks, agents })
}

/// Where the feed ends now, so a new reader starts from the present. On PostgreSQL that is the
/// snapshot's xmin: events of transactions still running, or committed after it, come after.
pub(crate) async fn heads<C: Conn>(c: &mut C) -> Result<FeedCursor> {
    let head = |table: &str| match C::DIALECT {
        Dialect::Sqlite => format!("SELECT 0 AS tx, COALESCE(MAX(id), 0) AS m FROM {table}"),
        Dialect::Postgres => {
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS tx, 0::bigint AS m"
                .into()
        }
    };
    let mut at = [FeedPos::default(); 2];
    for (pos, table) in at.iter_mut().zip(["task_events", "agent_events"]) {
        if let Some(r) = c.fetch_optional(dynamic(head(table)), args![]).await? {
            *pos = FeedPos { tx: r.int("tx")?, id: r.int("m")? };
        }
    }
    Ok(FeedCursor { tasks: at[0], agents: at[1] })
}

/// When the event at `pos` of the task stream happened, if it is still there.
pub(crate) async fn task_event_at<C: Conn>(c: &mut C, pos: FeedPos) -> Result<Option<i64>> {
    let row =
        c.fetch_optional(fixed("SELECT at FROM task_events WHERE id = $1"), args![pos.id]).await?;
    row.map(|r| r.int("at")).transpose()
}
