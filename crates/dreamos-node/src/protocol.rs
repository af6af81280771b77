//! The remote agent protocol (version 1, `/agent/v1/...`, documented in docs/protocol.md); the
//! operators' agent routes (`/api/v1/agents/...`) are in `agent_routes.rs`.
//!
//! Every agent message is checked against its JSON Schema (docs/protocol/*.schema.json, built
//! into the binary) before anything else; a message that does not follow it is answered
//! `protocol_violation` with the failing path. An agent acts only as itself: its identity is
//! the agent its credential was issued for, never a field of a message, and the store refuses
//! reports on leases another agent holds.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dreamos_core::{Completion, ErrorCode, Outcome, Progress, Task, TaskError, TaskId};
use dreamos_store::{
    AgentAnswer, AgentOp, AgentRecord, AgentState, Capability, ClaimRequest, Heartbeat, Waiter,
    claim_capabilities,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agent_routes::agent_view;
use crate::api::{AppState, Caller};
use crate::auth::Role;
use crate::error::ApiError;
use crate::orchestrator::holder_of;

/// The protocol version this node speaks.
pub const PROTOCOL_VERSION: i64 = 1;
/// Largest message body, serialized.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages live this long unless the sender says otherwise.
pub(crate) const DEFAULT_TTL_MS: i64 = 24 * 3600 * 1000;
/// A delivered message not acknowledged within this time is delivered again.
pub(crate) const REDELIVER_MS: i64 = 30_000;
/// Longest long-poll.
pub(crate) const MAX_CLAIM_WAIT_MS: u64 = 60_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(me))
        .routes(routes!(heartbeat))
        .routes(routes!(claim))
        .routes(routes!(progress))
        .routes(routes!(complete))
        .routes(routes!(fail))
        .routes(routes!(reports))
        .routes(routes!(children))
        .routes(routes!(crate::messages::agent_send, crate::messages::agent_inbox))
        .routes(routes!(crate::messages::agent_ack))
        .routes(routes!(deregister))
        .merge(crate::agent_routes::routes())
}

// ---------------------------------------------------------------------------------------------
// Schemas

pub(crate) struct Schemas {
    register: jsonschema::Validator,
    heartbeat: jsonschema::Validator,
    claim: jsonschema::Validator,
    progress: jsonschema::Validator,
    complete: jsonschema::Validator,
    fail: jsonschema::Validator,
    pub(crate) message: jsonschema::Validator,
    pub(crate) ack: jsonschema::Validator,
    reports: jsonschema::Validator,
    children: jsonschema::Validator,
    deregister: jsonschema::Validator,
}

/// The protocol's messages and their JSON Schemas (docs/protocol/<name>.schema.json); the
/// OpenAPI document carries them too.
pub(crate) const MESSAGE_SCHEMAS: [(&str, &str); 11] = [
    ("register", include_str!("../../../docs/protocol/register.schema.json")),
    ("heartbeat", include_str!("../../../docs/protocol/heartbeat.schema.json")),
    ("claim", include_str!("../../../docs/protocol/claim.schema.json")),
    ("progress", include_str!("../../../docs/protocol/progress.schema.json")),
    ("complete", include_str!("../../../docs/protocol/complete.schema.json")),
    ("fail", include_str!("../../../docs/protocol/fail.schema.json")),
    ("message", include_str!("../../../docs/protocol/message.schema.json")),
    ("ack", include_str!("../../../docs/protocol/ack.schema.json")),
    ("reports", include_str!("../../../docs/protocol/reports.schema.json")),
    ("children", include_str!("../../../docs/protocol/children.schema.json")),
    ("deregister", include_str!("../../../docs/protocol/deregister.schema.json")),
];

fn compile(name: &str) -> jsonschema::Validator {
    let (_, text) = MESSAGE_SCHEMAS.iter().find(|(n, _)| *n == name).expect("a known message");
    let schema: Value = serde_json::from_str(text).expect("protocol schemas are valid JSON");
    jsonschema::validator_for(&schema).expect("protocol schemas compile")
}

pub(crate) static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| Schemas {
    register: compile("register"),
    heartbeat: compile("heartbeat"),
    claim: compile("claim"),
    progress: compile("progress"),
    complete: compile("complete"),
    fail: compile("fail"),
    message: compile("message"),
    ack: compile("ack"),
    reports: compile("reports"),
    children: compile("children"),
    deregister: compile("deregister"),
});

