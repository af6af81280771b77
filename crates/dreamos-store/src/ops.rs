//! Every write the store performs, written once against [`Conn`] and run inside a transaction
//! by the backend: SQLite's writer batches many requests into one, PostgreSQL runs each alone.
//!
//! Architecture invariant: a request's checks (not found, stale token, illegal transition) run
//! before its first write, so a request that fails a check has written nothing.

use std::collections::BTreeSet;

use dreamos_core::{
    Completion, EventKind, NewTask, Outcome, Priority, RetryPolicy, Task, TaskError, TaskId,
    TaskState, TaskSummary, error_class,
};

use crate::conn::{Conn, RowLike, args, dynamic, fixed};
pub(crate) use crate::deps::release_dependents;
use crate::deps::{fail_dependents, fan_out};
pub(crate) use crate::rows::{decode, task_from_row};
use crate::sweep::{archive, expire_leases, fail_holders};
use crate::types::{ApiToken, ClaimRequest, Heartbeat, HeartbeatAnswer};
use crate::{Result, StoreError};

/// One write request. Batches (submit, heartbeat, complete) are one request each.
#[derive(Debug, Clone)]
pub enum Request {
    Submit(Vec<NewTask>),
    Claim(ClaimRequest),
    Heartbeat(Vec<Heartbeat>),
    Complete {
        actor: String,
        reports: Vec<Completion>,
    },
    Cancel {
        id: TaskId,
        actor: String,
    },
    Retry {
        id: TaskId,
        actor: String,
    },
    ExpireLeases,
    FailHolders {
        prefix: String,
        class: String,
    },
    Archive {
        finished_before_ms: i64,
    },
    CreateToken(ApiToken),
    RevokeToken {
        id: String,
    },
    /// A running task spawns `children` and waits for them: it becomes `pending` on them and
    /// succeeds with their results when the last succeeds (it fails if one fails). Children
    /// get idempotency keys from the parent, so a retried parent finds the same children.
    FanOut {
        parent: TaskId,
        fence: i64,
        holder: String,
        children: Vec<NewTask>,
    },
    /// Task and agent events after a cursor, in commit order: the live event feed.
    Feed {
        after: crate::feed::FeedCursor,
        limit: usize,
    },
    /// The feed's current end.
    FeedHeads,
    /// When the task event at a position happened (`Ids` with one time, or none if it is gone).
    FeedEventAt(crate::feed::FeedPos),
    /// Appends to the hash-chained audit log ([`crate::audit`]).
    Audit(Vec<crate::audit::AuditEntry>),
    /// Reads the audit log (through the writer, so it sees every append before it).
    AuditRead(crate::audit::AuditFilter),
    /// Agents, messages, leases and dispatch ([`crate::agents`]).
    Agent(Box<crate::agents::AgentOp>),
}

#[derive(Debug)]
pub enum Response {
    Submitted(Vec<TaskSummary>),
    Claimed(Vec<Task>),
    Heartbeats(Vec<Result<HeartbeatAnswer>>),
    Completed(Vec<Result<TaskState>>),
    State(TaskState),
    /// A running task was asked to stop for the first time (it is still running).
    CancelRequested,
    Tasks(Vec<TaskId>),
    Count(u64),
    Done,
    Agent(crate::agents::AgentAnswer),
    Audit(Vec<crate::audit::AuditRecord>),
    Ids(Vec<i64>),
    Feed(crate::feed::Feed),
}

/// Whether a request, answered `response`, was the first to ask a running task to stop (its runner is told
/// through [`crate::Signals::cancel_requested`]).
pub fn stops_running_task(response: &Response) -> bool {
    matches!(response, Response::CancelRequested)
}

impl Response {
    /// Whether claimable work may have appeared: `None` if not, `Some(Some(n))` when exactly
    /// `n` tasks became claimable, `Some(None)` when it is not known how many.
    pub fn new_work(&self) -> Option<Option<usize>> {
        match self {
            Response::Claimed(_)
            | Response::Heartbeats(_)
            | Response::Done
            | Response::CancelRequested => None,
            // A resumed, restarted or newly registered agent may take work that waits.
            Response::Agent(crate::agents::AgentAnswer::Agent(_)) => Some(None),
            Response::Agent(_) | Response::Audit(_) | Response::Ids(_) | Response::Feed(_) => None,
            Response::Submitted(s) => {
                Some(Some(s.iter().filter(|t| t.created && t.state == TaskState::Queued).count()))
            }
            _ => Some(None),
        }
    }
}

