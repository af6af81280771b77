//! The service's one error: a refusal with a stable code, or the queue's or store's own error.

use dreamos_core::ErrorCode;
use dreamos_queue::QueueError;
use dreamos_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The policy or the input says no; `code` is the API's stable code.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError::Refused { code, message: message.into() }
    }

    /// The caller's role may not do `what`.
    pub fn forbidden(what: &str) -> Self {
        Self::new(ErrorCode::Forbidden, format!("your role may not {what}"))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// A workspace the caller may not see is answered as if it did not exist.
    pub fn unseen_workspace(name: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no workspace named `{name}`"))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::Refused { code, .. } => *code,
            ServiceError::Queue(e) => e.code(),
            ServiceError::Store(e) => e.code(),
        }
    }
}
