//! Housekeeping transitions: lapsed leases, attempts of a holder that is gone, the archive.

use dreamos_core::{Outcome, TaskError, TaskId, error_class};

use crate::Result;
use crate::conn::{Conn, args, dynamic};
use crate::ops::*;

/// Most lapsed leases one request handles; the sweeper calls again while it finds more.
pub(crate) const EXPIRE_BATCH: i64 = 1_000;

pub(crate) async fn expire_leases<C: Conn>(c: &mut C, ctx: &Ctx) -> Result<Vec<TaskId>> {
    let rows = c
        .fetch_all(
            dynamic(format!(
                "SELECT {ATTEMPT_COLS} FROM tasks WHERE state = 'running' AND lease_expires_at < $1 \
                 ORDER BY lease_expires_at LIMIT $2{}",
                C::DIALECT.skip_locked()
            )),
            args![ctx.now, EXPIRE_BATCH],
        )
        .await?;
    end_attempts(c, ctx, rows, error_class::LEASE_EXPIRED).await
}

pub(crate) async fn fail_holders<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    prefix: &str,
    class: &str,
) -> Result<Vec<TaskId>> {
    let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let rows = c
        .fetch_all(
            dynamic(format!(
                "SELECT {ATTEMPT_COLS} FROM tasks WHERE state = 'running' \
                 AND lease_holder LIKE $1 ESCAPE '\\'{}",
                C::DIALECT.for_update()
            )),
            args![format!("{escaped}%")],
        )
        .await?;
    end_attempts(c, ctx, rows, class).await
}

pub(crate) async fn end_attempts<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    rows: Vec<C::Row>,
    class: &str,
) -> Result<Vec<TaskId>> {
    let mut ended = Vec::with_capacity(rows.len());
    for row in rows {
        let attempt = attempt_from_row(&row)?;
        let holder = attempt.holder.clone().unwrap_or_default();
        let error = TaskError {
            class: class.to_string(),
            message: format!("the lease held by {holder} lapsed before the attempt ended"),
        };
        end_attempt(c, ctx, &attempt, &Outcome::Failed { error, retryable: true }, "queue").await?;
        ended.push(TaskId(attempt.id));
    }
    Ok(ended)
}

pub(crate) async fn archive<C: Conn>(c: &mut C, ctx: &Ctx, finished_before_ms: i64) -> Result<u64> {
    const DONE: &str = "finished_at IS NOT NULL AND finished_at < $1";
    c.execute(
        dynamic(format!(
            "INSERT INTO task_events (task_id, at, kind, attempt, actor, detail) \
             SELECT id, $2, 'archived', attempts, 'queue', NULL FROM tasks WHERE {DONE}"
        )),
        args![finished_before_ms, ctx.now],
    )
    .await?;
    c.execute(
        dynamic(format!(
            "INSERT INTO tasks_archive ({ALL_COLS}) SELECT {ALL_COLS} FROM tasks WHERE {DONE}"
        )),
        args![finished_before_ms],
    )
    .await?;
    c.execute(
        dynamic(format!(
            "DELETE FROM task_deps WHERE task_id IN (SELECT id FROM tasks WHERE {DONE})"
        )),
        args![finished_before_ms],
    )
    .await?;
    let n = c
        .execute(dynamic(format!("DELETE FROM tasks WHERE {DONE}")), args![finished_before_ms])
        .await?;
    Ok(n)
}