/// What a transaction needs to know besides its request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub now: i64,
    pub aging_ms: i64,
    pub fair_spacing_ms: i64,
    pub audit_key: Option<crate::AuditKey>,
}

impl Ctx {
    pub(crate) fn sort_key(&self, available_at: i64, priority: Priority) -> i64 {
        available_at - priority.rank() * self.aging_ms
    }
}

pub(crate) const TASK_COLS: &str = "id, kind, payload, priority, state, capabilities, attempts, \
    max_attempts, backoff_base_ms, backoff_max_ms, available_at, timeout_ms, lease_holder, fence, \
    lease_expires_at, progress_percent, progress_message, result, error_class, error_message, \
    depends_on, idempotency_key, submitter, cancel_requested, created_at, updated_at, finished_at";

pub(crate) const ALL_COLS: &str = "id, kind, payload, priority, state, capabilities, attempts, max_attempts, \
    backoff_base_ms, backoff_max_ms, available_at, sort_key, timeout_ms, lease_holder, fence, \
    lease_expires_at, progress_percent, progress_message, result, error_class, error_message, \
    depends_on, pending_deps, idempotency_key, submitter, cancel_requested, created_at, \
    updated_at, finished_at";

/// The columns deciding how an attempt ends.
pub(crate) const ATTEMPT_COLS: &str = "id, state, fence, attempts, max_attempts, backoff_base_ms, \
    backoff_max_ms, priority, cancel_requested, lease_holder";

pub(crate) async fn apply<C: Conn>(c: &mut C, ctx: &Ctx, request: &Request) -> Result<Response> {
    Ok(match request {
        Request::Submit(tasks) => Response::Submitted(submit(c, ctx, tasks).await?),
        Request::Claim(claim_request) => {
            Response::Claimed(crate::batch::claim_many(c, ctx, &[claim_request]).await?.remove(0))
        }
        Request::Heartbeat(beats) => {
            let mut answers = Vec::with_capacity(beats.len());
            for beat in beats {
                answers.push(heartbeat(c, ctx, beat).await);
            }
            Response::Heartbeats(crate::error::surface_database_error(answers)?)
        }
        Request::Complete { actor, reports } => {
            let reports: Vec<(&str, &Completion)> =
                reports.iter().map(|r| (actor.as_str(), r)).collect();
            Response::Completed(crate::batch::complete_many(c, ctx, &reports).await?)
        }
        Request::Cancel { id, actor } => match cancel(c, ctx, *id, actor).await? {
            // The first request to stop a running task: its runner must hear of it.
            (TaskState::Running, true) => Response::CancelRequested,
            (state, _) => Response::State(state),
        },
        Request::Retry { id, actor } => Response::State(retry(c, ctx, *id, actor).await?),
        Request::ExpireLeases => Response::Tasks(expire_leases(c, ctx).await?),
        Request::FailHolders { prefix, class } => {
            Response::Tasks(fail_holders(c, ctx, prefix, class).await?)
        }
        Request::Archive { finished_before_ms } => {
            Response::Count(archive(c, ctx, *finished_before_ms).await?)
        }
        Request::FanOut { parent, fence, holder, children } => {
            Response::Tasks(fan_out(c, ctx, *parent, *fence, holder, children).await?)
        }
        Request::Feed { after, limit } => {
            Response::Feed(crate::feed::read(c, *after, *limit).await?)
        }
        Request::FeedHeads => {
            let head = crate::feed::heads(c).await?;
            Response::Ids(vec![head.tasks.tx, head.tasks.id, head.agents.tx, head.agents.id])
        }
        Request::FeedEventAt(pos) => {
            Response::Ids(crate::feed::task_event_at(c, *pos).await?.into_iter().collect())
        }
        Request::Audit(entries) => Response::Ids(crate::audit::append(c, ctx, entries).await?),
        Request::AuditRead(filter) => Response::Audit(crate::audit::read(c, filter).await?),
        Request::Agent(op) => Response::Agent(crate::agents::apply(c, ctx, op).await?),
        Request::CreateToken(token) => {
            c.execute(
                fixed("INSERT INTO api_tokens (id, hash, role, label, created_at, expires_at, revoked_at, workspaces) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
                args![
                    token.id.clone(),
                    token.hash.clone(),
                    token.role.clone(),
                    token.label.clone(),
                    token.created_at_ms,
                    token.expires_at_ms,
                    token.revoked_at_ms,
                    token.workspaces.as_ref().map(to_json)
                ],
            )
            .await?;
            Response::Done
        }
        Request::RevokeToken { id } => {
            let n = c
                .execute(
                    fixed("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"),
                    args![ctx.now, id.clone()],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("no active token with id `{id}`")));
            }
            Response::Done
        }
    })
}

