//! Set-based paths for the hot operations, and the merging of a SQLite group commit's
//! requests into them.
//!
//! Every statement costs a round trip to the database (on SQLite, a hop to sqlx's worker
//! thread), so the common cases are done many rows a statement: plain submissions are one
//! multi-row `INSERT`, claims one `SELECT`, one `UPDATE ... FROM (VALUES ...)` and one
//! `INSERT ... SELECT` for the events, successful reports one `UPDATE ... FROM (VALUES ...)`.
//! The rarer cases (failures, keys, dependencies) take the row-by-row paths in `ops`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use dreamos_core::{Completion, EventKind, NewTask, Outcome, Task, TaskState};

use crate::conn::{Arg, Conn, RowLike, args, dynamic, placeholders};
use crate::ops::{
    ATTEMPT_COLS, Ctx, Request, Response, TASK_COLS, apply, attempt_from_row, complete, decode,
    missing_or_stale, release_dependents, task_from_row, to_json,
};
use crate::types::ClaimRequest;
use crate::{Result, StoreError};

/// Rows per multi-row statement: far below both backends' bound-parameter limits.
const CHUNK: usize = 400;

/// `(CAST($n AS BIGINT), $n+1, ...), (...)` for `rows` rows whose columns are described by
/// `casts` (`Some("BIGINT")` to cast a column, `None` to leave it).
///
/// The text depends only on its arguments and the hot paths ask for the same few shapes again
/// and again, so each shape is formatted once per thread and then copied.
fn values_rows(start: usize, rows: usize, casts: &[Option<&'static str>]) -> String {
    type Key = (usize, usize, Vec<Option<&'static str>>);
    thread_local! {
        static MEMO: std::cell::RefCell<std::collections::HashMap<Key, String>> =
            Default::default();
    }
    /// Enough for every shape the hot paths use; past it, texts are formatted each time.
    const MEMO_LIMIT: usize = 4096;
    let key = (start, rows, casts.to_vec());
    if let Some(text) = MEMO.with(|m| m.borrow().get(&key).cloned()) {
        return text;
    }
    let mut n = start;
    let mut out = String::with_capacity(rows * casts.len() * 20);
    for row in 0..rows {
        out.push_str(if row == 0 { "(" } else { ", (" });
        for (i, cast) in casts.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match cast {
                Some(t) => out.push_str(&format!("CAST(${n} AS {t})")),
                None => out.push_str(&format!("${n}")),
            }
            n += 1;
        }
        out.push(')');
    }
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < MEMO_LIMIT {
            m.insert(key, out.clone());
        }
    });
    out
}

pub(crate) struct EventRow<'a> {
    pub task: i64,
    pub kind: EventKind,
    pub attempt: i64,
    pub actor: &'a str,
    pub detail: Option<String>,
}

pub(crate) async fn insert_events<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    rows: Vec<EventRow<'_>>,
) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let mut a: Vec<Arg> = Vec::with_capacity(chunk.len() * 5 + 1);
        a.push(ctx.now.into());
        for r in chunk {
            a.extend(args![r.task, r.kind.as_str(), r.attempt, r.actor, r.detail.clone()]);
        }
        let values =
            values_rows(2, chunk.len(), &[Some("BIGINT"), None, Some("BIGINT"), None, None]);
        c.execute(
            dynamic(format!(
                "INSERT INTO task_events (task_id, at, kind, attempt, actor, detail) \
                 SELECT v.column1, $1, v.column2, v.column3, v.column4, v.column5 FROM (VALUES {values}) AS v"
            )),
            a,
        )
        .await?;
    }
    Ok(())
}

