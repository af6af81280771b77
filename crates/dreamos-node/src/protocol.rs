//! The remote agent protocol (version 1, `/agent/v1/...`, documented in docs/protocol.md) and
//! the operators' agent routes (`/api/v1/agents/...`).
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
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dreamos_core::{Completion, ErrorCode, Outcome, Progress, Task, TaskError, TaskId};
use dreamos_store::{
    AgentAnswer, AgentOp, AgentRecord, AgentState, Audience, Capability, ClaimRequest, Control,
    Heartbeat, Message, NewMessage, StoreError, Waiter, claim_capabilities,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{AppState, Caller};
use crate::auth::{self, Role};
use crate::error::ApiError;
use crate::orchestrator::holder_of;

/// The protocol version this node speaks.
pub const PROTOCOL_VERSION: i64 = 1;
/// Largest message body, serialized.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages live this long unless the sender says otherwise.
const DEFAULT_TTL_MS: i64 = 24 * 3600 * 1000;
/// A delivered message not acknowledged within this time is delivered again.
const REDELIVER_MS: i64 = 30_000;
/// Longest long-poll.
const MAX_CLAIM_WAIT_MS: u64 = 60_000;

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
        .routes(routes!(agent_send, agent_inbox))
        .routes(routes!(agent_ack))
        .routes(routes!(create_agent, list_agents))
        .routes(routes!(operator_broadcast))
        .routes(routes!(show_agent))
        .routes(routes!(control_agent))
        .routes(routes!(operator_inbox))
}

// ---------------------------------------------------------------------------------------------
// Schemas

struct Schemas {
    register: jsonschema::Validator,
    heartbeat: jsonschema::Validator,
    claim: jsonschema::Validator,
    progress: jsonschema::Validator,
    complete: jsonschema::Validator,
    fail: jsonschema::Validator,
    message: jsonschema::Validator,
    ack: jsonschema::Validator,
    reports: jsonschema::Validator,
    children: jsonschema::Validator,
}

/// The protocol's messages and their JSON Schemas (docs/protocol/<name>.schema.json); the
/// OpenAPI document carries them too.
pub(crate) const MESSAGE_SCHEMAS: [(&str, &str); 10] = [
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
];

fn compile(name: &str) -> jsonschema::Validator {
    let (_, text) = MESSAGE_SCHEMAS.iter().find(|(n, _)| *n == name).expect("a known message");
    let schema: Value = serde_json::from_str(text).expect("protocol schemas are valid JSON");
    jsonschema::validator_for(&schema).expect("protocol schemas compile")
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| Schemas {
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
});

/// Parses a body that must follow `schema`.
fn checked<T: DeserializeOwned>(
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
fn agent_id(caller: &Caller) -> Result<String, ApiError> {
    if caller.0.role != Role::Agent {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this route is for agents: use an agent credential (`dreamos agent create`)",
        ));
    }
    Ok(caller.0.label.clone())
}

async fn agent_op(state: &AppState, op: AgentOp) -> Result<AgentAnswer, ApiError> {
    Ok(state.queue.store().agent(op).await?)
}

/// Applies an operation whose answer is one agent (heartbeats included).
async fn agent_record(state: &AppState, op: AgentOp) -> Result<AgentRecord, ApiError> {
    match agent_op(state, op).await? {
        AgentAnswer::Agent(a) | AgentAnswer::Beat(a) => Ok(a),
        other => Err(unexpected(other)),
    }
}

async fn record(state: &AppState, id: &str) -> Result<AgentRecord, ApiError> {
    agent_record(state, AgentOp::Get { id: id.into() }).await
}

async fn all_agents(state: &AppState) -> Result<Vec<AgentRecord>, ApiError> {
    match agent_op(state, AgentOp::List).await? {
        AgentAnswer::Agents(a) => Ok(a),
        other => Err(unexpected(other)),
    }
}

/// Every running task (at most 10,000), for agents' loads.
async fn running_tasks(state: &AppState) -> Result<Vec<Task>, ApiError> {
    let filter = dreamos_store::TaskFilter {
        state: Some(dreamos_core::TaskState::Running),
        limit: 10_000,
        ..Default::default()
    };
    Ok(state.queue.store().list(&filter).await?)
}

fn unexpected(answer: AgentAnswer) -> ApiError {
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
    }))
    .into_response())
}