/// Parses a body that must follow `schema`.
pub(crate) fn checked<T: DeserializeOwned>(
    schema: &jsonschema::Validator,
    what: &str,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<T, ApiError> {
    let Json(value) = body?;
    let errors: Vec<Value> = schema
        .iter_errors(&value)
        .take(10)
        .map(|e| json!({ "path": e.instance_path().to_string(), "error": e.to_string() }))
        .collect();
    if !errors.is_empty() {
        let first = errors[0]["error"].as_str().unwrap_or_default().to_string();
        let mut e = ApiError::new(
            ErrorCode::ProtocolViolation,
            format!("`{what}` message does not follow the protocol: {first}"),
        );
        e.details = json!({ "message": what, "errors": errors });
        return Err(e);
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::new(ErrorCode::ProtocolViolation, format!("`{what}` message: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Agent identity

/// The agent behind an agent credential.
pub(crate) fn agent_id(caller: &Caller) -> Result<String, ApiError> {
    if caller.0.role != Role::Agent {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this route is for agents: use an agent credential (`dreamos agent create`)",
        ));
    }
    Ok(caller.0.label.clone())
}

pub(crate) async fn agent_op(state: &AppState, op: AgentOp) -> Result<AgentAnswer, ApiError> {
    Ok(state.queue.store().agent(op).await?)
}

/// Applies an operation whose answer is one agent (heartbeats included).
pub(crate) async fn agent_record(state: &AppState, op: AgentOp) -> Result<AgentRecord, ApiError> {
    match agent_op(state, op).await? {
        AgentAnswer::Agent(a) | AgentAnswer::Beat(a) => Ok(a),
        other => Err(unexpected(other)),
    }
}

pub(crate) async fn record(state: &AppState, id: &str) -> Result<AgentRecord, ApiError> {
    agent_record(state, AgentOp::Get { id: id.into() }).await
}

pub(crate) async fn all_agents(state: &AppState) -> Result<Vec<AgentRecord>, ApiError> {
    match agent_op(state, AgentOp::List).await? {
        AgentAnswer::Agents(a) => Ok(a),
        other => Err(unexpected(other)),
    }
}

/// Every running task (at most 10,000), for agents' loads.
pub(crate) async fn running_tasks(state: &AppState) -> Result<Vec<Task>, ApiError> {
    let filter = dreamos_store::TaskFilter {
        state: Some(dreamos_core::TaskState::Running),
        limit: 10_000,
        ..Default::default()
    };
    Ok(state.queue.store().list(&filter).await?)
}

pub(crate) fn unexpected(answer: AgentAnswer) -> ApiError {
    ApiError::new(ErrorCode::Internal, format!("unexpected store answer {answer:?}"))
}

// ---------------------------------------------------------------------------------------------
// Agent routes

#[derive(Deserialize)]
struct RegisterBody {
    protocol: i64,
    capabilities: Vec<Capability>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    slots: Option<u32>,
}

#[utoipa::path(
    post,
    path = "/agent/v1/register",
    tag = "agent protocol",
    summary = "An agent announces its protocol version, capabilities, labels and slots.",
    request_body = ref("#/components/schemas/protocol.register"),
    responses(
        (status = 200, description = "registered", body = Object),
    ),
)]
async fn register(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: RegisterBody = checked(&SCHEMAS.register, "register", body)?;
    if body.protocol != PROTOCOL_VERSION {
        let mut e = ApiError::new(
            ErrorCode::UnsupportedProtocol,
            format!(
                "protocol version {} is not supported; this node speaks {PROTOCOL_VERSION}",
                body.protocol
            ),
        );
        e.details = json!({ "supported": [PROTOCOL_VERSION] });
        return Err(e);
    }
    let granted = record(&state, &id).await?;
    // The credential's capabilities bound what the agent may declare.
    if !granted.capabilities.is_empty()
        && let Some(extra) = body
            .capabilities
            .iter()
            .find(|c| !granted.capabilities.iter().any(|g| g.name == c.name))
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "capability `{}` was not granted to agent `{}` (granted: {})",
                extra.name,
                granted.name,
                granted.capabilities.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let op = AgentOp::Register {
        id: id.clone(),
        capabilities: body.capabilities,
        labels: body.labels,
        slots: body.slots.unwrap_or(granted.slots.max(1)),
        heartbeat_ms: state.config.agent_heartbeat_ms,
        protocol: body.protocol,
    };
    let agent = agent_record(&state, op).await?;
    Ok(Json(json!({
        "agent": agent_view(&agent),
        "protocol": PROTOCOL_VERSION,
        "heartbeat_ms": state.config.agent_heartbeat_ms,
        "lease_ms": state.config.lease_ms,
    }))
    .into_response())
}

#[utoipa::path(
    get,
    path = "/agent/v1/me",
    tag = "agent protocol",
    summary = "The calling agent's record.",
    responses(
        (status = 200, description = "the agent", body = Object),
    ),
)]
/// The agent's own record: what it was granted (capabilities, labels, slots) and its state.
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let agent = record(&state, &id).await?;
    Ok(Json(agent_view(&agent)).into_response())
}

