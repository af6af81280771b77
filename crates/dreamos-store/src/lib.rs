//! Dream.OS durable store: every task, its history and the API tokens, behind one interface
//! with two backends on sqlx.
//!
//! - **SQLite** (the embedded default): one file in WAL mode. All writes go through a single
//!   writer task that commits whatever requests are waiting in one transaction (group commit),
//!   so many concurrent callers cost one commit; reads use a separate pool of connections.
//! - **PostgreSQL**: each request is its own transaction on a pool; claims use
//!   `FOR UPDATE SKIP LOCKED`, and `LISTEN/NOTIFY` wakes claimers on other nodes.
//!
//! The transitions themselves are written once ([`ops`]) against a small connection trait, so
//! both backends behave the same; the behaviour suite in `tests/` runs against both.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dreamos_store::StoreError> {
//! use dreamos_core::{NewTask, SystemClock};
//! use dreamos_store::{StoreConfig, open};
//! let store = open("sqlite://./.dreamos/dreamos.db", StoreConfig::default(), std::sync::Arc::new(SystemClock)).await?;
//! let ids = store.submit(vec![NewTask::new("noop", serde_json::json!({}))]).await?;
//! # Ok(()) }
//! ```

mod agents;
mod audit;
mod batch;
mod conn;
mod deps;
mod dispatch;
mod error;
mod feed;
mod migrate;
mod ops;
mod postgres;
mod reads;
mod rows;
mod signals;
mod sqlite;
mod sqlite_conn;
mod sweep;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use dreamos_core::{Clock, Completion, NewTask, Task, TaskEvent, TaskId, TaskState, TaskSummary};

pub use agents::{
    AgentAnswer, AgentEvent, AgentOp, AgentRecord, AgentState, Audience, Capability, Control,
    Message, NewMessage, Waiter, claim_capabilities, label_requirement,
};
pub use audit::{
    AuditEntry, AuditFilter, AuditKey, AuditRecord, ChainBreak, GENESIS, entry_hash, keyed_hash,
    verify_chain,
};
pub use error::StoreError;
pub use feed::{AgentChange, Feed, FeedCursor, FeedPos, TaskChange};
pub use ops::{Request, Response};
pub use signals::Signals;
pub use types::{
    ApiToken, ClaimRequest, Heartbeat, HeartbeatAnswer, StateCount, StoreConfig, TaskFilter,
};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The durable store. Writes go through [`Store::write`]; the typed methods are conveniences
/// over it. All methods are safe to call concurrently from many tasks.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    fn backend(&self) -> Backend;

    /// Change signals: bumped after every committed write, so waiters never poll.
    fn signals(&self) -> &Signals;

    fn clock(&self) -> &Arc<dyn Clock>;

    /// The key of the audit chain, if it is keyed.
    fn audit_key(&self) -> Option<&AuditKey>;

    /// Applies one write request in a transaction of its own (PostgreSQL) or in the next group
    /// commit (SQLite). Either all of a request's changes are committed or none are.
    async fn write(&self, request: Request) -> Result<Response>;

    async fn get(&self, id: TaskId) -> Result<Option<Task>>;
    async fn events(&self, id: TaskId) -> Result<Vec<TaskEvent>>;
    /// A task with its history, live or archived.
    async fn detail(&self, id: TaskId) -> Result<Option<(Task, Vec<TaskEvent>)>>;
    async fn list(&self, filter: &TaskFilter) -> Result<Vec<Task>>;
    async fn counts(&self) -> Result<Vec<StateCount>>;
    /// The earliest time a queued task becomes claimable or a lease expires, if any.
    async fn next_deadline(&self) -> Result<Option<i64>>;
    /// The token with this id (its secret is checked by the caller against the hash).
    async fn find_token(&self, id: &str) -> Result<Option<ApiToken>>;
    async fn list_tokens(&self) -> Result<Vec<ApiToken>>;

    /// Closes connections after the last write has been committed.
    async fn close(&self);
}