#[derive(Deserialize)]
struct ClaimBody {
    max: usize,
    wait_ms: Option<u64>,
    lease_ms: Option<i64>,
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
struct BroadcastTo {
    capability: Option<String>,
}

#[derive(Deserialize)]
struct MessageBody {
    to: Option<String>,
    broadcast: Option<BroadcastTo>,
    body: Value,
    correlation_id: Option<String>,
    reply_to: Option<i64>,
    ttl_ms: Option<i64>,
}

async fn send(state: &AppState, sender: String, m: MessageBody) -> Result<Response, ApiError> {
    let size = serde_json::to_vec(&m.body).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > MAX_MESSAGE_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("message body is {size} bytes; the limit is {MAX_MESSAGE_BYTES}"),
        ));
    }
    let to = match (m.to, m.broadcast) {
        (Some(to), None) => Audience::Direct(to),
        (None, Some(b)) => Audience::Broadcast { capability: b.capability },
        _ => {
            return Err(ApiError::new(
                ErrorCode::ProtocolViolation,
                "a message has exactly one of `to` and `broadcast`",
            ));
        }
    };
    let new = NewMessage {
        sender,
        to,
        correlation_id: m.correlation_id,
        reply_to: m.reply_to,
        body: m.body,
        ttl_ms: m.ttl_ms.unwrap_or(DEFAULT_TTL_MS),
    };
    match agent_op(state, AgentOp::Send(new)).await? {
        AgentAnswer::Sent(ids) => {
            Ok((StatusCode::CREATED, Json(json!({ "ids": ids }))).into_response())
        }
        other => Err(unexpected(other)),
    }
}

#[utoipa::path(
    post,
    path = "/agent/v1/messages",
    tag = "agent protocol",
    summary = "Sends a message to an agent, or broadcasts it.",
    request_body = ref("#/components/schemas/protocol.message"),
    responses(
        (status = 201, description = "the message ids", body = Object),
        (status = 404, description = "no such recipient", body = crate::error::ErrorBody),
    ),
)]
async fn agent_send(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: MessageBody = checked(&SCHEMAS.message, "message", body)?;
    send(&state, id, body).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct InboxQuery {
    max: Option<usize>,
}

async fn inbox(state: &AppState, recipient: String, max: usize) -> Result<Vec<Message>, ApiError> {
    let op = AgentOp::Inbox { recipient, max: max.clamp(1, 1_000), redeliver_ms: REDELIVER_MS };
    match agent_op(state, op).await? {
        AgentAnswer::Messages(m) => Ok(m),
        other => Err(unexpected(other)),
    }
}

#[utoipa::path(
    get,
    path = "/agent/v1/messages",
    tag = "agent protocol",
    summary = "The calling agent's unacknowledged messages.",
    params(InboxQuery),
    responses(
        (status = 200, description = "messages", body = Object),
    ),
)]
async fn agent_inbox(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let Query(q) = query?;
    let messages = inbox(&state, id, q.max.unwrap_or(100)).await?;
    Ok(Json(json!({ "messages": messages })).into_response())
}

#[derive(Deserialize)]
struct AckBody {
    ids: Vec<i64>,
}

#[utoipa::path(
    post,
    path = "/agent/v1/messages/ack",
    tag = "agent protocol",
    summary = "Acknowledges messages so they are not delivered again.",
    request_body = ref("#/components/schemas/protocol.ack"),
    responses(
        (status = 200, description = "how many were acknowledged", body = Object),
    ),
)]
async fn agent_ack(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = agent_id(&caller)?;
    let body: AckBody = checked(&SCHEMAS.ack, "ack", body)?;
    match agent_op(&state, AgentOp::Ack { recipient: id, ids: body.ids }).await? {
        AgentAnswer::Count(n) => Ok(Json(json!({ "acknowledged": n })).into_response()),
        other => Err(unexpected(other)),
    }
}

// ---------------------------------------------------------------------------------------------
// Operator routes

