//! The one error type of the HTTP API. Every failure becomes `{code, message, details}` with
//! a stable code and the status that code always maps to; internal errors are logged and
//! answered with a generic message, never with their details.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dreamos_core::ErrorCode;
use dreamos_queue::QueueError;
use dreamos_store::StoreError;
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
    /// Seconds, for `Retry-After` (rate limits).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: Value::Null, retry_after: None }
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "missing or invalid credentials")
    }

    pub fn forbidden(what: &str) -> Self {
        Self::new(ErrorCode::Forbidden, format!("your role may not {what}"))
    }

    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }
}

/// The status each code always answers with.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::MalformedJson
        | ErrorCode::UnknownKind
        | ErrorCode::ProtocolViolation
        | ErrorCode::UnsupportedProtocol => StatusCode::BAD_REQUEST,
        ErrorCode::DependencyNotFound | ErrorCode::InvalidPayload => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::StaleLease | ErrorCode::InvalidTransition => StatusCode::CONFLICT,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if self.code == ErrorCode::Internal {
            tracing::error!(error = %self.message, "internal error");
            "internal error; see the node's log".to_string()
        } else {
            self.message
        };
        let body =
            json!({ "code": self.code.as_str(), "message": message, "details": self.details });
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let details = match &e {
            StoreError::NotFound(id) | StoreError::DependencyNotFound(id) => json!({ "id": id }),
            StoreError::StaleLease { id } => json!({ "id": id }),
            StoreError::InvalidTransition { id, state, .. } => json!({ "id": id, "state": state }),
            _ => Value::Null,
        };
        Self { code: e.code(), message: e.to_string(), details, retry_after: None }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Store(s) => s.into(),
            other => {
                let details = match &other {
                    QueueError::InvalidPayload { index, .. }
                    | QueueError::PayloadTooLarge { index, .. } => {
                        json!({ "index": index })
                    }
                    _ => Value::Null,
                };
                Self { code: other.code(), message: other.to_string(), details, retry_after: None }
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match &r {
            JsonRejection::JsonSyntaxError(_) => ErrorCode::MalformedJson,
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            JsonRejection::JsonDataError(_) => ErrorCode::BadRequest,
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            _ => ErrorCode::BadRequest,
        };
        Self::new(code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(ErrorCode::BadRequest, r.body_text())
    }
}