/// Inserts queued tasks that have no idempotency key and no dependencies; their ids, in order.
pub(crate) async fn insert_plain<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    tasks: &[(&NewTask, i64)],
) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(tasks.len());
    for chunk in tasks.chunks(CHUNK) {
        let mut a: Vec<Arg> = Vec::with_capacity(chunk.len() * 12 + 1);
        a.push(ctx.now.into());
        for (t, base) in chunk {
            let available_at = t.run_at_ms.map_or(ctx.now, |at| at.max(ctx.now));
            a.extend(args![
                t.kind.clone(),
                to_json(&t.payload),
                t.priority.rank(),
                to_json(&t.capabilities),
                i64::from(t.retry.max_attempts),
                t.retry.base_delay_ms,
                t.retry.max_delay_ms,
                available_at,
                ctx.sort_key((*base).max(available_at), t.priority),
                t.timeout_ms,
                t.submitter.clone()
            ]);
        }
        let b = Some("BIGINT");
        let values = values_rows(2, chunk.len(), &[None, None, b, None, b, b, b, b, b, b, None]);
        let rows = c
            .fetch_all(
                dynamic(format!(
                    "INSERT INTO tasks (kind, payload, priority, state, capabilities, attempts, \
                     max_attempts, backoff_base_ms, backoff_max_ms, available_at, sort_key, timeout_ms, \
                     fence, depends_on, pending_deps, submitter, cancel_requested, created_at, updated_at) \
                     SELECT v.column1, v.column2, v.column3, 'queued', v.column4, 0, v.column5, v.column6, \
                     v.column7, v.column8, v.column9, v.column10, 0, '[]', 0, v.column11, 0, $1, $1 \
                     FROM (VALUES {values}) AS v RETURNING id"
                )),
                a,
            )
            .await?;
        // Ids are assigned in row order within one statement.
        let mut chunk_ids = rows.iter().map(|r| r.int("id")).collect::<Result<Vec<_>, _>>()?;
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids);
    }
    let events = tasks
        .iter()
        .zip(&ids)
        .map(|((t, _), id)| EventRow {
            task: *id,
            kind: EventKind::Submitted,
            attempt: 0,
            actor: &t.submitter,
            detail: None,
        })
        .collect();
    insert_events(c, ctx, events).await?;
    Ok(ids)
}

/// How many candidate pages one claim looks at before giving up on finding tasks whose extra
/// capabilities the agents have.
const CLAIM_PAGES: usize = 4;