pub fn agent_view(a: &AgentRecord) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "state": a.state,
        "capabilities": a.capabilities,
        "labels": a.labels,
        "slots": a.slots,
        "control": a.control,
        "protocol": a.protocol,
        "heartbeat_ms": a.heartbeat_ms,
        "last_seen_at_ms": a.last_seen_at_ms,
        "created_at_ms": a.created_at_ms,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateAgent {
    name: String,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    slots: Option<u32>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[utoipa::path(
    post,
    path = "/api/v1/agents",
    tag = "agents",
    summary = "Creates an agent identity and its credential (shown once).",
    request_body = CreateAgent,
    responses(
        (status = 201, description = "the agent and its token", body = Object),
        (status = 409, description = "the name is taken", body = crate::error::ErrorBody),
    ),
)]
async fn create_agent(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateAgent>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin, "create agents")?;
    let Json(body) = body?;
    if !valid_name(&body.name) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("agent name `{}`: use 1-64 letters, digits, `-`, `_` or `.`", body.name),
        ));
    }
    let capabilities: Vec<Capability> =
        body.capabilities.iter().map(|c| Capability::parse(c)).collect();
    if let Some(bad) = capabilities.iter().find(|c| !valid_capability(&c.name)) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("capability `{}`: use lowercase letters, digits, `_`, `.` or `-`", bad.name),
        ));
    }
    let slots = body.slots.unwrap_or(1);
    if !(1..=256).contains(&slots) {
        return Err(ApiError::new(ErrorCode::BadRequest, "slots must be between 1 and 256"));
    }
    let store = state.queue.store();
    let now = store.clock().now_ms();
    let id = format!("ag_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let issued = auth::issue(Role::Agent, &id, now, None);
    let token_id = issued.record.id.clone();
    let agent = AgentRecord {
        id: id.clone(),
        name: body.name,
        token_id: Some(token_id.clone()),
        capabilities,
        labels: body.labels,
        slots,
        state: AgentState::Starting,
        control: None,
        protocol: None,
        heartbeat_ms: state.config.agent_heartbeat_ms,
        last_seen_at_ms: None,
        created_at_ms: now,
        updated_at_ms: now,
    };
    let agent = agent_record(&state, AgentOp::Create(agent)).await?;
    store.create_token(issued.record).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "token": issued.token, "agent": agent_view(&agent) })),
    )
        .into_response())
}

fn valid_capability(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "agents",
    summary = "Every agent with its state and running tasks.",
    responses(
        (status = 200, description = "the agents", body = Object),
    ),
)]
async fn list_agents(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "list agents")?;
    let agents = all_agents(&state).await?;
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    for lease in running_tasks(&state).await?.into_iter().filter_map(|t| t.lease) {
        *running.entry(lease.holder).or_default() += 1;
    }
    let views: Vec<Value> = agents
        .iter()
        .map(|a| {
            let mut v = agent_view(a);
            v["running"] = json!(running.get(&holder_of(&a.id)).copied().unwrap_or(0));
            v
        })
        .collect();
    Ok(Json(json!({ "agents": views, "leader": state.orchestrator.is_leader() })).into_response())
}

/// Finds an agent by id or by name.
async fn resolve(state: &AppState, key: &str) -> Result<AgentRecord, ApiError> {
    match record(state, key).await {
        Ok(a) => return Ok(a),
        Err(e) if e.code != ErrorCode::NotFound => return Err(e),
        Err(_) => {}
    }
    all_agents(state)
        .await?
        .into_iter()
        .find(|a| a.name == key)
        .ok_or_else(|| StoreError::AgentNotFound(key.to_string()).into())
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    summary = "One agent (by id or name) with its history.",
    params(("id" = String, Path, description = "the agent's id or name")),
    responses(
        (status = 200, description = "the agent", body = Object),
        (status = 404, description = "no such agent", body = crate::error::ErrorBody),
    ),
)]
async fn show_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "read agents")?;
    let agent = resolve(&state, &key).await?;
    let history = match agent_op(&state, AgentOp::Events { id: agent.id.clone() }).await? {
        AgentAnswer::Events(e) => e,
        other => return Err(unexpected(other)),
    };
    let holder = holder_of(&agent.id);
    let running: Vec<Value> = running_tasks(&state)
        .await?
        .into_iter()
        .filter(|t| t.lease.as_ref().is_some_and(|l| l.holder == holder))
        .map(|t| json!({ "id": t.id, "kind": t.kind, "progress": t.progress }))
        .collect();
    let mut view = agent_view(&agent);
    view["running"] = json!(running);
    view["history"] = json!(history);
    Ok(Json(view).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OperatorMessage {
    text: Option<String>,
    body: Option<Value>,
    capability: Option<String>,
    ttl_ms: Option<i64>,
    /// Wait up to this long for a reply (a message back with the same correlation id).
    wait_ms: Option<u64>,
}

impl OperatorMessage {
    fn body(&self) -> Result<Value, ApiError> {
        match (&self.text, &self.body) {
            (Some(t), None) => Ok(json!({ "text": t })),
            (None, Some(b)) => Ok(b.clone()),
            _ => Err(ApiError::new(ErrorCode::BadRequest, "give exactly one of `text` and `body`")),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/{action}",
    tag = "agents",
    summary = "Drains, resumes, stops or restarts an agent, or sends it a message (`messages`, optionally waiting for the reply).",
    request_body(content = Option<OperatorMessage>, description = "for `messages` only"),
    params(
        ("id" = String, Path, description = "the agent's id or name"),
        ("action" = String, Path, description = "drain, resume, stop, restart or messages"),
    ),
    responses(
        (status = 200, description = "the agent after the request, or the message's reply", body = Object),
        (status = 201, description = "the message ids (`messages` without waiting)", body = Object),
        (status = 404, description = "no such agent or action", body = crate::error::ErrorBody),
        (status = 409, description = "the agent cannot take that control in its state", body = crate::error::ErrorBody),
    ),
)]
async fn control_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path((key, action)): Path<(String, String)>,
    body: Result<Option<Json<OperatorMessage>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let principal = caller.require(Role::Operator, "control agents")?.clone();
    let who = principal.name();
    let body = body?;
    let agent = resolve(&state, &key).await?;
    let control = match action.as_str() {
        "drain" => Control::Drain,
        "resume" => Control::Resume,
        "stop" => Control::Stop,
        "restart" => Control::Restart,
        "messages" => {
            let m = body.map(|Json(m)| m).unwrap_or_default();
            return message_agent(&state, principal.inbox(), &agent, m).await;
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no agent action `{other}`: drain, resume, stop, restart or messages"),
            ));
        }
    };
    let op = AgentOp::Control { id: agent.id.clone(), control, actor: who };
    let agent = agent_record(&state, op).await?;
    Ok(Json(agent_view(&agent)).into_response())
}

