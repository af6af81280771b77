//! The API's wire shapes. Times are RFC 3339 strings; ids are numbers.

use std::time::{Duration, UNIX_EPOCH};

use dreamos_core::{Lease, Priority, Progress, Task, TaskError, TaskEvent, TaskId, TaskState};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseView {
    pub holder: String,
    pub fence: i64,
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    pub id: TaskId,
    pub kind: String,
    pub state: TaskState,
    pub priority: Priority,
    pub attempts: u32,
    pub max_attempts: u32,
    pub payload: Value,
    pub capabilities: Vec<String>,
    pub depends_on: Vec<TaskId>,
    pub run_at: String,
    pub timeout_ms: Option<i64>,
    pub lease: Option<LeaseView>,
    pub progress: Option<Progress>,
    pub result: Option<Value>,
    pub error: Option<TaskError>,
    pub idempotency_key: Option<String>,
    pub submitter: String,
    pub cancel_requested: bool,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub archived: bool,
}

impl From<Task> for TaskView {
    fn from(t: Task) -> Self {
        Self {
            id: t.id,
            kind: t.kind,
            state: t.state,
            priority: t.priority,
            attempts: t.attempts,
            max_attempts: t.retry.max_attempts,
            payload: t.payload,
            capabilities: t.capabilities,
            depends_on: t.depends_on,
            run_at: time(t.available_at_ms),
            timeout_ms: t.timeout_ms,
            lease: t.lease.map(|Lease { holder, fence, expires_at_ms }| LeaseView {
                holder,
                fence,
                expires_at: time(expires_at_ms),
            }),
            progress: t.progress,
            result: t.result,
            error: t.error,
            idempotency_key: t
                .idempotency_key
                .map(|k| dreamos_service::policy::shown_idempotency_key(&k).to_string()),
            submitter: t.submitter,
            cancel_requested: t.cancel_requested,
            created_at: time(t.created_at_ms),
            updated_at: time(t.updated_at_ms),
            finished_at: t.finished_at_ms.map(time),
            archived: t.archived,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub at: String,
    #[schema(value_type = String)]
    pub event: &'static str,
    pub attempt: u32,
    pub actor: String,
    pub detail: Option<String>,
}

impl From<TaskEvent> for EventView {
    fn from(e: TaskEvent) -> Self {
        Self {
            at: time(e.at_ms),
            event: e.kind.as_str(),
            attempt: e.attempt,
            actor: e.actor,
            detail: e.detail,
        }
    }
}

/// A task with its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: TaskView,
    pub history: Vec<EventView>,
}

/// The answer to a submission: the task, and whether it was created (false when an
/// idempotency key matched an earlier task, which is returned instead).
#[derive(Debug, Serialize, ToSchema)]
pub struct Submitted {
    pub created: bool,
    pub task: TaskView,
}

/// The answer to a batch submission, in the order of the request.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmittedBatch {
    pub tasks: Vec<dreamos_core::TaskSummary>,
}

/// A page of tasks, newest first; `next_before` continues the listing (`?before=`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    pub tasks: Vec<TaskView>,
    pub next_before: Option<TaskId>,
}
