//! Request and answer shapes of the store interface.

use dreamos_core::{Priority, Progress, TaskId, TaskState};
use serde::{Deserialize, Serialize};

/// Store tuning. The defaults suit one machine; every field is documented in the node config.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// A queued task gains one priority level per this much waiting, so low priorities are
    /// never starved (priority with aging).
    pub aging_ms: i64,
    /// SQLite only: `PRAGMA synchronous = FULL` syncs the WAL on every commit (durable across
    /// power loss); the default `NORMAL` is durable across process crashes.
    pub sqlite_full_sync: bool,
    /// PostgreSQL: connections for everything.
    pub max_connections: u32,
    /// SQLite: connections for reads. Each has a thread of its own, so many more than the
    /// cores only adds switching (on 2 cores, 4 readers served task reads faster than 8 in
    /// the API benchmark; see BENCHMARKS.md). Default: twice the cores.
    pub sqlite_readers: u32,
    /// Most requests a SQLite group commit takes at once.
    pub max_group: usize,
    /// PostgreSQL only: keep the tables in this schema (created if missing), so that several
    /// independent stores can share one database (the tests do).
    pub pg_schema: Option<String>,
    /// Fairness across submitters: consecutive tasks of one submitter (at one priority) are
    /// placed at least this far apart in the claim order, so a submitter with a large backlog
    /// does not hold back another's new work. 0 turns it off (plain arrival order).
    pub fair_spacing_ms: i64,
    /// Keys the audit chain (HMAC-SHA256); `None`: plain SHA-256.
    pub audit_key: Option<crate::AuditKey>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            aging_ms: 60_000,
            sqlite_full_sync: false,
            max_connections: 8,
            sqlite_readers: std::thread::available_parallelism()
                .map_or(4, |n| (n.get() * 2) as u32)
                .max(2),
            max_group: 512,
            pg_schema: None,
            fair_spacing_ms: 10,
            audit_key: None,
        }
    }
}

/// An agent asks for up to `max` tasks it can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// The lease holder's name (an agent id).
    pub holder: String,
    /// The agent's capabilities; a task is eligible when it requires a subset of them.
    pub capabilities: Vec<String>,
    /// Only these kinds (each must also be a capability); `None`: every kind among the
    /// capabilities. The orchestrator uses it to keep kinds at their concurrency limit out.
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    pub max: usize,
    pub lease_ms: i64,
}

/// A holder extends its lease and reports progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub task_id: TaskId,
    pub fence: i64,
    pub lease_ms: i64,
    pub progress: Option<Progress>,
    /// When set, the beat counts only if this holder holds the lease (remote agents).
    #[serde(default)]
    pub holder: Option<String>,
}

/// The answer to a heartbeat: whether the holder should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    pub cancel_requested: bool,
    pub lease_expires_at_ms: i64,
}

/// Which tasks to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    pub state: Option<TaskState>,
    pub kind: Option<String>,
    /// List the archive instead of the live tasks.
    pub archived: bool,
    /// Only tasks with an id below this one (the cursor of the next page).
    pub before: Option<TaskId>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCount {
    pub state: TaskState,
    pub priority: Priority,
    pub count: u64,
}

/// An API token as stored: only its hash, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub hash: String,
    pub role: String,
    pub label: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// The workspaces this token may see; `None`: all of them.
    #[serde(default)]
    pub workspaces: Option<Vec<String>>,
}
