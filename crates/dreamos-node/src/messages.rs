//! Messages between agents and operators: send (direct, broadcast to all or by capability,
//! request/reply by correlation id), the inbox, and acknowledgements. The operators' side is
//! in `agent_routes.rs`; both go through [`send`] and [`inbox`].

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dreamos_core::ErrorCode;
use dreamos_store::{AgentAnswer, AgentOp, Audience, Message, NewMessage};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{AppState, Caller};
use crate::error::ApiError;
use crate::protocol::{
    DEFAULT_TTL_MS, MAX_MESSAGE_BYTES, REDELIVER_MS, SCHEMAS, agent_id, agent_op, checked,
    unexpected,
};

#[derive(Deserialize)]
pub(crate) struct BroadcastTo {
    pub(crate) capability: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct MessageBody {
    pub(crate) to: Option<String>,
    pub(crate) broadcast: Option<BroadcastTo>,
    pub(crate) body: Value,
    pub(crate) correlation_id: Option<String>,
    pub(crate) reply_to: Option<i64>,
    pub(crate) ttl_ms: Option<i64>,
}

pub(crate) async fn send(
    state: &AppState,
    sender: String,
    m: MessageBody,
) -> Result<Response, ApiError> {
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
pub(crate) async fn agent_send(
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
pub(crate) struct InboxQuery {
    pub(crate) max: Option<usize>,
}

pub(crate) async fn inbox(
    state: &AppState,
    recipient: String,
    max: usize,
) -> Result<Vec<Message>, ApiError> {
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
pub(crate) async fn agent_inbox(
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
pub(crate) async fn agent_ack(
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
