//! Request ids and the audit trail of the HTTP API.
//!
//! Every request gets an id (the caller's `x-request-id` if it is sane, else a random one),
//! echoed in the response. Every mutating request to `/api/v1` and every agent registration
//! is appended to the store's hash-chained audit log before its answer leaves, with the
//! caller, the route, the target and the status; so is every security event anywhere
//! (authentication failures, permission denials). Agents' routine protocol traffic (claims,
//! heartbeats, reports, messages) is not: it is recorded in the tasks' own histories.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use dreamos_store::AuditEntry;

use crate::api::AppState;

/// What the authentication step learned about the caller, for the audit entry.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub actor: Option<String>,
    pub refusal: Option<String>,
}

/// Shared between the middleware and the `Caller` extractor of one request.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(pub Arc<Mutex<Seen>>);

impl AuditSlot {
    pub fn set_actor(&self, actor: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).actor = Some(actor);
    }

    pub fn set_refusal(&self, reason: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).refusal = Some(reason);
    }
}

/// The request's id.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// Agent protocol routes whose traffic is not audited (unless refused).
fn routine(path: &str) -> bool {
    path.starts_with("/agent/v1/") && path != "/agent/v1/register"
}

pub async fn middleware(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let mut response = next.run(req).await;
    let status = response.status();
    let security = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if security || (mutating && !routine(&route)) {
        let seen = slot.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let actor = seen
            .actor
            .unwrap_or_else(|| format!("anonymous@{}", client.as_deref().unwrap_or("unknown")));
        let action = match status {
            StatusCode::UNAUTHORIZED => "auth.failed".to_string(),
            StatusCode::FORBIDDEN => format!("denied {method} {route}"),
            _ => format!("{method} {route}"),
        };
        let entry = AuditEntry {
            request_id: id.clone(),
            actor,
            action,
            target: path,
            outcome: status.as_u16().to_string(),
            detail: seen.refusal,
        };
        // The entry is committed before the answer leaves.
        if let Err(e) = state.queue.store().audit(vec![entry]).await {
            tracing::error!(error = %e, request = %id, "AUDIT APPEND FAILED: this action is not in the audit log");
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
