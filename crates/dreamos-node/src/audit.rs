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

/// Longest request target kept in an audit entry; longer ones are cut (and say so).
const MAX_TARGET: usize = 256;

fn truncated(path: String) -> String {
    if path.len() <= MAX_TARGET {
        return path;
    }
    let mut end = MAX_TARGET;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &path[..end], path.len())
}

/// Security events (refused credentials, denials) are coalesced: per client and reason, the
/// first in a minute is appended, the rest are counted and reported with the next one
/// appended, so a flood of bad requests cannot fill the disk through the audit log.
#[derive(Default)]
pub struct Coalescer {
    windows: Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
}

/// Keys remembered at most; past this the oldest windows are dropped.
const MAX_WINDOWS: usize = 10_000;
const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl Coalescer {
    /// `None`: counted, not appended. `Some(n)`: append, noting `n` suppressed since the last.
    pub fn admit(&self, key: String) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((start, suppressed)) = windows.get_mut(&key) {
            if now.duration_since(*start) < WINDOW {
                *suppressed += 1;
                return None;
            }
            let n = *suppressed;
            *start = now;
            *suppressed = 0;
            return Some(n);
        }
        if windows.len() >= MAX_WINDOWS {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if windows.len() >= MAX_WINDOWS {
                // Still full of live windows: everything new shares one.
                return self.admit_overflow(&mut windows, now);
            }
        }
        windows.insert(key, (now, 0));
        Some(0)
    }

    fn admit_overflow(
        &self,
        windows: &mut std::collections::HashMap<String, (std::time::Instant, u64)>,
        now: std::time::Instant,
    ) -> Option<u64> {
        let (start, suppressed) = windows.entry("*".into()).or_insert((now, 0));
        if now.duration_since(*start) < WINDOW && *suppressed > 0 {
            *suppressed += 1;
            return None;
        }
        *suppressed = 1;
        Some(0)
    }
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
        let mut detail = seen.refusal;
        let admitted = if security {
            let key = format!(
                "{actor}|{}|{action}|{}",
                client.as_deref().unwrap_or(""),
                detail.as_deref().unwrap_or("")
            );
            state.audit_coalescer.admit(key)
        } else {
            Some(0)
        };
        if let Some(suppressed) = admitted {
            if suppressed > 0 {
                let note = format!(
                    "{suppressed} more like this in the minute before, not logged one by one"
                );
                detail = Some(match detail {
                    Some(d) => format!("{d}; {note}"),
                    None => note,
                });
            }
            let entry = AuditEntry {
                request_id: id.clone(),
                actor,
                action,
                target: truncated(path),
                outcome: status.as_u16().to_string(),
                detail,
            };
            // The entry is committed before the answer leaves; an answer that cannot be
            // audited is not given.
            if let Err(e) = state.queue.store().audit(vec![entry]).await {
                tracing::error!(error = %e, request = %id, "AUDIT APPEND FAILED: the request is answered with an error");
                let error: crate::error::ApiError = e.into();
                let error = if error.code == dreamos_core::ErrorCode::Internal {
                    crate::error::ApiError::new(
                        dreamos_core::ErrorCode::Unavailable,
                        "the audit log could not be written: the request's effect is not confirmed",
                    )
                } else {
                    error
                };
                response = axum::response::IntoResponse::into_response(error);
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The audit chain's key, kept outside the store: `DATA_DIR/audit.key` (mode 0600) unless
/// `audit_key_file` names another (nodes sharing a store must share the file). Made on first
/// start: the second value is the new secret, in which case the caller must
/// [`record_legacy_head`] once the store is open.
pub fn load_or_make_key(
    path: &std::path::Path,
) -> anyhow::Result<(dreamos_store::AuditKey, Option<Vec<u8>>)> {
    use anyhow::Context;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut secret = None;
            let mut legacy = None;
            for line in text.lines() {
                match line.split_once(' ') {
                    Some(("secret", v)) => secret = hex::decode(v.trim()).ok(),
                    Some(("legacy_until", v)) => legacy = v.trim().parse::<i64>().ok(),
                    _ => {}
                }
            }
            let (Some(secret), Some(legacy)) = (secret, legacy) else {
                anyhow::bail!(
                    "{} is not an audit key file (secret HEX, legacy_until N)",
                    path.display()
                );
            };
            if secret.len() < 32 {
                anyhow::bail!("{}: the audit key must have at least 256 bits", path.display());
            }
            Ok((dreamos_store::AuditKey::new(&secret, legacy), None))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
            write_key(path, &secret, i64::MAX)
                .with_context(|| format!("cannot write the audit key {}", path.display()))?;
            Ok((dreamos_store::AuditKey::new(&secret, i64::MAX), Some(secret.to_vec())))
        }
        Err(e) => Err(anyhow::anyhow!("cannot read the audit key {}: {e}", path.display())),
    }
}

/// After a new key: entries already in the store predate it and stay unkeyed; every later
/// one must be keyed. Records that boundary in the key file.
pub async fn record_legacy_head(
    path: &std::path::Path,
    key: &dreamos_store::AuditKey,
    secret: &[u8],
    store: &std::sync::Arc<dyn dreamos_store::Store>,
) -> anyhow::Result<()> {
    let head = store
        .read_audit(dreamos_store::AuditFilter { limit: 1, newest: true, ..Default::default() })
        .await?
        .last()
        .map_or(0, |r| r.id);
    key.set_legacy_until(head);
    write_key(path, secret, head)?;
    Ok(())
}

fn write_key(path: &std::path::Path, secret: &[u8], legacy_until: i64) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("key.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(file, "secret {}\nlegacy_until {legacy_until}", hex::encode(secret))?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