/// Serves several claims at once: claims with the same capabilities share one candidate scan,
/// and all chosen tasks are leased by one statement. Answers in request order.
pub(crate) async fn claim_many<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    requests: &[&ClaimRequest],
) -> Result<Vec<Vec<Task>>> {
    type Group<'a> = (BTreeSet<&'a str>, BTreeSet<&'a str>);
    let mut by_caps: BTreeMap<Group, Vec<usize>> = BTreeMap::new();
    for (i, r) in requests.iter().enumerate() {
        let caps: BTreeSet<&str> = r.capabilities.iter().map(String::as_str).collect();
        let kinds: BTreeSet<&str> = match &r.kinds {
            Some(kinds) => kinds.iter().map(String::as_str).filter(|k| caps.contains(k)).collect(),
            None => caps.clone(),
        };
        if !kinds.is_empty() && r.max > 0 {
            by_caps.entry((caps, kinds)).or_default().push(i);
        }
    }
    // (task id, request index)
    let mut assigned: Vec<(i64, usize)> = Vec::new();
    for ((caps, kinds), members) in &by_caps {
        let total: usize = members.iter().map(|i| requests[*i].max).sum();
        let chosen = candidates(c, ctx, caps, kinds, total).await?;
        let mut next = chosen.into_iter();
        'members: for &i in members {
            for _ in 0..requests[i].max {
                match next.next() {
                    Some(id) => assigned.push((id, i)),
                    None => break 'members,
                }
            }
        }
    }
    let mut answers: Vec<Vec<Task>> = vec![Vec::new(); requests.len()];
    if assigned.is_empty() {
        return Ok(answers);
    }
    let order: BTreeMap<i64, (usize, usize)> =
        assigned.iter().enumerate().map(|(pos, (id, i))| (*id, (*i, pos))).collect();
    for chunk in assigned.chunks(CHUNK) {
        let mut a: Vec<Arg> = vec![ctx.now.into()];
        for (id, i) in chunk {
            a.extend(args![*id, requests[*i].holder.clone(), ctx.now + requests[*i].lease_ms]);
        }
        let values = values_rows(2, chunk.len(), &[Some("BIGINT"), None, Some("BIGINT")]);
        let rows = c
            .fetch_all(
                dynamic(format!(
                    "UPDATE tasks SET state = 'running', attempts = attempts + 1, fence = fence + 1, \
                     lease_holder = v.column2, lease_expires_at = v.column3, updated_at = $1, \
                     progress_percent = NULL, progress_message = NULL \
                     FROM (VALUES {values}) AS v WHERE tasks.id = v.column1 AND tasks.state = 'queued' \
                     RETURNING {}",
                    qualified(TASK_COLS)
                )),
                a,
            )
            .await?;
        let ids = placeholders(2, chunk.len());
        let mut a: Vec<Arg> = vec![ctx.now.into()];
        a.extend(chunk.iter().map(|(id, _)| Arg::from(*id)));
        c.execute(
            dynamic(format!(
                "INSERT INTO task_events (task_id, at, kind, attempt, actor, detail) \
                 SELECT id, $1, 'claimed', attempts, lease_holder, NULL FROM tasks WHERE id IN ({ids})"
            )),
            a,
        )
        .await?;
        for row in &rows {
            let task = task_from_row(row, false)?;
            if let Some((i, _)) = order.get(&task.id.0) {
                answers[*i].push(task);
            }
        }
    }
    for list in &mut answers {
        list.sort_by_key(|t| order.get(&t.id.0).map(|(_, pos)| *pos));
    }
    Ok(answers)
}

