//! Dependencies and fan-out/fan-in: children spawned by a running task, the parent completed
//! with their results, dependents released when what they wait for succeeds and failed when
//! it does not.

use dreamos_core::{EventKind, NewTask, TaskId, TaskState, error_class};

use crate::conn::{Conn, RowLike, args, dynamic, fixed};
use crate::ops::*;
use crate::{Result, StoreError};

/// Fan-out: the running `parent` spawns `children` (keyed `fanout:PARENT:I`, so a retried
/// parent finds the same ones) and waits for them in `pending`.
pub(crate) async fn fan_out<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    parent: TaskId,
    fence: i64,
    holder: &str,
    children: &[NewTask],
) -> Result<Vec<TaskId>> {
    let attempt = running_attempt(c, parent, fence).await?;
    if attempt.holder.as_deref() != Some(holder) {
        return Err(StoreError::NotHolder { id: parent });
    }
    if children.is_empty() {
        return Err(StoreError::Conflict("a fan-out needs at least one child".into()));
    }
    if let Some(bad) = children.iter().find(|t| !t.depends_on.is_empty()) {
        return Err(StoreError::Conflict(format!(
            "child tasks of a fan-out cannot have dependencies (`{}` has)",
            bad.kind
        )));
    }
    let children: Vec<NewTask> = children
        .iter()
        .enumerate()
        .map(|(i, t)| NewTask {
            idempotency_key: Some(format!("fanout:{}:{i}", parent.0)),
            ..t.clone()
        })
        .collect();
    let summaries = submit(c, ctx, &children).await?;
    let mut waiting = 0_i64;
    for s in &summaries {
        c.execute(
            fixed("INSERT INTO task_deps (depends_on, task_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"),
            args![s.id.0, parent.0],
        )
        .await?;
        if s.state != TaskState::Succeeded {
            waiting += 1;
        }
    }
    let ids: Vec<TaskId> = summaries.iter().map(|s| s.id).collect();
    c.execute(
        fixed(
            "UPDATE tasks SET state = 'pending', pending_deps = $1, fan_in = 1, depends_on = $2, \
             lease_holder = NULL, lease_expires_at = NULL, updated_at = $3 WHERE id = $4",
        ),
        args![waiting, to_json(&ids), ctx.now, parent.0],
    )
    .await?;
    let detail = format!("waits for {} children", ids.len());
    event(c, ctx, parent.0, EventKind::FannedOut, attempt.attempts, holder, Some(detail)).await?;
    if let Some(failed) =
        summaries.iter().find(|s| matches!(s.state, TaskState::Failed | TaskState::Cancelled))
    {
        // A child that already failed (a retried parent): the parent fails as a dependent.
        fail_dependents(c, ctx, failed.id.0).await?;
    } else if waiting == 0 {
        gather(c, ctx, parent.0).await?;
        release_dependents(c, ctx, parent.0).await?;
    }
    Ok(ids)
}

/// Ends a fan-in: the waiting parent succeeds with its children's results, in order.
pub(crate) async fn gather<C: Conn>(c: &mut C, ctx: &Ctx, parent: i64) -> Result<()> {
    let row = c
        .fetch_optional(
            fixed("SELECT depends_on, attempts FROM tasks WHERE id = $1"),
            args![parent],
        )
        .await?
        .ok_or(StoreError::NotFound(TaskId(parent)))?;
    let children: Vec<TaskId> = decode(&row.text("depends_on")?)?;
    let mut results = Vec::with_capacity(children.len());
    for child in &children {
        let r = c
            .fetch_optional(fixed("SELECT result FROM tasks WHERE id = $1"), args![child.0])
            .await?;
        let result: serde_json::Value = match r.and_then(|r| r.opt_text("result").ok().flatten()) {
            Some(text) => decode(&text)?,
            None => serde_json::Value::Null,
        };
        results.push(serde_json::json!({ "id": child, "result": result }));
    }
    let result = serde_json::json!({ "children": results });
    c.execute(
        fixed(
            "UPDATE tasks SET state = 'succeeded', result = $1, finished_at = $2, updated_at = $2, \
             error_class = NULL, error_message = NULL WHERE id = $3",
        ),
        args![to_json(&result), ctx.now, parent],
    )
    .await?;
    let detail = format!("all {} children succeeded", children.len());
    event(c, ctx, parent, EventKind::Succeeded, row.int("attempts")?, "queue", Some(detail)).await
}