#[derive(Deserialize)]
struct RunningTask {
    task_id: i64,
    fence: i64,
    progress: Option<Progress>,
}

#[derive(Deserialize)]
struct HeartbeatBody {
    running: Vec<RunningTask>,
}

#[utoipa::path(
    post,
    path = "/agent/v1/heartbeat",
    tag = "agent protocol",
    summary = "Keeps the agent alive and its leases extended; the answer carries cancellations and controls.",
    request_body = ref("#/components/schemas/protocol.heartbeat"),
    responses(
        (status = 200, description = "instructions for the agent", body = Object),
    ),
)]
async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: HeartbeatBody = checked(&SCHEMAS.heartbeat, "heartbeat", body)?;
    let running = body.running.len() as u32;
    let agent = agent_record(&state, AgentOp::Beat { id: id.clone(), running }).await?;
    let holder = holder_of(&id);
    let beats: Vec<Heartbeat> = body
        .running
        .iter()
        .map(|r| Heartbeat {
            task_id: TaskId(r.task_id),
            fence: r.fence,
            lease_ms: state.config.lease_ms,
            progress: r.progress.clone(),
            holder: Some(holder.clone()),
        })
        .collect();
    let (mut cancel, mut lost) = (Vec::new(), Vec::new());
    if !beats.is_empty() {
        let answers = state.queue.store().heartbeat(beats).await?;
        for (r, a) in body.running.iter().zip(answers) {
            match a {
                Ok(a) if a.cancel_requested => cancel.push(r.task_id),
                Ok(_) => {}
                Err(_) => lost.push(r.task_id),
            }
        }
    }
    Ok(Json(json!({
        "state": agent.state,
        "control": agent.control,
        "heartbeat_ms": agent.heartbeat_ms,
        "cancel": cancel,
        "lost": lost,
        "node": node_state(&state),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct ClaimBody {
    max: usize,
    wait_ms: Option<u64>,
    lease_ms: Option<i64>,
}

/// `stopping` once the node has begun a graceful stop (it finishes what runs and takes no new
/// work), else `running`.
fn node_state(state: &AppState) -> &'static str {
    if *state.draining.borrow() { "stopping" } else { "running" }
}

pub fn task_for_agent(t: &Task) -> Value {
    let lease = t.lease.as_ref();
    json!({
        "id": t.id,
        "kind": t.kind,
        "payload": t.payload,
        "attempt": t.attempts,
        "fence": lease.map(|l| l.fence),
        "lease_expires_at_ms": lease.map(|l| l.expires_at_ms),
        "timeout_ms": t.timeout_ms,
    })
}

#[utoipa::path(
    post,
    path = "/agent/v1/claim",
    tag = "agent protocol",
    summary = "Long-polls for tasks matching the agent's capabilities.",
    request_body = ref("#/components/schemas/protocol.claim"),
    responses(
        (status = 200, description = "claimed tasks with their fences (possibly none)", body = Object),
        (status = 409, description = "the agent is draining or stopped", body = crate::error::ErrorBody),
    ),
)]
async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: ClaimBody = checked(&SCHEMAS.claim, "claim", body)?;
    let agent = record(&state, &id).await?;
    if agent.state == AgentState::Starting || agent.protocol.is_none() {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            "register before claiming work (POST /agent/v1/register)",
        ));
    }
    if *state.draining.borrow() {
        // A stopping node gives no new work: the agent hears so at once, and goes on with
        // another node or waits for this one to come back.
        return Ok(Json(json!({ "tasks": [], "node": "stopping" })).into_response());
    }
    let waiter = Waiter {
        agent_id: Some(id.clone()),
        claim: ClaimRequest {
            holder: holder_of(&id),
            capabilities: claim_capabilities(&agent.capabilities, &agent.labels),
            kinds: None,
            max: body.max,
            lease_ms: body.lease_ms.unwrap_or(state.config.lease_ms),
        },
        slots: agent.slots.max(1) as usize,
    };
    let wait = Duration::from_millis(body.wait_ms.unwrap_or(0).min(MAX_CLAIM_WAIT_MS));
    let tasks = state.orchestrator.claim(waiter, wait).await;
    let views: Vec<Value> = tasks.iter().map(task_for_agent).collect();
    Ok(Json(json!({ "tasks": views })).into_response())
}

