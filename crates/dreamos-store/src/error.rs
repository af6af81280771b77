//! The store's error type, with a stable code for each variant.

use dreamos_core::{ErrorCode, TaskId, TaskState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("task {0} not found")]
    NotFound(TaskId),
    #[error(
        "task {id}: the lease token is stale (the task was claimed again, finished or expired)"
    )]
    StaleLease { id: TaskId },
    #[error("task {id} is {state}: cannot {action}")]
    InvalidTransition { id: TaskId, state: TaskState, action: &'static str },
    #[error("dependency {0} does not exist")]
    DependencyNotFound(TaskId),
    #[error("task {id} is held by another agent")]
    NotHolder { id: TaskId },
    #[error("agent `{0}` not found")]
    AgentNotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// An agent cannot be changed so in its state (it is connected, or holds work).
    #[error("{0}")]
    AgentBusy(String),
    #[error("store configuration: {0}")]
    Config(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// An error of the SQLite writer's connection (rusqlite, on the writer thread).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::NotFound(_) | StoreError::AgentNotFound(_) => ErrorCode::NotFound,
            StoreError::StaleLease { .. } => ErrorCode::StaleLease,
            StoreError::InvalidTransition { .. } | StoreError::AgentBusy(_) => {
                ErrorCode::InvalidTransition
            }
            StoreError::DependencyNotFound(_) => ErrorCode::DependencyNotFound,
            StoreError::Conflict(_) => ErrorCode::BadRequest,
            StoreError::NotHolder { .. } => ErrorCode::Forbidden,
            StoreError::Closed => ErrorCode::Unavailable,
            _ if self.is_storage_full() => ErrorCode::StorageFull,
            StoreError::Config(_)
            | StoreError::Corrupt(_)
            | StoreError::Database(_)
            | StoreError::Sqlite(_)
            | StoreError::Migrate(_) => ErrorCode::Internal,
        }
    }

    /// True when the database could not write because its disk is full (SQLite's
    /// `SQLITE_FULL`, PostgreSQL's `disk_full`): nothing of the request was committed.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("53100" | "13"))
            }
            StoreError::Database(sqlx::Error::Io(e)) => e.raw_os_error() == Some(28),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            _ => false,
        }
    }

    pub(crate) fn unexpected(response: crate::Response) -> Self {
        StoreError::Corrupt(format!("unexpected response {response:?}"))
    }

    /// True for errors a whole transaction may be retried after (PostgreSQL serialization
    /// failures and deadlocks, SQLite busy).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("40001" | "40P01" | "5" | "6" | "517"))
            }
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }

    /// True for errors raised by the checks of one request, before it wrote anything: the rest
    /// of a group commit is unaffected by them.
    pub(crate) fn is_logical(&self) -> bool {
        !matches!(
            self,
            StoreError::Database(_)
                | StoreError::Sqlite(_)
                | StoreError::Migrate(_)
                | StoreError::Corrupt(_)
                | StoreError::Closed
        )
    }
}

/// Answers of a request made of many items: a database error among them must abort the whole
/// transaction rather than hide in one item's answer.
pub(crate) fn surface_database_error<T>(
    answers: Vec<Result<T, StoreError>>,
) -> Result<Vec<Result<T, StoreError>>, StoreError> {
    let mut answers = answers;
    match answers.iter().position(|a| matches!(a, Err(e) if !e.is_logical())) {
        Some(pos) => Err(answers.swap_remove(pos).err().unwrap_or(StoreError::Closed)),
        None => Ok(answers),
    }
}