/// Typed conveniences over [`Store::write`].
impl dyn Store {
    pub async fn submit(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskSummary>> {
        match self.write(Request::Submit(tasks)).await? {
            Response::Submitted(s) => Ok(s),
            other => Err(StoreError::unexpected(other)),
        }
    }

    pub async fn claim(&self, request: ClaimRequest) -> Result<Vec<Task>> {
        match self.write(Request::Claim(request)).await? {
            Response::Claimed(t) => Ok(t),
            other => Err(StoreError::unexpected(other)),
        }
    }

    pub async fn heartbeat(&self, beats: Vec<Heartbeat>) -> Result<Vec<Result<HeartbeatAnswer>>> {
        match self.write(Request::Heartbeat(beats)).await? {
            Response::Heartbeats(a) => Ok(a),
            other => Err(StoreError::unexpected(other)),
        }
    }

    /// Reports finished attempts; each report is checked against its fencing token on its own.
    pub async fn complete(
        &self,
        actor: &str,
        reports: Vec<Completion>,
    ) -> Result<Vec<Result<TaskState>>> {
        match self.write(Request::Complete { actor: actor.into(), reports }).await? {
            Response::Completed(r) => Ok(r),
            other => Err(StoreError::unexpected(other)),
        }
    }

    pub async fn cancel(&self, id: TaskId, actor: &str) -> Result<TaskState> {
        match self.write(Request::Cancel { id, actor: actor.into() }).await? {
            Response::State(s) => Ok(s),
            Response::CancelRequested => Ok(TaskState::Running),
            other => Err(StoreError::unexpected(other)),
        }
    }

    pub async fn retry(&self, id: TaskId, actor: &str) -> Result<TaskState> {
        match self.write(Request::Retry { id, actor: actor.into() }).await? {
            Response::State(s) => Ok(s),
            other => Err(StoreError::unexpected(other)),
        }
    }

    /// Fails every attempt whose lease has lapsed (`lease_expired`), through the retry policy.
    pub async fn expire_leases(&self) -> Result<Vec<TaskId>> {
        match self.write(Request::ExpireLeases).await? {
            Response::Tasks(t) => Ok(t),
            other => Err(StoreError::unexpected(other)),
        }
    }

    /// Fails every attempt held by holders whose name starts with `prefix`, with `class`
    /// (for example `agent_lost` for the local agents of a node that crashed).
    pub async fn fail_holders(&self, prefix: &str, class: &str) -> Result<Vec<TaskId>> {
        match self
            .write(Request::FailHolders { prefix: prefix.into(), class: class.into() })
            .await?
        {
            Response::Tasks(t) => Ok(t),
            other => Err(StoreError::unexpected(other)),
        }
    }

    /// Moves tasks that finished before `finished_before_ms` to the archive.
    pub async fn archive(&self, finished_before_ms: i64) -> Result<u64> {
        match self.write(Request::Archive { finished_before_ms }).await? {
            Response::Count(n) => Ok(n),
            other => Err(StoreError::unexpected(other)),
        }
    }

    pub async fn create_token(&self, token: ApiToken) -> Result<()> {
        match self.write(Request::CreateToken(token)).await? {
            Response::Done => Ok(()),
            other => Err(StoreError::unexpected(other)),
        }
    }

    /// Fan-out: the running task `parent` (held by `holder` with `fence`) spawns `children`
    /// and waits for them; it succeeds with their results when the last one succeeds.
    pub async fn fan_out(
        &self,
        parent: TaskId,
        fence: i64,
        holder: &str,
        children: Vec<NewTask>,
    ) -> Result<Vec<TaskId>> {
        let request = Request::FanOut { parent, fence, holder: holder.into(), children };
        match self.write(request).await? {
            Response::Tasks(t) => Ok(t),
            other => Err(StoreError::unexpected(other)),
        }
    }

    /// Task and agent events after the cursors, oldest first.
    pub async fn feed(&self, after: FeedCursor, limit: usize) -> Result<Feed> {
        match self.write(Request::Feed { after, limit }).await? {
            Response::Feed(f) => Ok(f),
            other => Err(StoreError::unexpected(other)),
        }
    }

    /// The feed's current end: a new reader starts there.
    pub async fn feed_heads(&self) -> Result<FeedCursor> {
        match self.write(Request::FeedHeads).await? {
            Response::Ids(ids) if ids.len() == 4 => Ok(FeedCursor {
                tasks: FeedPos { tx: ids[0], id: ids[1] },
                agents: FeedPos { tx: ids[2], id: ids[3] },
            }),
            other => Err(StoreError::unexpected(other)),
        }
    }

    /// When the task event at `pos` happened, if it is still kept.
    pub async fn feed_event_at(&self, pos: FeedPos) -> Result<Option<i64>> {
        match self.write(Request::FeedEventAt(pos)).await? {
            Response::Ids(ids) => Ok(ids.first().copied()),
            other => Err(StoreError::unexpected(other)),
        }
    }

    /// Appends entries to the audit log; answers their ids.
    pub async fn audit(&self, entries: Vec<AuditEntry>) -> Result<Vec<i64>> {
        match self.write(Request::Audit(entries)).await? {
            Response::Ids(ids) => Ok(ids),
            other => Err(StoreError::unexpected(other)),
        }
    }

    pub async fn read_audit(&self, filter: AuditFilter) -> Result<Vec<AuditRecord>> {
        match self.write(Request::AuditRead(filter)).await? {
            Response::Audit(r) => Ok(r),
            other => Err(StoreError::unexpected(other)),
        }
    }

    /// Follows the whole audit chain: its length and head hash, or where it is broken.
    pub async fn verify_audit(&self) -> Result<std::result::Result<(i64, String), ChainBreak>> {
        let mut head = (0_i64, GENESIS.to_string());
        loop {
            let page = self
                .read_audit(AuditFilter {
                    after: Some(head.0),
                    limit: 10_000,
                    ..Default::default()
                })
                .await?;
            if page.is_empty() {
                return Ok(Ok(head));
            }
            match verify_chain(&page, head, self.audit_key()) {
                Ok(h) => head = h,
                Err(b) => return Ok(Err(b)),
            }
        }
    }

    /// Applies one agent, message, lease or dispatch operation.
    pub async fn agent(&self, op: AgentOp) -> Result<AgentAnswer> {
        match self.write(Request::Agent(Box::new(op))).await? {
            Response::Agent(a) => Ok(a),
            other => Err(StoreError::unexpected(other)),
        }
    }

    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        match self.write(Request::RevokeToken { id: id.into() }).await? {
            Response::Done => Ok(()),
            other => Err(StoreError::unexpected(other)),
        }
    }
}

/// Opens (creating and migrating if needed) the store at `url`: `sqlite://PATH` or
/// `postgres://...`.
pub async fn open(url: &str, config: StoreConfig, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url, config, clock).await?))
    } else if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))
    {
        Ok(Arc::new(sqlite::SqliteStore::open(std::path::Path::new(path), config, clock).await?))
    } else {
        Err(StoreError::Config(format!(
            "unsupported store url `{url}`: use sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }
}
