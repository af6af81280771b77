//! Administration routes: API tokens (`/api/v1/tokens`), the audit log (`/api/v1/audit`) and
//! the running node's configuration (`/api/v1/config`).

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dreamos_core::ErrorCode;
use dreamos_store::{ApiToken, AuditFilter};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{AppState, Caller};
use crate::auth::{self, Role};
use dreamos_service::policy;

/// The longest lifetime a token may be given: ten years.
const MAX_TOKEN_LIFETIME_MS: i64 = 10 * 365 * 24 * 3600 * 1000;
use crate::error::ApiError;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(read_audit))
        .routes(routes!(verify_audit))
        .routes(routes!(node_config))
}

#[utoipa::path(
    get,
    path = "/api/v1/config",
    tag = "admin",
    summary = "The running node's effective configuration, without secrets (unscoped admins).",
    responses(
        (status = 200, description = "the configuration; store URLs without passwords, secrets hidden", body = Object),
        (status = 403, description = "not an unscoped admin", body = crate::error::ErrorBody),
    ),
)]
async fn node_config(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    policy::may_read_config(&caller.0)?;
    Ok(Json(state.config.redacted()).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    role: String,
    #[serde(default)]
    label: Option<String>,
    /// Lifetime in ms from now.
    expires_in_ms: Option<i64>,
    /// Workspaces the token may see (absent: all).
    workspaces: Option<Vec<String>>,
}

fn token_view(t: &ApiToken) -> Value {
    json!({
        "id": t.id,
        "role": t.role,
        "label": t.label,
        "created_at_ms": t.created_at_ms,
        "expires_at_ms": t.expires_at_ms,
        "revoked_at_ms": t.revoked_at_ms,
        "workspaces": t.workspaces,
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "admin",
    summary = "Issues an API token; the secret is in this answer only.",
    request_body = CreateToken,
    responses(
        (status = 201, description = "the token, with its secret", body = Object),
    ),
)]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller.require(Role::Admin, "create tokens")?.clone();
    let Json(body) = body?;
    let role: Role =
        body.role.parse().map_err(|e: String| ApiError::new(ErrorCode::BadRequest, e))?;
    if body.expires_in_ms.is_some_and(|ms| !(1..=MAX_TOKEN_LIFETIME_MS).contains(&ms)) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("expires_in_ms must be between 1 and {MAX_TOKEN_LIFETIME_MS} (ten years)"),
        ));
    }
    if let Some(ws) = &body.workspaces
        && (ws.is_empty() || ws.iter().any(|w| w.is_empty() || w.len() > 128))
    {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "workspaces lists at least one workspace name (omit it for all workspaces)",
        ));
    }
    policy::may_mint(&who, role, body.workspaces.as_deref())?;
    let store = state.queue.store();
    let now = store.clock().now_ms();
    let label = body.label.unwrap_or_else(|| format!("{}-by-{}", role.as_str(), who.label));
    let mut issued = auth::issue(role, &label, now, body.expires_in_ms.map(|ms| now + ms));
    issued.record.workspaces = body.workspaces;
    let view = token_view(&issued.record);
    store.create_token(issued.record).await?;
    let mut answer = view;
    answer["token"] = json!(issued.token);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "admin",
    summary = "Every token (never the secrets).",
    responses(
        (status = 200, description = "the tokens", body = Object),
    ),
)]
async fn list_tokens(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let who = caller.require(Role::Admin, "list tokens")?;
    let tokens = state.queue.store().list_tokens().await?;
    let views: Vec<Value> = tokens
        .iter()
        .filter(|t| policy::sees_token(who, t.workspaces.as_deref()))
        .map(token_view)
        .collect();
    Ok(Json(json!({ "tokens": views })).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens/{id}/revoke",
    tag = "admin",
    summary = "Revokes a token.",
    params(("id" = String, Path, description = "the token's id")),
    responses(
        (status = 200, description = "the revoked token", body = Object),
        (status = 404, description = "no such token", body = crate::error::ErrorBody),
    ),
)]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = caller.require(Role::Admin, "revoke tokens")?;
    let store = state.queue.store();
    let found = store.find_token(&id).await?;
    if found.is_none_or(|t| !policy::sees_token(who, t.workspaces.as_deref())) {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no token with id `{id}`")));
    }
    store.revoke_token(&id).await?;
    state.tokens.forget(&id);
    let token = store.find_token(&id).await?.map(|t| token_view(&t));
    Ok(Json(json!({ "revoked": token })).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    after: Option<i64>,
    actor: Option<String>,
    action: Option<String>,
    since_ms: Option<i64>,
    limit: Option<usize>,
    #[serde(default)]
    newest: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "admin",
    summary = "Audit log entries, oldest first (or newest first with `newest`).",
    params(AuditQuery),
    responses(
        (status = 200, description = "entries", body = Object),
    ),
)]
async fn read_audit(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    policy::may_read_audit(&caller.0)?;
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::new(ErrorCode::BadRequest, "limit must be between 1 and 10000"));
    }
    let filter = AuditFilter {
        after: q.after,
        actor: q.actor,
        action: q.action,
        since_ms: q.since_ms,
        limit,
        newest: q.newest,
    };
    let entries = state.queue.store().read_audit(filter).await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "admin",
    summary = "Checks the audit log's hash chain.",
    responses(
        (status = 200, description = "the verdict and the head hash", body = Object),
    ),
)]
async fn verify_audit(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    policy::may_read_audit(&caller.0)?;
    let started = std::time::Instant::now();
    let answer = match state.queue.store().verify_audit().await? {
        Ok((entries, head)) => json!({ "ok": true, "entries": entries, "head": head }),
        Err(b) => json!({ "ok": false, "broken_at": b.id, "reason": b.reason }),
    };
    let took: Duration = started.elapsed();
    tracing::info!(?took, "audit chain verified");
    Ok(Json(answer).into_response())
}