#[derive(Deserialize)]
struct ProgressBody {
    fence: i64,
    percent: f64,
    message: Option<String>,
}

#[utoipa::path(
    post,
    path = "/agent/v1/tasks/{id}/progress",
    tag = "agent protocol",
    summary = "Reports progress on a held task.",
    request_body = ref("#/components/schemas/protocol.progress"),
    params(("id" = i64, Path, minimum = 1, description = "the held task's id")),
    responses(
        (status = 200, description = "recorded; says whether cancellation was requested", body = Object),
        (status = 404, description = "no such task", body = crate::error::ErrorBody),
        (status = 409, description = "stale fence: the agent no longer holds the task", body = crate::error::ErrorBody),
    ),
)]
async fn progress(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<i64>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: ProgressBody = checked(&SCHEMAS.progress, "progress", body)?;
    let beat = Heartbeat {
        task_id: TaskId(raw),
        fence: body.fence,
        lease_ms: state.config.lease_ms,
        progress: Some(Progress {
            percent: body.percent,
            message: body.message.unwrap_or_default(),
        }),
        holder: Some(holder_of(&id)),
    };
    let answer = state.queue.store().heartbeat(vec![beat]).await?.remove(0)?;
    Ok(Json(json!({ "cancel": answer.cancel_requested, "lease_expires_at_ms": answer.lease_expires_at_ms }))
        .into_response())
}

#[derive(Deserialize)]
struct CompleteBody {
    fence: i64,
    #[serde(default)]
    result: Value,
}

#[derive(Deserialize)]
struct FailBody {
    fence: i64,
    error: TaskError,
    #[serde(default = "yes")]
    retryable: bool,
}

fn yes() -> bool {
    true
}

async fn report(state: &AppState, agent: &str, report: Completion) -> Result<Response, ApiError> {
    let task_state =
        state.queue.store().complete(&holder_of(agent), vec![report]).await?.remove(0)?;
    Ok(Json(json!({ "state": task_state })).into_response())
}

#[utoipa::path(
    post,
    path = "/agent/v1/tasks/{id}/complete",
    tag = "agent protocol",
    summary = "Completes a held task with its result.",
    request_body = ref("#/components/schemas/protocol.complete"),
    params(("id" = i64, Path, minimum = 1, description = "the held task's id")),
    responses(
        (status = 200, description = "the task's new state", body = Object),
        (status = 404, description = "no such task", body = crate::error::ErrorBody),
        (status = 409, description = "stale fence: the agent no longer holds the task", body = crate::error::ErrorBody),
    ),
)]
async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<i64>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: CompleteBody = checked(&SCHEMAS.complete, "complete", body)?;
    let outcome = Outcome::Succeeded { result: body.result };
    report(&state, &id, Completion { task_id: TaskId(raw), fence: body.fence, outcome }).await
}

#[utoipa::path(
    post,
    path = "/agent/v1/tasks/{id}/fail",
    tag = "agent protocol",
    summary = "Fails an attempt of a held task (retried by the task's policy).",
    request_body = ref("#/components/schemas/protocol.fail"),
    params(("id" = i64, Path, minimum = 1, description = "the held task's id")),
    responses(
        (status = 200, description = "the task's new state", body = Object),
        (status = 404, description = "no such task", body = crate::error::ErrorBody),
        (status = 409, description = "stale fence: the agent no longer holds the task", body = crate::error::ErrorBody),
    ),
)]
async fn fail(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<i64>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: FailBody = checked(&SCHEMAS.fail, "fail", body)?;
    let outcome = Outcome::Failed { error: body.error, retryable: body.retryable };
    report(&state, &id, Completion { task_id: TaskId(raw), fence: body.fence, outcome }).await
}