/// A dependency succeeded: dependents with nothing left to wait for become queued.
pub(crate) async fn release_dependents<C: Conn>(c: &mut C, ctx: &Ctx, id: i64) -> Result<()> {
    let mut finished = vec![id];
    while let Some(id) = finished.pop() {
        release_dependents_of(c, ctx, id, &mut finished).await?;
    }
    Ok(())
}

/// Settles the dependents of `id`, which succeeded; fan-in parents that this completes are
/// pushed to `finished` (their own dependents are settled next).
pub(crate) async fn release_dependents_of<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    id: i64,
    finished: &mut Vec<i64>,
) -> Result<()> {
    const DEPENDENTS: &str = "id IN (SELECT task_id FROM task_deps WHERE depends_on = $1)";
    let n = c
        .execute(
            dynamic(format!(
                "UPDATE tasks SET pending_deps = pending_deps - 1, updated_at = $2 \
                 WHERE state = 'pending' AND {DEPENDENTS}"
            )),
            args![id, ctx.now],
        )
        .await?;
    if n == 0 {
        return Ok(());
    }
    let rows = c
        .fetch_all(
            dynamic(format!(
                "UPDATE tasks SET state = 'queued', \
                 available_at = CASE WHEN available_at > $2 THEN available_at ELSE $2 END, \
                 sort_key = (CASE WHEN available_at > $2 THEN available_at ELSE $2 END) - priority * $3, \
                 updated_at = $2 \
                 WHERE state = 'pending' AND pending_deps <= 0 AND fan_in = 0 AND {DEPENDENTS} RETURNING id"
            )),
            args![id, ctx.now, ctx.aging_ms],
        )
        .await?;
    for row in rows {
        let detail = format!("dependency {id} succeeded");
        event(c, ctx, row.int("id")?, EventKind::Unblocked, 0, "queue", Some(detail)).await?;
    }
    let parents = c
        .fetch_all(
            dynamic(format!(
                "SELECT id FROM tasks WHERE state = 'pending' AND pending_deps <= 0 AND fan_in = 1 \
                 AND {DEPENDENTS}"
            )),
            args![id],
        )
        .await?;
    for row in parents {
        let parent = row.int("id")?;
        gather(c, ctx, parent).await?;
        finished.push(parent);
    }
    Ok(())
}

/// A dependency will never succeed: its waiting dependents fail, and theirs, transitively.
pub(crate) async fn fail_dependents<C: Conn>(c: &mut C, ctx: &Ctx, root: i64) -> Result<()> {
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        let rows = c
            .fetch_all(
                fixed("UPDATE tasks SET state = 'failed', error_class = $2, error_message = $3, \
                 finished_at = $4, updated_at = $4 \
                 WHERE state = 'pending' AND id IN (SELECT task_id FROM task_deps WHERE depends_on = $1) \
                 RETURNING id"),
                args![
                    id,
                    error_class::DEPENDENCY_FAILED,
                    format!("dependency {id} did not succeed"),
                    ctx.now
                ],
            )
            .await?;
        for row in rows {
            let dependent = row.int("id")?;
            let detail =
                format!("{}: dependency {id} did not succeed", error_class::DEPENDENCY_FAILED);
            event(c, ctx, dependent, EventKind::Failed, 0, "queue", Some(detail)).await?;
            stack.push(dependent);
        }
    }
    Ok(())
}
