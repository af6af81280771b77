//! Stable error codes shared by every layer, so that the HTTP API, the CLI and Discord all
//! name a failure the same way.

use std::fmt;

/// A machine-readable error code. The string form is part of the public API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    MalformedJson,
    UnknownKind,
    InvalidPayload,
    PayloadTooLarge,
    UnsupportedMediaType,
    NotFound,
    StaleLease,
    InvalidTransition,
    DependencyNotFound,
    Unauthorized,
    Forbidden,
    RateLimited,
    Unavailable,
    Internal,
    /// A remote agent's message does not follow the protocol's JSON Schema.
    ProtocolViolation,
    /// A remote agent speaks a protocol version this node does not.
    UnsupportedProtocol,
    /// The route exists, but not with this method.
    MethodNotAllowed,
    /// The node's storage is full: nothing of this request was accepted.
    StorageFull,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::BadRequest,
        ErrorCode::MalformedJson,
        ErrorCode::UnknownKind,
        ErrorCode::InvalidPayload,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::NotFound,
        ErrorCode::StaleLease,
        ErrorCode::InvalidTransition,
        ErrorCode::DependencyNotFound,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::ProtocolViolation,
        ErrorCode::UnsupportedProtocol,
        ErrorCode::MethodNotAllowed,
        ErrorCode::StorageFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::UnknownKind => "unknown_kind",
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::NotFound => "not_found",
            ErrorCode::StaleLease => "stale_lease",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::DependencyNotFound => "dependency_not_found",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::ProtocolViolation => "protocol_violation",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::StorageFull => "storage_full",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value that did not parse into a domain type (a priority, a state, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{value}`: expected one of {expected}")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}
