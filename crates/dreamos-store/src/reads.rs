//! Reads, written once against [`Conn`]. They never lock and never write.

use dreamos_core::{EventKind, Priority, Task, TaskEvent, TaskId};

use crate::conn::{Arg, Conn, RowLike, args, dynamic, fixed};
use crate::ops::{TASK_COLS, task_from_row};
use crate::types::{ApiToken, StateCount, TaskFilter};
use crate::{Result, StoreError};

pub(crate) async fn get<C: Conn>(c: &mut C, id: TaskId) -> Result<Option<Task>> {
    for (table, archived) in [("tasks", false), ("tasks_archive", true)] {
        let row = c
            .fetch_optional(
                dynamic(format!("SELECT {TASK_COLS} FROM {table} WHERE id = $1")),
                args![id.0],
            )
            .await?;
        if let Some(row) = row {
            return task_from_row(&row, archived).map(Some);
        }
    }
    Ok(None)
}

/// A live task with its history in one query (a task read is mostly this); `None` when the
/// task is not in the live table (missing, or archived: read those with `get` and `events`).
pub(crate) async fn detail<C: Conn>(
    c: &mut C,
    id: TaskId,
) -> Result<Option<(Task, Vec<TaskEvent>)>> {
    let cols: Vec<String> = TASK_COLS.split(',').map(|col| format!("t.{}", col.trim())).collect();
    let rows = c
        .fetch_all(
            dynamic(format!(
                "SELECT {}, e.at AS e_at, e.kind AS e_kind, e.attempt AS e_attempt, \
                 e.actor AS e_actor, e.detail AS e_detail FROM tasks t \
                 LEFT JOIN task_events e ON e.task_id = t.id WHERE t.id = $1 ORDER BY e.id",
                cols.join(", ")
            )),
            args![id.0],
        )
        .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let task = task_from_row(first, false)?;
    let mut events = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(kind) = r.opt_text("e_kind")? else { continue };
        events.push(TaskEvent {
            task_id: id,
            at_ms: r.int("e_at")?,
            kind: EventKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("event kind `{kind}`")))?,
            attempt: r.int("e_attempt")?.max(0) as u32,
            actor: r.text("e_actor")?,
            detail: r.opt_text("e_detail")?,
        });
    }
    Ok(Some((task, events)))
}

pub(crate) async fn events<C: Conn>(c: &mut C, id: TaskId) -> Result<Vec<TaskEvent>> {
    let rows = c
        .fetch_all(
            fixed(
                "SELECT task_id, at, kind, attempt, actor, detail FROM task_events \
             WHERE task_id = $1 ORDER BY id",
            ),
            args![id.0],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let kind = r.text("kind")?;
            Ok(TaskEvent {
                task_id: TaskId(r.int("task_id")?),
                at_ms: r.int("at")?,
                kind: EventKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("event kind `{kind}`")))?,
                attempt: r.int("attempt")?.max(0) as u32,
                actor: r.text("actor")?,
                detail: r.opt_text("detail")?,
            })
        })
        .collect()
}

pub(crate) async fn list<C: Conn>(c: &mut C, filter: &TaskFilter) -> Result<Vec<Task>> {
    let table = if filter.archived { "tasks_archive" } else { "tasks" };
    let mut clauses = Vec::new();
    let mut values: Vec<Arg> = Vec::new();
    if let Some(state) = filter.state {
        values.push(state.as_str().into());
        clauses.push(format!("state = ${}", values.len()));
    }
    if let Some(kind) = &filter.kind {
        values.push(kind.as_str().into());
        clauses.push(format!("kind = ${}", values.len()));
    }
    if let Some(before) = filter.before {
        values.push(before.0.into());
        clauses.push(format!("id < ${}", values.len()));
    }
    let limit = filter.limit.clamp(1, 10_000) as i64;
    values.push(limit.into());
    let where_sql =
        if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    let sql = format!(
        "SELECT {TASK_COLS} FROM {table} {where_sql} ORDER BY id DESC LIMIT ${}",
        values.len()
    );
    let rows = c.fetch_all(dynamic(sql), values).await?;
    rows.iter().map(|r| task_from_row(r, filter.archived)).collect()
}

pub(crate) async fn counts<C: Conn>(c: &mut C) -> Result<Vec<StateCount>> {
    let rows = c
        .fetch_all(
            fixed("SELECT state, priority, COUNT(*) AS n FROM tasks GROUP BY state, priority"),
            Vec::new(),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StateCount {
                state: r
                    .text("state")?
                    .parse()
                    .map_err(|e: dreamos_core::ParseError| StoreError::Corrupt(e.to_string()))?,
                priority: Priority::from_rank(r.int("priority")?)
                    .ok_or_else(|| StoreError::Corrupt("priority out of range".into()))?,
                count: r.int("n")?.max(0) as u64,
            })
        })
        .collect()
}

pub(crate) async fn next_deadline<C: Conn>(c: &mut C, now: i64) -> Result<Option<i64>> {
    let row = c
        .fetch_optional(
            fixed("SELECT (SELECT MIN(available_at) FROM tasks WHERE state = 'queued' AND available_at > $1) AS a, \
             (SELECT MIN(lease_expires_at) FROM tasks WHERE state = 'running') AS b"),
            args![now],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(match (row.opt_int("a")?, row.opt_int("b")?) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

const TOKEN_COLS: &str = "id, hash, role, label, created_at, expires_at, revoked_at, workspaces";

fn token_from_row<R: RowLike>(r: &R) -> Result<ApiToken> {
    Ok(ApiToken {
        id: r.text("id")?,
        hash: r.text("hash")?,
        role: r.text("role")?,
        label: r.text("label")?,
        created_at_ms: r.int("created_at")?,
        expires_at_ms: r.opt_int("expires_at")?,
        revoked_at_ms: r.opt_int("revoked_at")?,
        workspaces: r.opt_text("workspaces")?.map(|t| crate::ops::decode(&t)).transpose()?,
    })
}

pub(crate) async fn find_token<C: Conn>(c: &mut C, id: &str) -> Result<Option<ApiToken>> {
    let row = c
        .fetch_optional(
            dynamic(format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE id = $1")),
            args![id],
        )
        .await?;
    row.map(|r| token_from_row(&r)).transpose()
}

pub(crate) async fn list_tokens<C: Conn>(c: &mut C) -> Result<Vec<ApiToken>> {
    let rows = c
        .fetch_all(
            dynamic(format!("SELECT {TOKEN_COLS} FROM api_tokens ORDER BY created_at")),
            Vec::new(),
        )
        .await?;
    rows.iter().map(token_from_row).collect()
}
