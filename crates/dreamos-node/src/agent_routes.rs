//! The operators' agent routes (`/api/v1/agents/...`, `/api/v1/messages`): create, list and
//! show agents, control them (drain, resume, stop, restart), and message them.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dreamos_core::ErrorCode;
use dreamos_store::{
    AgentAnswer, AgentOp, AgentRecord, AgentState, Capability, Control, StoreError,
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{AppState, Caller};
use crate::auth::{self, Role};
use crate::error::ApiError;
use crate::messages::{BroadcastTo, InboxQuery, MessageBody, inbox, send};
use crate::orchestrator::holder_of;
use crate::protocol::{
    MAX_CLAIM_WAIT_MS, agent_op, agent_record, all_agents, record, running_tasks, unexpected,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_agent, list_agents))
        .routes(routes!(operator_broadcast))
        .routes(routes!(show_agent, delete_agent))
        .routes(routes!(control_agent))
        .routes(routes!(operator_inbox))
}

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

#[utoipa::path(
    delete,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    summary = "Deletes an agent with no session (starting, stopped or lost) and no running task, and revokes its credential.",
    params(("id" = String, Path, description = "the agent's id or name")),
    responses(
        (status = 200, description = "the agent as it was", body = Object),
        (status = 403, description = "not an unscoped admin", body = crate::error::ErrorBody),
        (status = 404, description = "no such agent", body = crate::error::ErrorBody),
        (status = 409, description = "the agent is connected or holds running tasks", body = crate::error::ErrorBody),
    ),
)]
async fn delete_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    dreamos_service::policy::may_delete_agent(&caller.0)?;
    let agent = resolve(&state, &key).await?;
    let gone = agent_record(&state, AgentOp::Delete { id: agent.id.clone() }).await?;
    // Its credential is revoked: no cached authentication of it may outlive that.
    if let Some(token) = &gone.token_id {
        state.tokens.forget(token);
    }
    Ok(Json(agent_view(&gone)).into_response())
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
