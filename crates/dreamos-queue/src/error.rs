//! The queue's error type. Each variant has a stable code shared with the HTTP API.

use dreamos_core::ErrorCode;
use dreamos_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("unknown task kind `{kind}` (known kinds: {known})")]
    UnknownKind { kind: String, known: String },
    #[error("task {index}: payload does not match the schema of kind `{kind}`: {problems}")]
    InvalidPayload { index: usize, kind: String, problems: String },
    #[error("task {index}: payload is {size} bytes, more than the limit of {limit}")]
    PayloadTooLarge { index: usize, size: usize, limit: usize },
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueueError {
    pub fn code(&self) -> ErrorCode {
        match self {
            QueueError::UnknownKind { .. } => ErrorCode::UnknownKind,
            QueueError::InvalidPayload { .. } => ErrorCode::InvalidPayload,
            QueueError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            QueueError::BadRequest(_) => ErrorCode::BadRequest,
            QueueError::Store(e) => e.code(),
        }
    }
}