#[derive(Deserialize)]
struct ReportItem {
    task_id: i64,
    fence: i64,
    result: Option<Value>,
    error: Option<TaskError>,
    #[serde(default = "yes")]
    retryable: bool,
}

#[derive(Deserialize)]
struct ReportsBody {
    reports: Vec<ReportItem>,
}

#[utoipa::path(
    post,
    path = "/agent/v1/reports",
    tag = "agent protocol",
    summary = "Many completions and failures in one request.",
    request_body = ref("#/components/schemas/protocol.reports"),
    responses(
        (status = 200, description = "one outcome per report", body = Object),
    ),
)]
/// Several reports at once (what a busy agent sends): one answer per report, in order.
async fn reports(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: ReportsBody = checked(&SCHEMAS.reports, "reports", body)?;
    let completions: Vec<Completion> = body
        .reports
        .into_iter()
        .map(|r| Completion {
            task_id: TaskId(r.task_id),
            fence: r.fence,
            outcome: match r.error {
                Some(error) => Outcome::Failed { error, retryable: r.retryable },
                None => Outcome::Succeeded { result: r.result.unwrap_or(Value::Null) },
            },
        })
        .collect();
    let ids: Vec<TaskId> = completions.iter().map(|c| c.task_id).collect();
    let answers = state.queue.store().complete(&holder_of(&id), completions).await?;
    let results: Vec<Value> = ids
        .iter()
        .zip(answers)
        .map(|(task, a)| match a {
            Ok(s) => json!({ "task_id": task, "state": s }),
            Err(e) => {
                let e = ApiError::from(e);
                json!({ "task_id": task, "code": e.code.as_str(), "message": e.message })
            }
        })
        .collect();
    Ok(Json(json!({ "results": results })).into_response())
}

#[derive(Deserialize)]
struct ChildrenBody {
    fence: i64,
    tasks: Vec<dreamos_queue::SubmitRequest>,
}

#[utoipa::path(
    post,
    path = "/agent/v1/tasks/{id}/children",
    tag = "agent protocol",
    summary = "Fans a held task out into child tasks; the parent waits for them.",
    request_body = ref("#/components/schemas/protocol.children"),
    params(("id" = i64, Path, minimum = 1, description = "the held task's id")),
    responses(
        (status = 201, description = "the children's ids", body = Object),
        (status = 404, description = "no such task", body = crate::error::ErrorBody),
        (status = 409, description = "stale fence: the agent no longer holds the task", body = crate::error::ErrorBody),
        (status = 422, description = "a child's payload does not follow its kind's schema", body = crate::error::ErrorBody),
    ),
)]
/// Fan-out: the running task spawns child tasks and stops running; the node completes it with
/// the children's results when they have all succeeded (fan-in), or fails it if one fails.
async fn children(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<i64>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: ChildrenBody = checked(&SCHEMAS.children, "children", body)?;
    let parent = TaskId(raw);
    // The children run with the agent's own rights: the kinds its credential was granted.
    let granted: Vec<String> =
        record(&state, &id).await?.capabilities.into_iter().map(|c| c.name).collect();
    let ids = state
        .tasks()
        .agent_children(&caller.0, &granted, parent, body.fence, &holder_of(&id), body.tasks)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "children": ids }))).into_response())
}

#[derive(Deserialize)]
struct DeregisterBody {
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/agent/v1/deregister",
    tag = "agent protocol",
    summary = "The agent stops cleanly: it becomes `stopped`, not `lost`.",
    request_body = ref("#/components/schemas/protocol.deregister"),
    responses(
        (status = 200, description = "the agent, stopped", body = Object),
    ),
)]
/// A clean exit: the agent is `stopped` (its history says why), so no lost-agent alert is
/// raised and nothing of it is retried (its tasks were reported before it left).
async fn deregister(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: DeregisterBody = checked(&SCHEMAS.deregister, "deregister", body)?;
    let actor = match body.reason {
        Some(r) if !r.is_empty() => format!("agent:{id} ({r})"),
        _ => format!("agent:{id}"),
    };
    let op = AgentOp::Control { id, control: dreamos_store::Control::Stop, actor };
    let agent = agent_record(&state, op).await?;
    Ok(Json(agent_view(&agent)).into_response())
}