/// `tasks.id, tasks.kind, ...`: RETURNING next to a `FROM (VALUES ...)` names its table.
fn qualified(cols: &str) -> String {
    cols.split(',').map(|c| format!("tasks.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

/// Up to `max` claimable tasks an agent with `caps` may run, in queue order, locked on
/// PostgreSQL with SKIP LOCKED.
async fn candidates<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    caps: &BTreeSet<&str>,
    kinds: &BTreeSet<&str>,
    max: usize,
) -> Result<Vec<i64>> {
    // Most tasks need no capability beyond their kind, so a page a little larger than the
    // claim usually suffices; further pages are read only when some were skipped.
    let page = (max + 16) as i64;
    let kind_list = placeholders(5, kinds.len());
    let sql = format!(
        "SELECT id, sort_key, capabilities FROM {} WHERE state = 'queued' AND available_at <= $1 \
         AND (sort_key, id) > ($2, $3) AND kind IN ({kind_list}) \
         ORDER BY sort_key, id LIMIT $4{}",
        C::DIALECT.claim_source(),
        C::DIALECT.skip_locked()
    );
    let mut chosen = Vec::with_capacity(max);
    let (mut after_key, mut after_id) = (i64::MIN, 0_i64);
    for _ in 0..CLAIM_PAGES {
        let mut a = args![ctx.now, after_key, after_id, page];
        a.extend(kinds.iter().map(|k| (*k).into()));
        let rows = c.fetch_all(dynamic(sql.clone()), a).await?;
        let exhausted = (rows.len() as i64) < page;
        for row in &rows {
            after_key = row.int("sort_key")?;
            after_id = row.int("id")?;
            let required = row.text("capabilities")?;
            let eligible = required == "[]"
                || decode::<Vec<String>>(&required)?.iter().all(|r| caps.contains(r.as_str()));
            if eligible {
                chosen.push(after_id);
                if chosen.len() == max {
                    return Ok(chosen);
                }
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(chosen)
}

/// Reports from holders. Successes that present the current fence are ended together; every
/// other report takes the row-by-row path. Answers in report order.
pub(crate) async fn complete_many<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    reports: &[(&str, &Completion)],
) -> Result<Vec<Result<TaskState>>> {
    let mut answers: Vec<Option<Result<TaskState>>> = (0..reports.len()).map(|_| None).collect();
    let mut current: BTreeMap<i64, crate::ops::Attempt> = BTreeMap::new();
    let ids: BTreeSet<i64> = reports.iter().map(|(_, r)| r.task_id.0).collect();
    let ids: Vec<i64> = ids.into_iter().collect();
    for chunk in ids.chunks(CHUNK) {
        let rows = c
            .fetch_all(
                dynamic(format!(
                    "SELECT {ATTEMPT_COLS} FROM tasks WHERE id IN ({}){}",
                    placeholders(1, chunk.len()),
                    C::DIALECT.for_update()
                )),
                chunk.iter().map(|id| Arg::from(*id)).collect(),
            )
            .await?;
        for row in &rows {
            let attempt = attempt_from_row(row)?;
            current.insert(attempt.id, attempt);
        }
    }
    // (report index, attempts) of the successes to end together.
    let mut fast: Vec<(usize, i64)> = Vec::new();
    let mut slow: Vec<usize> = Vec::new();
    let mut seen = HashSet::new();
    for (i, (actor, report)) in reports.iter().enumerate() {
        let id = report.task_id.0;
        let Some(attempt) = current.get(&id) else {
            answers[i] = Some(Err(missing_or_stale(c, report.task_id).await));
            continue;
        };
        if !seen.insert(id) {
            slow.push(i); // a second report for one task: judged after the first
            continue;
        }
        if attempt.state != TaskState::Running || attempt.fence != report.fence {
            answers[i] = Some(Err(StoreError::StaleLease { id: report.task_id }));
        } else if crate::ops::foreign(actor, attempt) {
            answers[i] = Some(Err(StoreError::NotHolder { id: report.task_id }));
        } else if matches!(report.outcome, Outcome::Succeeded { .. }) && !attempt.cancel_requested {
            fast.push((i, attempt.attempts));
        } else {
            slow.push(i);
        }
    }
    for chunk in fast.chunks(CHUNK) {
        let mut a: Vec<Arg> = vec![ctx.now.into()];
        for (i, _) in chunk {
            let (_, report) = reports[*i];
            let Outcome::Succeeded { result } = &report.outcome else { continue };
            a.extend(args![report.task_id.0, to_json(result)]);
        }
        let values = values_rows(2, chunk.len(), &[Some("BIGINT"), None]);
        c.execute(
            dynamic(format!(
                "UPDATE tasks SET state = 'succeeded', result = v.column2, finished_at = $1, \
                 updated_at = $1, error_class = NULL, error_message = NULL, lease_holder = NULL, \
                 lease_expires_at = NULL FROM (VALUES {values}) AS v WHERE tasks.id = v.column1"
            )),
            a,
        )
        .await?;
    }
    let events = fast
        .iter()
        .map(|(i, attempts)| EventRow {
            task: reports[*i].1.task_id.0,
            kind: EventKind::Succeeded,
            attempt: *attempts,
            actor: reports[*i].0,
            detail: None,
        })
        .collect();
    insert_events(c, ctx, events).await?;
    if !fast.is_empty() {
        let done: Vec<i64> = fast.iter().map(|(i, _)| reports[*i].1.task_id.0).collect();
        for chunk in done.chunks(CHUNK) {
            let rows = c
                .fetch_all(
                    dynamic(format!(
                        "SELECT DISTINCT depends_on FROM task_deps WHERE depends_on IN ({})",
                        placeholders(1, chunk.len())
                    )),
                    chunk.iter().map(|id| Arg::from(*id)).collect(),
                )
                .await?;
            for row in rows {
                release_dependents(c, ctx, row.int("depends_on")?).await?;
            }
        }
    }
    for (i, _) in &fast {
        answers[*i] = Some(Ok(TaskState::Succeeded));
    }
    for i in slow {
        let (actor, report) = reports[i];
        answers[i] = Some(complete(c, ctx, actor, report).await);
    }
    let answers = answers.into_iter().map(|a| a.unwrap_or(Err(StoreError::Closed))).collect();
    crate::error::surface_database_error(answers)
}

/// Runs a SQLite group commit's requests in one transaction, merging submissions, claims and
/// reports into one set-based call each. A logical error in a merged submission (which wrote
/// nothing) sends its requests through one by one, so only the bad one is refused. An `Err`
/// is a database error: the caller rolls the whole group back.
pub(crate) async fn apply_group<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    requests: &[&Request],
) -> Result<Vec<Result<Response>>> {
    let mut answers: Vec<Option<Result<Response>>> = (0..requests.len()).map(|_| None).collect();
    let submits: Vec<usize> =
        (0..requests.len()).filter(|i| matches!(requests[*i], Request::Submit(_))).collect();
    if submits.len() > 1 {
        let tasks: Vec<NewTask> = submits
            .iter()
            .flat_map(|i| match requests[*i] {
                Request::Submit(t) => t.clone(),
                _ => Vec::new(),
            })
            .collect();
        match apply(c, ctx, &Request::Submit(tasks)).await {
            Ok(Response::Submitted(mut all)) => {
                for i in &submits {
                    let Request::Submit(t) = requests[*i] else { continue };
                    let rest = all.split_off(t.len().min(all.len()));
                    answers[*i] = Some(Ok(Response::Submitted(std::mem::replace(&mut all, rest))));
                }
            }
            Ok(other) => return Err(StoreError::Corrupt(format!("unexpected {other:?}"))),
            Err(e) if !e.is_logical() => return Err(e),
            Err(_) => {} // answered one by one below
        }
    }
    let claims: Vec<usize> =
        (0..requests.len()).filter(|i| matches!(requests[*i], Request::Claim(_))).collect();
    if claims.len() > 1 {
        let list: Vec<&ClaimRequest> = claims
            .iter()
            .filter_map(|i| match requests[*i] {
                Request::Claim(r) => Some(r),
                _ => None,
            })
            .collect();
        for (i, tasks) in claims.iter().zip(claim_many(c, ctx, &list).await?) {
            answers[*i] = Some(Ok(Response::Claimed(tasks)));
        }
    }
    let completes: Vec<usize> =
        (0..requests.len()).filter(|i| matches!(requests[*i], Request::Complete { .. })).collect();
    if completes.len() > 1 {
        let mut flat: Vec<(&str, &Completion)> = Vec::new();
        let mut sizes = Vec::new();
        for i in &completes {
            if let Request::Complete { actor, reports } = requests[*i] {
                flat.extend(reports.iter().map(|r| (actor.as_str(), r)));
                sizes.push(reports.len());
            }
        }
        let mut all = complete_many(c, ctx, &flat).await?.into_iter();
        for (i, n) in completes.iter().zip(sizes) {
            answers[*i] = Some(Ok(Response::Completed(all.by_ref().take(n).collect())));
        }
    }
    let mut out = Vec::with_capacity(requests.len());
    for (i, answer) in answers.into_iter().enumerate() {
        out.push(match answer {
            Some(a) => a,
            None => match apply(c, ctx, requests[i]).await {
                Err(e) if !e.is_logical() => return Err(e),
                other => other,
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::values_rows;

    #[test]
    fn values_rows_number_placeholders_in_order_and_repeat_identically() {
        let casts = [Some("BIGINT"), None];
        let expected = "(CAST($2 AS BIGINT), $3), (CAST($4 AS BIGINT), $5)";
        assert_eq!(values_rows(2, 2, &casts), expected);
        // The second call is served from the memo and must be the same text.
        assert_eq!(values_rows(2, 2, &casts), expected);
        assert_eq!(values_rows(1, 1, &[None]), "($1)");
    }
}
