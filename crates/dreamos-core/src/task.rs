//! The task: what is asked, its state machine, its lease and its history.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ParseError, RetryPolicy};

/// A task's identity. Ids are assigned by the store and increase with submission order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub i64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for TaskId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse::<i64>().ok().filter(|n| *n > 0).map(TaskId).ok_or_else(|| ParseError {
            what: "task id",
            value: s.to_owned(),
            expected: "a positive integer",
        })
    }
}

/// How urgent a task is. With aging, a waiting task gains one level per aging interval, so
/// low-priority work is never starved.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 4] =
        [Priority::Critical, Priority::High, Priority::Normal, Priority::Low];

    /// 0 for low up to 3 for critical.
    pub fn rank(self) -> i64 {
        self as i64
    }

    pub fn from_rank(rank: i64) -> Option<Self> {
        match rank {
            0 => Some(Priority::Low),
            1 => Some(Priority::Normal),
            2 => Some(Priority::High),
            3 => Some(Priority::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| ParseError {
            what: "priority",
            value: s.to_owned(),
            expected: "critical, high, normal, low",
        })
    }
}

/// Where a task is in its life. `Succeeded`, `Failed` (the dead-letter set) and `Cancelled`
/// are terminal: nothing leaves them but an explicit manual retry.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for the tasks it depends on to succeed.
    Pending,
    /// Ready to be claimed once its run-at time has come.
    Queued,
    /// Held by an agent under a lease.
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 6] = [
        TaskState::Pending,
        TaskState::Queued,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| ParseError {
            what: "state",
            value: s.to_owned(),
            expected: "pending, queued, running, succeeded, failed, cancelled",
        })
    }
}

/// A request to run something, as accepted from a submitter (already validated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    pub kind: String,
    pub payload: Value,
    pub priority: Priority,
    /// Capabilities an agent needs besides the kind itself.
    pub capabilities: Vec<String>,
    pub retry: RetryPolicy,
    /// Not before this time (ms since the epoch); `None` means now.
    pub run_at_ms: Option<i64>,
    /// How long one attempt may run before it is failed with `timeout`.
    pub timeout_ms: Option<i64>,
    pub depends_on: Vec<TaskId>,
    pub idempotency_key: Option<String>,
    pub submitter: String,
}

impl NewTask {
    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        Self {
            kind: kind.into(),
            payload,
            priority: Priority::Normal,
            capabilities: Vec::new(),
            retry: RetryPolicy::default(),
            run_at_ms: None,
            timeout_ms: None,
            depends_on: Vec::new(),
            idempotency_key: None,
            submitter: "system".into(),
        }
    }

    /// The capabilities an agent must have to claim this task: the kind plus any extra ones.
    pub fn required_capabilities(&self) -> Vec<String> {
        let mut caps = vec![self.kind.clone()];
        caps.extend(self.capabilities.iter().cloned());
        caps.sort();
        caps.dedup();
        caps
    }
}

/// A claim on a running task. `fence` increases with every claim of the task, and any report
/// must present the current one: a holder that lost its lease can no longer change the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    pub fence: i64,
    pub expires_at_ms: i64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub percent: f64,
    #[serde(default)]
    pub message: String,
}

/// Why an attempt or a task failed. `class` is a short machine-readable word.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    pub class: String,
    pub message: String,
}

/// Error classes the queue itself assigns.
pub mod error_class {
    pub const LEASE_EXPIRED: &str = "lease_expired";
    pub const AGENT_LOST: &str = "agent_lost";
    /// A local agent crashed (panicked) while running the task.
    pub const AGENT_CRASHED: &str = "agent_crashed";
    pub const DEPENDENCY_FAILED: &str = "dependency_failed";
    pub const TIMEOUT: &str = "timeout";
    pub const CANCELLED: &str = "cancelled";
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub kind: String,
    pub payload: Value,
    pub priority: Priority,
    pub state: TaskState,
    pub capabilities: Vec<String>,
    pub attempts: u32,
    pub retry: RetryPolicy,
    /// When the task becomes (or became) claimable.
    pub available_at_ms: i64,
    pub timeout_ms: Option<i64>,
    pub lease: Option<Lease>,
    pub progress: Option<Progress>,
    pub result: Option<Value>,
    pub error: Option<TaskError>,
    pub depends_on: Vec<TaskId>,
    pub idempotency_key: Option<String>,
    pub submitter: String,
    pub cancel_requested: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub archived: bool,
}

/// The few fields a listing or a submission answer needs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub id: TaskId,
    pub state: TaskState,
    /// False when an idempotency key matched an earlier task, which is returned instead.
    pub created: bool,
}

/// What happened to a task: one entry per state change, kept for its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Submitted,
    Unblocked,
    Claimed,
    Released,
    RetryScheduled,
    Succeeded,
    Failed,
    CancelRequested,
    Cancelled,
    Retried,
    Archived,
    /// A running task spawned child tasks and waits for them (fan-out).
    FannedOut,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::Submitted,
        EventKind::Unblocked,
        EventKind::Claimed,
        EventKind::Released,
        EventKind::RetryScheduled,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::CancelRequested,
        EventKind::Cancelled,
        EventKind::Retried,
        EventKind::Archived,
        EventKind::FannedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Submitted => "submitted",
            EventKind::Unblocked => "unblocked",
            EventKind::Claimed => "claimed",
            EventKind::Released => "released",
            EventKind::RetryScheduled => "retry_scheduled",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
            EventKind::CancelRequested => "cancel_requested",
            EventKind::Cancelled => "cancelled",
            EventKind::Retried => "retried",
            EventKind::Archived => "archived",
            EventKind::FannedOut => "fanned_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub task_id: TaskId,
    pub at_ms: i64,
    pub kind: EventKind,
    /// The attempt the event belongs to (0 before the first claim).
    pub attempt: u32,
    /// Who or what caused it: an agent id, a submitter, or `queue`.
    pub actor: String,
    pub detail: Option<String>,
}

/// How an attempt ended, as reported by its holder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded {
        result: Value,
    },
    /// `retryable: false` sends the task straight to the dead-letter set.
    Failed {
        error: TaskError,
        retryable: bool,
    },
    /// The holder stopped because cancellation was requested.
    Cancelled,
    /// The holder gives the task back unfinished (shutdown); the attempt does not count.
    Released,
}

/// A holder's report on one task, carrying its fencing token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub task_id: TaskId,
    pub fence: i64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>().unwrap(), p);
            assert_eq!(Priority::from_rank(p.rank()), Some(p));
        }
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
        }
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert!("urgent".parse::<Priority>().is_err());
        assert!("0".parse::<TaskId>().is_err());
        assert_eq!("42".parse::<TaskId>().unwrap(), TaskId(42));
    }

    #[test]
    fn only_three_states_are_terminal() {
        let terminal: Vec<_> = TaskState::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, vec![TaskState::Succeeded, TaskState::Failed, TaskState::Cancelled]);
    }

    #[test]
    fn required_capabilities_include_the_kind_once() {
        let mut t = NewTask::new("index", Value::Null);
        t.capabilities = vec!["gpu".into(), "index".into()];
        assert_eq!(t.required_capabilities(), vec!["gpu".to_string(), "index".to_string()]);
    }
}