pub(crate) async fn event<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    task: i64,
    kind: EventKind,
    attempt: i64,
    actor: &str,
    detail: Option<String>,
) -> Result<()> {
    c.execute(
        fixed(
            "INSERT INTO task_events (task_id, at, kind, attempt, actor, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        ),
        args![task, ctx.now, kind.as_str(), attempt, actor, detail],
    )
    .await?;
    Ok(())
}

pub(crate) fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The state of a task, live or archived.
pub(crate) async fn state_of<C: Conn>(c: &mut C, id: i64) -> Result<Option<TaskState>> {
    let row = c
        .fetch_optional(
            fixed("SELECT state FROM tasks WHERE id = $1 UNION ALL SELECT state FROM tasks_archive WHERE id = $1"),
            args![id],
        )
        .await?;
    row.map(|r| parse_state(&r.text("state")?)).transpose()
}

pub(crate) fn parse_state(s: &str) -> Result<TaskState> {
    s.parse().map_err(|e: dreamos_core::ParseError| StoreError::Corrupt(e.to_string()))
}

pub(crate) async fn submit<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    tasks: &[NewTask],
) -> Result<Vec<TaskSummary>> {
    // Checks first (see the invariant above): every dependency of every task must exist.
    let mut dep_states = std::collections::BTreeMap::new();
    for dep in tasks.iter().flat_map(|t| t.depends_on.iter()) {
        if !dep_states.contains_key(dep) {
            let state = state_of(c, dep.0).await?.ok_or(StoreError::DependencyNotFound(*dep))?;
            dep_states.insert(*dep, state);
        }
    }
    let bases = fair_bases(c, ctx, tasks).await?;
    let mut out = Vec::with_capacity(tasks.len());
    let mut plain: Vec<(&NewTask, i64)> = Vec::new();
    for (task, &base) in tasks.iter().zip(&bases) {
        // Tasks without a key or dependencies are inserted together, many rows a statement.
        if task.idempotency_key.is_none() && task.depends_on.is_empty() {
            plain.push((task, base));
            continue;
        }
        flush_plain(c, ctx, &mut plain, &mut out).await?;
        if let Some(key) = &task.idempotency_key
            && let Some(existing) = find_by_key(c, key).await?
        {
            out.push(existing);
            continue;
        }
        let deps: BTreeSet<TaskId> = task.depends_on.iter().copied().collect();
        let mut pending_deps = 0_i64;
        let mut failed_dep = None;
        for dep in &deps {
            match dep_states.get(dep) {
                Some(TaskState::Succeeded) => {}
                Some(TaskState::Failed | TaskState::Cancelled) => failed_dep = Some(*dep),
                _ => pending_deps += 1,
            }
        }
        let state = if failed_dep.is_some() {
            TaskState::Failed
        } else if pending_deps > 0 {
            TaskState::Pending
        } else {
            TaskState::Queued
        };
        let available_at = task.run_at_ms.map_or(ctx.now, |at| at.max(ctx.now));
        let (error_class, error_message, finished_at) = match failed_dep {
            Some(dep) => (
                Some(error_class::DEPENDENCY_FAILED.to_string()),
                Some(format!("dependency {dep} did not succeed")),
                Some(ctx.now),
            ),
            None => (None, None, None),
        };
        let deps_vec: Vec<TaskId> = deps.iter().copied().collect();
        let row = c
            .fetch_optional(
                fixed("INSERT INTO tasks (kind, payload, priority, state, capabilities, attempts, \
                 max_attempts, backoff_base_ms, backoff_max_ms, available_at, sort_key, timeout_ms, \
                 fence, depends_on, pending_deps, idempotency_key, submitter, cancel_requested, \
                 created_at, updated_at, finished_at, error_class, error_message) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $11, 0, $12, $13, $14, $15, 0, \
                 $16, $16, $17, $18, $19) \
                 ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
                 RETURNING id"),
                args![
                    task.kind.clone(),
                    to_json(&task.payload),
                    task.priority.rank(),
                    state.as_str(),
                    to_json(&task.capabilities),
                    i64::from(task.retry.max_attempts),
                    task.retry.base_delay_ms,
                    task.retry.max_delay_ms,
                    available_at,
                    ctx.sort_key(base.max(available_at), task.priority),
                    task.timeout_ms,
                    to_json(&deps_vec),
                    pending_deps,
                    task.idempotency_key.clone(),
                    task.submitter.clone(),
                    ctx.now,
                    finished_at,
                    error_class,
                    error_message.clone()
                ],
            )
            .await?;
        let Some(row) = row else {
            // A concurrent submission with the same key won the race: answer with its task.
            let key = task.idempotency_key.as_deref().unwrap_or_default();
            match find_by_key(c, key).await? {
                Some(existing) => out.push(existing),
                None => {
                    return Err(StoreError::Conflict(format!("idempotency key `{key}` is taken")));
                }
            }
            continue;
        };
        let id = row.int("id")?;
        for dep in &deps {
            c.execute(
                fixed("INSERT INTO task_deps (depends_on, task_id) VALUES ($1, $2)"),
                args![dep.0, id],
            )
            .await?;
        }
        event(c, ctx, id, EventKind::Submitted, 0, &task.submitter, None).await?;
        if state == TaskState::Failed {
            event(c, ctx, id, EventKind::Failed, 0, "queue", error_message).await?;
        }
        out.push(TaskSummary { id: TaskId(id), state, created: true });
    }
    flush_plain(c, ctx, &mut plain, &mut out).await?;
    Ok(out)
}

/// Where each new task is placed in the claim order before its priority applies: its
/// available time, but no earlier than `fair_spacing_ms` after the previous task of the same
/// submitter and priority. One submitter's backlog is thus spread out, and another
/// submitter's new task lands among it rather than behind all of it (fair queuing by start
/// time). The clocks live in `submitter_clocks`.
async fn fair_bases<C: Conn>(c: &mut C, ctx: &Ctx, tasks: &[NewTask]) -> Result<Vec<i64>> {
    let available: Vec<i64> =
        tasks.iter().map(|t| t.run_at_ms.map_or(ctx.now, |at| at.max(ctx.now))).collect();
    if ctx.fair_spacing_ms <= 0 {
        return Ok(available);
    }
    let mut groups: std::collections::BTreeMap<(&str, i64), Vec<usize>> = Default::default();
    for (i, t) in tasks.iter().enumerate() {
        groups.entry((t.submitter.as_str(), t.priority.rank())).or_default().push(i);
    }
    let mut bases = available.clone();
    for ((submitter, rank), members) in groups {
        let row = c
            .fetch_optional(
                dynamic(format!(
                    "SELECT next_at FROM submitter_clocks WHERE submitter = $1 AND priority = $2{}",
                    C::DIALECT.for_update()
                )),
                args![submitter, rank],
            )
            .await?;
        let mut next = match &row {
            Some(r) => r.int("next_at")?,
            None => i64::MIN,
        };
        for i in members {
            bases[i] = available[i].max(next);
            next = bases[i] + ctx.fair_spacing_ms;
        }
        c.execute(
            fixed(
                "INSERT INTO submitter_clocks (submitter, priority, next_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (submitter, priority) DO UPDATE SET next_at = excluded.next_at",
            ),
            args![submitter, rank, next],
        )
        .await?;
    }
    Ok(bases)
}

async fn flush_plain<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    plain: &mut Vec<(&NewTask, i64)>,
    out: &mut Vec<TaskSummary>,
) -> Result<()> {
    if plain.is_empty() {
        return Ok(());
    }
    let ids = crate::batch::insert_plain(c, ctx, plain).await?;
    out.extend(ids.into_iter().map(|id| TaskSummary {
        id: TaskId(id),
        state: TaskState::Queued,
        created: true,
    }));
    plain.clear();
    Ok(())
}

