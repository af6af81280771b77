//! The HTTP API: `/healthz`, `/metrics` and `/api/v1/...`. The router is built by
//! [`router`] so tests drive it in-process; `main` only binds it to a listener.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use dreamos_core::{ErrorCode, Priority, TaskId, TaskState};
use dreamos_queue::{Queue, SubmitRequest};
use dreamos_store::TaskFilter;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Principal, Role};
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::{Metrics, StateLabels};
use crate::views::{EventView, Submitted, SubmittedBatch, TaskDetail, TaskPage, TaskView};
use crate::workspaces::Workspaces;

/// Everything a request handler may need.
#[derive(Clone)]
pub struct AppState {
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub node_id: String,
    pub started: Instant,
    pub workspaces: Arc<Workspaces>,
    pub orchestrator: Arc<crate::orchestrator::Orchestrator>,
    pub limits: Arc<crate::limits::Limits>,
    pub tokens: Arc<auth::TokenCache>,
    /// Coalesces repeated security events in the audit log.
    pub audit_coalescer: Arc<crate::audit::Coalescer>,
    /// Becomes true when the API closes: open event streams end.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// Becomes true when the node starts to stop (it takes no new work): `/readyz` says so.
    pub draining: tokio::sync::watch::Receiver<bool>,
    /// The Discord bot, when configured: it serves `POST /discord/interactions`.
    pub discord: Option<Arc<crate::discord::Discord>>,
}

/// Largest request body: a batch of tasks.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Longest a request may wait for a task to finish.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Every route with its OpenAPI description: a route cannot be served without being
/// documented, since both come from the same registration.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(status))
        .routes(routes!(kinds))
        .routes(routes!(submit, list))
        .routes(routes!(submit_batch))
        .routes(routes!(show))
        .routes(routes!(cancel))
        .routes(routes!(retry))
        .routes(routes!(list_workspaces, add_workspace))
        .routes(routes!(remove_workspace))
        .routes(routes!(index_workspace))
        .routes(routes!(search))
        .routes(routes!(crate::events::events))
        .routes(routes!(crate::openapi::openapi_json))
        .merge(crate::protocol::routes())
        .merge(crate::admin::routes())
}

pub fn router(state: AppState) -> Router {
    let (mut routes, _) = routes().split_for_parts();
    if let Some(discord) = &state.discord {
        // Discord's own protocol (signed by Discord, not a bearer token): outside the
        // OpenAPI document. The audit middleware records each delivery (a bad signature as
        // `auth.failed`); the bot adds entries naming the Discord member.
        discord.attach(&state);
        routes = routes
            .route("/discord/interactions", axum::routing::post(crate::discord::interactions));
    }
    routes
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::audit::middleware))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::limits::by_address))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The authenticated caller. Every route but `/healthz` takes one.
pub struct Caller(pub Principal);

/// A principal handed to the API by code in this process (the Discord bot acting as a
/// member). Request extensions cannot be set from the network, so only the node itself can
/// call as a principal that has no token.
#[derive(Clone)]
pub(crate) struct InProcess(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let slot = parts.extensions.get::<crate::audit::AuditSlot>().cloned().unwrap_or_default();
        if let Some(InProcess(principal)) = parts.extensions.get::<InProcess>().cloned() {
            slot.set_actor(principal.actor());
            return limited(state, principal);
        }
        let Some(token) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            slot.set_refusal("no bearer token".into());
            return Err(ApiError::unauthorized());
        };
        let store = state.queue.store();
        let now = store.clock().now_ms();
        match auth::authenticate_cached(store.as_ref(), Some(&state.tokens), token.trim(), now)
            .await?
        {
            Ok(principal) => {
                slot.set_actor(principal.actor());
                limited(state, principal)
            }
            Err(reason) => {
                tracing::info!(?reason, "authentication failed");
                slot.set_refusal(format!("{reason:?}").to_lowercase());
                // Whoever holds a token's secret may learn that it expired (and so needs a new
                // one); every other refusal gets the one answer that tells nothing.
                Err(match reason {
                    auth::Refusal::Expired => ApiError::new(
                        ErrorCode::Unauthorized,
                        "this token has expired: ask an admin for a new one",
                    ),
                    _ => ApiError::unauthorized(),
                })
            }
        }
    }
}