/// Sends an operator's message to an agent; replies come to `me`, the operator's own inbox
/// (one per credential, so two operators never read each other's replies).
async fn message_agent(
    state: &AppState,
    me: String,
    agent: &AgentRecord,
    m: OperatorMessage,
) -> Result<Response, ApiError> {
    let correlation = format!("c{:016x}", rand::random::<u64>());
    let body = MessageBody {
        to: Some(agent.id.clone()),
        broadcast: None,
        body: m.body()?,
        correlation_id: Some(correlation.clone()),
        reply_to: None,
        ttl_ms: m.ttl_ms,
    };
    let sent = send(state, me.clone(), body).await?;
    let wait = Duration::from_millis(m.wait_ms.unwrap_or(0).min(MAX_CLAIM_WAIT_MS));
    if wait.is_zero() {
        return Ok(sent);
    }
    // Replies are messages to the operator's address carrying the same correlation id.
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let found = inbox(state, me.clone(), 1_000)
            .await?
            .into_iter()
            .find(|r| r.correlation_id.as_deref() == Some(&correlation));
        if let Some(reply) = found {
            let ack = AgentOp::Ack { recipient: me, ids: vec![reply.id] };
            agent_op(state, ack).await?;
            return Ok(
                Json(json!({ "correlation_id": correlation, "reply": reply })).into_response()
            );
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(
                Json(json!({ "correlation_id": correlation, "reply": null })).into_response()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/broadcast",
    tag = "agents",
    summary = "Sends a message to every agent, or to those with a capability.",
    request_body = OperatorMessage,
    responses(
        (status = 201, description = "the message ids", body = Object),
    ),
)]
async fn operator_broadcast(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<OperatorMessage>, JsonRejection>,
) -> Result<Response, ApiError> {
    let me = caller.require(Role::Operator, "broadcast to agents")?.inbox();
    let Json(m) = body?;
    let body = MessageBody {
        to: None,
        broadcast: Some(BroadcastTo { capability: m.capability.clone() }),
        body: m.body()?,
        correlation_id: None,
        reply_to: None,
        ttl_ms: m.ttl_ms,
    };
    send(&state, me, body).await
}

#[utoipa::path(
    get,
    path = "/api/v1/messages",
    tag = "agents",
    summary = "Replies sent to the caller by agents (acknowledged on reading).",
    params(InboxQuery),
    responses(
        (status = 200, description = "messages", body = Object),
    ),
)]
async fn operator_inbox(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let me = caller.require(Role::Operator, "read messages")?.inbox();
    let Query(q) = query?;
    let messages = inbox(&state, me.clone(), q.max.unwrap_or(100)).await?;
    if !messages.is_empty() {
        let ids = messages.iter().map(|m| m.id).collect();
        agent_op(&state, AgentOp::Ack { recipient: me, ids }).await?;
    }
    Ok(Json(json!({ "messages": messages })).into_response())
}