async fn find_by_key<C: Conn>(c: &mut C, key: &str) -> Result<Option<TaskSummary>> {
    let row = c
        .fetch_optional(
            fixed(
                "SELECT id, state FROM tasks WHERE idempotency_key = $1 \
             UNION ALL SELECT id, state FROM tasks_archive WHERE idempotency_key = $1",
            ),
            args![key],
        )
        .await?;
    row.map(|r| {
        Ok(TaskSummary {
            id: TaskId(r.int("id")?),
            state: parse_state(&r.text("state")?)?,
            created: false,
        })
    })
    .transpose()
}

async fn heartbeat<C: Conn>(c: &mut C, ctx: &Ctx, beat: &Heartbeat) -> Result<HeartbeatAnswer> {
    let expires = ctx.now + beat.lease_ms;
    let (percent, message) = match &beat.progress {
        Some(p) => (Some(p.percent), Some(p.message.clone())),
        None => (None, None),
    };
    let row = c
        .fetch_optional(
            fixed(
                "UPDATE tasks SET lease_expires_at = $1, updated_at = $2, \
             progress_percent = COALESCE($3, progress_percent), \
             progress_message = COALESCE($4, progress_message) \
             WHERE id = $5 AND fence = $6 AND state = 'running' \
             AND lease_holder = COALESCE($7, lease_holder) RETURNING cancel_requested",
            ),
            args![
                expires,
                ctx.now,
                percent,
                message,
                beat.task_id.0,
                beat.fence,
                beat.holder.clone()
            ],
        )
        .await?;
    match row {
        Some(r) => Ok(HeartbeatAnswer {
            cancel_requested: r.int("cancel_requested")? != 0,
            lease_expires_at_ms: expires,
        }),
        None => Err(missing_or_stale(c, beat.task_id).await),
    }
}