/// The caller, unless its credential (a token, or a Discord member) is over its rate.
fn limited(state: &AppState, principal: Principal) -> Result<Caller, ApiError> {
    let rate = state.config.rate_limit_per_token;
    if let Err(wait) =
        state.limits.by_token.take(&principal.token_id, 1.0, rate, crate::limits::burst(rate))
    {
        return Err(crate::limits::too_many("too many requests with this token", wait));
    }
    Ok(Caller(principal))
}

/// A workspace a scoped caller may not see is answered as if it did not exist.
fn unseen(name: &str) -> ApiError {
    dreamos_service::ServiceError::unseen_workspace(name).into()
}

impl AppState {
    /// The task operations of the service layer, which check every request's rights.
    pub fn tasks(&self) -> dreamos_service::Tasks {
        dreamos_service::Tasks::new(self.queue.clone())
    }
}

impl Caller {
    pub(crate) fn require(&self, role: Role, what: &str) -> Result<&Principal, ApiError> {
        dreamos_service::policy::require(&self.0, role, what)?;
        Ok(&self.0)
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok`.
    status: &'static str,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "system",
    summary = "Liveness: answers while the node runs; needs no token.",
    responses(
        (status = 200, description = "the node is up", body = inline(Health)),
    ),
)]
async fn healthz() -> impl IntoResponse {
    Json(Health { status: "ok" })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Readiness {
    /// `ready`, `draining` or `store_unavailable`.
    status: &'static str,
}

/// How long the store may take to answer a readiness probe.
const READY_DEADLINE: Duration = Duration::from_secs(2);

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "system",
    summary = "Readiness: 200 while the store answers within 2 s and the node is not stopping; 503 otherwise (for load balancers). Needs no token.",
    responses(
        (status = 200, description = "ready for work", body = inline(Readiness)),
        (status = 503, description = "draining, or the store does not answer", body = inline(Readiness)),
    ),
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let answer = |code: StatusCode, status| (code, Json(Readiness { status })).into_response();
    if *state.draining.borrow() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    // A point read of a token that does not exist: the cheapest round trip to the store.
    let probe = state.queue.store().find_token("readyz");
    match tokio::time::timeout(READY_DEADLINE, probe).await {
        Ok(Ok(_)) => answer(StatusCode::OK, "ready"),
        _ => answer(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
    }
}

async fn refresh_task_gauges(state: &AppState) -> Result<Vec<dreamos_store::StateCount>, ApiError> {
    let counts = state.queue.store().counts().await?;
    for s in TaskState::ALL {
        for p in Priority::ALL {
            let n = counts.iter().find(|c| c.state == s && c.priority == p).map_or(0, |c| c.count);
            state
                .metrics
                .tasks
                .get_or_create(&StateLabels {
                    state: s.as_str().into(),
                    priority: p.as_str().into(),
                })
                .set(n as i64);
        }
    }
    Ok(counts)
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    summary = "Prometheus/OpenMetrics text.",
    responses(
        (status = 200, description = "metrics", content_type = "application/openmetrics-text", body = String),
    ),
)]
async fn metrics(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "read metrics")?;
    refresh_task_gauges(&state).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "system",
    summary = "Node, store, agents waiting, tasks by state and queue depth by priority.",
    responses(
        (status = 200, description = "the system status", body = Object),
    ),
)]
async fn status(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "read the status")?;
    let counts = refresh_task_gauges(&state).await?;
    let mut by_state = serde_json::Map::new();
    let mut queued_by_priority = serde_json::Map::new();
    for s in TaskState::ALL {
        let n: u64 = counts.iter().filter(|c| c.state == s).map(|c| c.count).sum();
        by_state.insert(s.as_str().into(), n.into());
    }
    for p in Priority::ALL {
        let n: u64 = counts
            .iter()
            .filter(|c| c.state == TaskState::Queued && c.priority == p)
            .map(|c| c.count)
            .sum();
        queued_by_priority.insert(p.as_str().into(), n.into());
    }
    Ok(Json(json!({
        "node": state.node_id,
        "version": env!("CARGO_PKG_VERSION"),
        "store": state.queue.store().backend().as_str(),
        "uptime_s": state.started.elapsed().as_secs(),
        "local_agents": state.config.agents,
        "orchestrator_leader": state.orchestrator.is_leader(),
        "agents_waiting": state.orchestrator.waiting(),
        "tasks": by_state,
        "queued_by_priority": queued_by_priority,
        "submitted_total": state.metrics.submitted.get(),
    }))
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/kinds",
    tag = "tasks",
    summary = "The task kinds this node accepts, with their payload schemas.",
    responses(
        (status = 200, description = "the kinds", body = Object),
    ),
)]
async fn kinds(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "list kinds")?;
    let kinds: Vec<_> = state
        .queue
        .kinds()
        .iter()
        .map(|k| json!({ "name": k.name, "description": k.description, "admin_only": k.admin_only, "read_only": k.read_only, "schema": k.schema }))
        .collect();
    Ok(Json(json!({ "kinds": kinds })).into_response())
}

/// The submission quota of non-admin tokens (a rate, not a right: rights are the service's).
fn take_quota(state: &AppState, who: &Principal, n: usize) -> Result<(), ApiError> {
    let quota = state.config.submit_quota_per_minute;
    if who.role != Role::Admin && quota > 0.0 {
        let n = n as f64;
        state.limits.submissions.take(&who.token_id, n, quota / 60.0, quota.max(n)).map_err(
            |wait| crate::limits::too_many("this token's submission quota is used up", wait),
        )?;
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    summary = "Submits a task (`exec` is admin-only).",
    request_body = SubmitRequest,
    responses(
        (status = 201, description = "created", body = Submitted),
        (status = 200, description = "an earlier task with the same idempotency key", body = Submitted),
        (status = 422, description = "the payload does not follow its kind's schema, or a dependency does not exist", body = crate::error::ErrorBody),
    ),
)]
async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = &caller.0;
    let Json(request) = body?;
    let requests = vec![request];
    state.tasks().authorize(who, &requests)?;
    take_quota(&state, who, 1)?;
    let summary = state.tasks().submit(who, requests).await?.remove(0);
    if summary.created {
        state.metrics.submitted.inc();
    }
    let task = state
        .queue
        .store()
        .get(summary.id)
        .await?
        .ok_or(dreamos_store::StoreError::NotFound(summary.id))?;
    let status = if summary.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(Submitted { created: summary.created, task: TaskView::from(task) }))
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    tasks: Vec<SubmitRequest>,
}

#[utoipa::path(
    post,
    path = "/api/v1/tasks/batch",
    tag = "tasks",
    summary = "Submits many tasks in one transaction.",
    request_body = BatchBody,
    responses(
        (status = 201, description = "created (or matched by idempotency key)", body = SubmittedBatch),
        (status = 422, description = "a payload does not follow its kind's schema, or a dependency does not exist", body = crate::error::ErrorBody),
    ),
)]
async fn submit_batch(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<BatchBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = &caller.0;
    let Json(body) = body?;
    state.tasks().authorize(who, &body.tasks)?;
    take_quota(&state, who, body.tasks.len())?;
    let summaries = state.tasks().submit(who, body.tasks).await?;
    state.metrics.submitted.inc_by(summaries.iter().filter(|s| s.created).count() as u64);
    Ok((StatusCode::CREATED, Json(SubmittedBatch { tasks: summaries })).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only tasks in this state.
    #[param(value_type = Option<TaskState>)]
    state: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    archived: bool,
    before: Option<i64>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    summary = "Lists tasks, newest first, a page at a time.",
    params(ListQuery),
    responses(
        (status = 200, description = "a page of tasks", body = TaskPage),
    ),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let who = caller.require(Role::Viewer, "list tasks")?.clone();
    let Query(q) = query?;
    let task_state = q
        .state
        .map(|s| s.parse::<TaskState>())
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 1_000 {
        return Err(ApiError::new(ErrorCode::BadRequest, "limit must be between 1 and 1000"));
    }
    let filter = TaskFilter {
        state: task_state,
        kind: q.kind,
        archived: q.archived,
        before: q.before.map(TaskId),
        limit,
    };
    let tasks = state.queue.store().list(&filter).await?;
    let next = (tasks.len() == limit).then(|| tasks.last().map(|t| t.id)).flatten();
    let views: Vec<TaskView> = tasks
        .into_iter()
        .filter(|t| dreamos_service::policy::sees_task(&who, &t.kind, &t.payload))
        .map(TaskView::from)
        .collect();
    Ok(Json(TaskPage { tasks: views, next_before: next }).into_response())
}

fn parse_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse()
        .map_err(|e: dreamos_core::ParseError| ApiError::new(ErrorCode::BadRequest, e.to_string()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ShowQuery {
    /// Wait up to this long for the task to finish before answering.
    wait_ms: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    summary = "One task with its history; `wait_ms` waits for it to finish.",
    params(("id" = i64, Path, minimum = 1, description = "the task's id"), ShowQuery),
    responses(
        (status = 200, description = "the task", body = TaskDetail),
        (status = 404, description = "no such task (or not visible to this token)", body = crate::error::ErrorBody),
    ),
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let who = caller.require(Role::Viewer, "read tasks")?.clone();
    let id = parse_id(&raw)?;
    let Query(q) = query?;
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    let store = state.queue.store();
    let (task, events) = if wait.is_zero() {
        store.detail(id).await?.ok_or(dreamos_store::StoreError::NotFound(id))?
    } else {
        let task = state.queue.wait_finished(id, wait).await?;
        let events = store.events(id).await?;
        (task, events)
    };
    let task = state.tasks().seen(&who, task)?;
    let history = events.into_iter().map(EventView::from).collect();
    Ok(Json(TaskDetail { task: TaskView::from(task), history }).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/cancel",
    tag = "tasks",
    summary = "Cancels a task (a running one is asked to stop).",
    params(("id" = i64, Path, minimum = 1, description = "the task's id")),
    responses(
        (status = 200, description = "the task after the request", body = TaskView),
        (status = 404, description = "no such task", body = crate::error::ErrorBody),
        (status = 409, description = "the task has finished", body = crate::error::ErrorBody),
    ),
)]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let task = state.tasks().cancel(&caller.0, id).await?;
    Ok(Json(TaskView::from(task)).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/retry",
    tag = "tasks",
    summary = "Runs a failed, dead-lettered or cancelled task again.",
    params(("id" = i64, Path, minimum = 1, description = "the task's id")),
    responses(
        (status = 200, description = "the task after the request", body = TaskView),
        (status = 404, description = "no such task", body = crate::error::ErrorBody),
        (status = 409, description = "the task cannot be retried in its state", body = crate::error::ErrorBody),
    ),
)]
async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let task = state.tasks().retry(&caller.0, id).await?;
    Ok(Json(TaskView::from(task)).into_response())
}

fn scan_error(e: dreamos_scan::ScanError) -> ApiError {
    let code = match e.code() {
        "not_found" => ErrorCode::NotFound,
        "bad_query" | "bad_config" | "outside_root" => ErrorCode::BadRequest,
        "conflict" => ErrorCode::InvalidTransition,
        _ => ErrorCode::Internal,
    };
    ApiError::new(code, e.to_string())
}

/// Runs scanner work (file system, parsing, index reads) off the async executor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, dreamos_scan::ScanError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(scan_error)
}

#[utoipa::path(
    get,
    path = "/api/v1/workspaces",
    tag = "workspaces",
    summary = "The workspaces this token may see.",
    responses(
        (status = 200, description = "the workspaces", body = Object),
    ),
)]
async fn list_workspaces(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let who = caller.require(Role::Viewer, "list workspaces")?.clone();
    let workspaces = state.workspaces.clone();
    let mut list = blocking(move || workspaces.list()).await?;
    list.retain(|w| who.sees(&w.name));
    Ok(Json(json!({ "workspaces": list })).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddWorkspace {
    name: Option<String>,
    path: String,
}

/// Submits an `index` task for a workspace.
async fn submit_index(state: &AppState, who: &Principal, name: &str) -> Result<TaskView, ApiError> {
    let request = SubmitRequest::new("index", json!({ "workspace": name }));
    let summary = state.tasks().submit(who, vec![request]).await?.remove(0);
    state.metrics.submitted.inc();
    let task = state
        .queue
        .store()
        .get(summary.id)
        .await?
        .ok_or(dreamos_store::StoreError::NotFound(summary.id))?;
    Ok(TaskView::from(task))
}

#[utoipa::path(
    post,
    path = "/api/v1/workspaces",
    tag = "workspaces",
    summary = "Registers a source tree of the node's machine and starts indexing it.",
    request_body = AddWorkspace,
    responses(
        (status = 201, description = "the workspace and its index task", body = Object),
        (status = 404, description = "no such directory", body = crate::error::ErrorBody),
        (status = 409, description = "the name is taken", body = crate::error::ErrorBody),
    ),
)]
/// Registers a source tree of the node's machine as a workspace (admin: it lets the node
/// read that tree) and starts indexing it.
async fn add_workspace(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<AddWorkspace>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller.require(Role::Admin, "add workspaces")?.clone();
    let Json(body) = body?;
    if who.workspaces.is_some() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "a token limited to some workspaces cannot add workspaces",
        ));
    }
    let workspaces = state.workspaces.clone();
    let roots = state.config.workspace_roots.clone();
    let explicit = state.config.workspace_roots_configured;
    let ws = tokio::task::spawn_blocking(move || {
        workspaces.add(body.name.as_deref(), std::path::Path::new(&body.path), &roots, explicit)
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
    .map_err(|e| match e {
        crate::workspaces::AddError::Refused(e) => ApiError::from(e),
        crate::workspaces::AddError::Scan(e) => scan_error(e),
    })?;
    let task = submit_index(&state, &who, &ws.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "workspace": { "name": ws.name, "root": ws.root }, "task": task })),
    )
        .into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{name}",
    tag = "workspaces",
    summary = "Forgets a workspace and deletes its index.",
    params(("name" = String, Path, description = "the workspace's name")),
    responses(
        (status = 200, description = "the removed workspace", body = Object),
        (status = 404, description = "no such workspace", body = crate::error::ErrorBody),
        (status = 409, description = "the workspace is being indexed", body = crate::error::ErrorBody),
    ),
)]
async fn remove_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let who = caller.require(Role::Admin, "remove workspaces")?;
    if !who.sees(&name) {
        return Err(unseen(&name));
    }
    let workspaces = state.workspaces.clone();
    let ws = blocking(move || workspaces.remove(&name)).await?;
    Ok(Json(json!({ "removed": { "name": ws.name, "root": ws.root } })).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{name}/index",
    tag = "workspaces",
    summary = "Submits an `index` task for a workspace.",
    params(("name" = String, Path, description = "the workspace's name")),
    responses(
        (status = 201, description = "the index task", body = Object),
        (status = 404, description = "no such workspace", body = crate::error::ErrorBody),
    ),
)]
async fn index_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let who = caller.require(Role::Operator, "index workspaces")?.clone();
    if !who.sees(&name) {
        return Err(unseen(&name));
    }
    let workspaces = state.workspaces.clone();
    let lookup = name.clone();
    blocking(move || workspaces.get(&lookup)).await?;
    let task = submit_index(&state, &who, &name).await?;
    Ok((StatusCode::CREATED, Json(json!({ "task": task }))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    q: String,
    workspace: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "search",
    summary = r#"Code search: words, identifiers, `"exact phrases"`, `/regex/`, with `lang:`, `path:`, `sym:` filters."#,
    params(SearchQuery),
    responses(
        (status = 200, description = "ranked hits", body = Object),
        (status = 404, description = "no such workspace, or it has no index yet", body = crate::error::ErrorBody),
    ),
)]
async fn search(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let who = caller.require(Role::Viewer, "search code")?.clone();
    let Query(mut q) = query?;
    if let Some(scope) = &who.workspaces {
        match &q.workspace {
            Some(w) if !who.sees(w) => return Err(unseen(w)),
            Some(_) => {}
            None if scope.len() == 1 => q.workspace = Some(scope[0].clone()),
            None => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("name a workspace: this token sees {}", scope.join(", ")),
                ));
            }
        }
    }
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > 1_000 {
        return Err(ApiError::new(ErrorCode::BadRequest, "limit must be between 1 and 1000"));
    }
    let options = dreamos_scan::SearchOptions {
        limit,
        offset: q.offset.unwrap_or(0),
        ..dreamos_scan::SearchOptions::default()
    };
    let workspaces = state.workspaces.clone();
    let result =
        blocking(move || workspaces.search(&q.q, q.workspace.as_deref(), &options)).await?;
    Ok(Json(result).into_response())
}