pub(crate) async fn missing_or_stale<C: Conn>(c: &mut C, id: TaskId) -> StoreError {
    match state_of(c, id.0).await {
        Ok(Some(_)) => StoreError::StaleLease { id },
        Ok(None) => StoreError::NotFound(id),
        Err(e) => e,
    }
}

/// The columns of a running attempt, read (and on PostgreSQL locked) before it is ended.
pub(crate) struct Attempt {
    pub(crate) id: i64,
    pub(crate) state: TaskState,
    pub(crate) fence: i64,
    pub(crate) attempts: i64,
    pub(crate) retry: RetryPolicy,
    pub(crate) priority: Priority,
    pub(crate) cancel_requested: bool,
    pub(crate) holder: Option<String>,
}

/// Remote agents (`agent:ID`) may report only on attempts they hold.
pub(crate) fn foreign(actor: &str, attempt: &Attempt) -> bool {
    actor.starts_with("agent:") && attempt.holder.as_deref() != Some(actor)
}

pub(crate) fn attempt_from_row<R: RowLike>(r: &R) -> Result<Attempt> {
    Ok(Attempt {
        id: r.int("id")?,
        state: parse_state(&r.text("state")?)?,
        fence: r.int("fence")?,
        attempts: r.int("attempts")?,
        retry: RetryPolicy {
            max_attempts: r.int("max_attempts")?.clamp(0, u32::MAX as i64) as u32,
            base_delay_ms: r.int("backoff_base_ms")?,
            max_delay_ms: r.int("backoff_max_ms")?,
        },
        priority: Priority::from_rank(r.int("priority")?)
            .ok_or_else(|| StoreError::Corrupt("priority out of range".into()))?,
        cancel_requested: r.int("cancel_requested")? != 0,
        holder: r.opt_text("lease_holder")?,
    })
}

pub(crate) async fn complete<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    actor: &str,
    report: &Completion,
) -> Result<TaskState> {
    let attempt = running_attempt(c, report.task_id, report.fence).await?;
    if foreign(actor, &attempt) {
        return Err(StoreError::NotHolder { id: report.task_id });
    }
    end_attempt(c, ctx, &attempt, &report.outcome, actor).await
}

/// The running attempt of task `id` with this fence, read (and on PostgreSQL locked) before
/// it is changed; `stale_lease` if the task is not running under that fence.
pub(crate) async fn running_attempt<C: Conn>(c: &mut C, id: TaskId, fence: i64) -> Result<Attempt> {
    let row = c
        .fetch_optional(
            dynamic(format!(
                "SELECT {ATTEMPT_COLS} FROM tasks WHERE id = $1{}",
                C::DIALECT.for_update()
            )),
            args![id.0],
        )
        .await?;
    let Some(row) = row else {
        return Err(missing_or_stale(c, id).await);
    };
    let attempt = attempt_from_row(&row)?;
    if attempt.state != TaskState::Running || attempt.fence != fence {
        return Err(StoreError::StaleLease { id });
    }
    Ok(attempt)
}

/// Ends a running attempt with `outcome`, through the retry policy, and settles dependents.
pub(crate) async fn end_attempt<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    attempt: &Attempt,
    outcome: &Outcome,
    actor: &str,
) -> Result<TaskState> {
    let id = attempt.id;
    const CLEAR_LEASE: &str = "lease_holder = NULL, lease_expires_at = NULL";
    match outcome {
        Outcome::Succeeded { result } => {
            c.execute(
                dynamic(format!(
                    "UPDATE tasks SET state = 'succeeded', result = $1, finished_at = $2, \
                     updated_at = $2, error_class = NULL, error_message = NULL, {CLEAR_LEASE} \
                     WHERE id = $3"
                )),
                args![to_json(result), ctx.now, id],
            )
            .await?;
            event(c, ctx, id, EventKind::Succeeded, attempt.attempts, actor, None).await?;
            release_dependents(c, ctx, id).await?;
            Ok(TaskState::Succeeded)
        }
        Outcome::Failed { .. } | Outcome::Cancelled if attempt.cancel_requested => {
            finish_cancelled(c, ctx, id, attempt.attempts, actor, "cancelled while running").await
        }
        Outcome::Cancelled => {
            finish_cancelled(c, ctx, id, attempt.attempts, actor, "stopped by its holder").await
        }
        Outcome::Failed { error, retryable } => {
            let detail = format!("{}: {}", error.class, error.message);
            if *retryable && attempt.retry.may_retry(attempt.attempts as u32) {
                let delay = attempt.retry.jittered_delay_ms(attempt.attempts as u32);
                let available_at = ctx.now + delay;
                c.execute(
                    dynamic(format!(
                        "UPDATE tasks SET state = 'queued', available_at = $1, sort_key = $2, \
                         error_class = $3, error_message = $4, updated_at = $5, {CLEAR_LEASE} \
                         WHERE id = $6"
                    )),
                    args![
                        available_at,
                        ctx.sort_key(available_at, attempt.priority),
                        error.class.clone(),
                        error.message.clone(),
                        ctx.now,
                        id
                    ],
                )
                .await?;
                let detail = format!("{detail} (next attempt in {delay} ms)");
                event(c, ctx, id, EventKind::RetryScheduled, attempt.attempts, actor, Some(detail))
                    .await?;
                Ok(TaskState::Queued)
            } else {
                finish_failed(c, ctx, id, attempt.attempts, actor, error).await?;
                Ok(TaskState::Failed)
            }
        }
        Outcome::Released => {
            // The attempt does not count, and the task keeps its place in the queue.
            c.execute(
                dynamic(format!(
                    "UPDATE tasks SET state = 'queued', attempts = attempts - 1, \
                     available_at = $1, updated_at = $1, {CLEAR_LEASE} WHERE id = $2"
                )),
                args![ctx.now, id],
            )
            .await?;
            event(c, ctx, id, EventKind::Released, attempt.attempts, actor, None).await?;
            Ok(TaskState::Queued)
        }
    }
}

async fn finish_failed<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    id: i64,
    attempts: i64,
    actor: &str,
    error: &TaskError,
) -> Result<()> {
    c.execute(
        fixed("UPDATE tasks SET state = 'failed', error_class = $1, error_message = $2, finished_at = $3, \
         updated_at = $3, lease_holder = NULL, lease_expires_at = NULL WHERE id = $4"),
        args![error.class.clone(), error.message.clone(), ctx.now, id],
    )
    .await?;
    let detail = format!("{}: {}", error.class, error.message);
    event(c, ctx, id, EventKind::Failed, attempts, actor, Some(detail)).await?;
    fail_dependents(c, ctx, id).await
}

async fn finish_cancelled<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    id: i64,
    attempts: i64,
    actor: &str,
    why: &str,
) -> Result<TaskState> {
    c.execute(
        fixed(
            "UPDATE tasks SET state = 'cancelled', error_class = $1, error_message = $2, \
         finished_at = $3, updated_at = $3, lease_holder = NULL, lease_expires_at = NULL \
         WHERE id = $4",
        ),
        args![error_class::CANCELLED, why, ctx.now, id],
    )
    .await?;
    event(c, ctx, id, EventKind::Cancelled, attempts, actor, Some(why.to_string())).await?;
    fail_dependents(c, ctx, id).await?;
    Ok(TaskState::Cancelled)
}

/// Cancels a task; answers its state, and whether this request was the first to ask a running
/// task to stop.
async fn cancel<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    id: TaskId,
    actor: &str,
) -> Result<(TaskState, bool)> {
    let row = c
        .fetch_optional(
            dynamic(format!(
                "SELECT {ATTEMPT_COLS} FROM tasks WHERE id = $1{}",
                C::DIALECT.for_update()
            )),
            args![id.0],
        )
        .await?;
    let Some(row) = row else {
        return Err(match state_of(c, id.0).await? {
            Some(state) => StoreError::InvalidTransition { id, state, action: "cancel" },
            None => StoreError::NotFound(id),
        });
    };
    let attempt = attempt_from_row(&row)?;
    match attempt.state {
        TaskState::Pending | TaskState::Queued => {
            let why = format!("cancelled by {actor}");
            Ok((finish_cancelled(c, ctx, id.0, attempt.attempts, actor, &why).await?, false))
        }
        TaskState::Running => {
            let first = !attempt.cancel_requested;
            if first {
                c.execute(
                    fixed("UPDATE tasks SET cancel_requested = 1, updated_at = $1 WHERE id = $2"),
                    args![ctx.now, id.0],
                )
                .await?;
                let detail =
                    attempt.holder.map(|h| format!("the holder {h} is told at its next heartbeat"));
                event(c, ctx, id.0, EventKind::CancelRequested, attempt.attempts, actor, detail)
                    .await?;
            }
            Ok((TaskState::Running, first))
        }
        state => Err(StoreError::InvalidTransition { id, state, action: "cancel" }),
    }
}

async fn retry<C: Conn>(c: &mut C, ctx: &Ctx, id: TaskId, actor: &str) -> Result<TaskState> {
    let row = c
        .fetch_optional(
            dynamic(format!(
                "SELECT state, priority, depends_on FROM tasks WHERE id = $1{}",
                C::DIALECT.for_update()
            )),
            args![id.0],
        )
        .await?;
    let Some(row) = row else {
        return Err(match state_of(c, id.0).await? {
            Some(state) => {
                StoreError::InvalidTransition { id, state, action: "retry (it is archived)" }
            }
            None => StoreError::NotFound(id),
        });
    };
    let state = parse_state(&row.text("state")?)?;
    if !matches!(state, TaskState::Failed | TaskState::Cancelled) {
        return Err(StoreError::InvalidTransition { id, state, action: "retry" });
    }
    let priority = Priority::from_rank(row.int("priority")?)
        .ok_or_else(|| StoreError::Corrupt("priority out of range".into()))?;
    // Dependencies that have not succeeded (yet again) make the retried task wait for them.
    let deps: Vec<TaskId> = decode(&row.text("depends_on")?)?;
    let mut pending = 0_i64;
    for dep in deps {
        if state_of(c, dep.0).await? != Some(TaskState::Succeeded) {
            pending += 1;
        }
    }
    let new_state = if pending > 0 { TaskState::Pending } else { TaskState::Queued };
    c.execute(
        fixed(
            "UPDATE tasks SET state = $1, attempts = 0, available_at = $2, sort_key = $3, \
         pending_deps = $4, error_class = NULL, error_message = NULL, result = NULL, \
         finished_at = NULL, cancel_requested = 0, lease_holder = NULL, lease_expires_at = NULL, \
         progress_percent = NULL, progress_message = NULL, updated_at = $2 WHERE id = $5",
        ),
        args![new_state.as_str(), ctx.now, ctx.sort_key(ctx.now, priority), pending, id.0],
    )
    .await?;
    event(c, ctx, id.0, EventKind::Retried, 0, actor, None).await?;
    Ok(new_state)
}
