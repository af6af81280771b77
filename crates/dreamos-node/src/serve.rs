//! Serving the API over a listener (TCP or TLS) with hyper's HTTP/1 connection, and the
//! limits a slow or greedy client meets before any handler runs:
//!
//! - a request head must arrive within `header_read_timeout_ms`, which also closes a
//!   connection idle between requests for that long (slowloris);
//! - one client address holds at most `max_connections_per_address` connections; more are
//!   closed at once;
//! - past `max_connections`, a small reserve of connections is served `/healthz` only (so a
//!   load balancer still sees a live node), and past that reserve new connections wait in the
//!   kernel's backlog.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tower::ServiceExt;

/// Connections served `/healthz` only, beyond `max_connections`.
pub const HEALTH_RESERVE: usize = 64;

/// The connection limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub per_address: usize,
    pub header_read_timeout: Duration,
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Open {
    total: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in [`Open`], given back when it closes.
struct Place {
    open: Arc<Open>,
    ip: IpAddr,
}

impl Open {
    /// A place for a connection from `ip`, unless that address holds `per_address` already.
    fn take(self: &Arc<Self>, ip: IpAddr, per_address: usize) -> Option<Place> {
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= per_address {
            return None;
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        Some(Place { open: self.clone(), ip })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.open.total.fetch_sub(1, Ordering::SeqCst);
        let mut map = self.open.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What a connection beyond `max_connections` is served: `/healthz`, and 503 for the rest.
fn health_only() -> Router {
    Router::new()
        .route(
            "/healthz",
            axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .fallback(|| async {
            crate::error::ApiError::new(
                dreamos_core::ErrorCode::Unavailable,
                "the node is at its connection limit; try again shortly",
            )
        })
}

/// Serves `app` on `listener` until `shutdown` turns true, then lets open connections finish
/// their requests (event streams end as the API closes) and returns when all have closed.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: ServeLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    L: Listener<Addr = SocketAddr>,
{
    let open = Arc::new(Open::default());
    let waiting = Arc::new(tokio::sync::Semaphore::new(limits.max_connections + HEALTH_RESERVE));
    let reserve = health_only();
    let (closing_tx, closing_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    loop {
        let permit = tokio::select! {
            p = waiting.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (io, addr) = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let Some(place) = open.take(addr.ip(), limits.per_address) else {
            tracing::debug!(client = %addr, "connection refused: too many from this address");
            continue;
        };
        let app = if open.total.load(Ordering::SeqCst) > limits.max_connections {
            reserve.clone()
        } else {
            app.clone()
        };
        let service = app.map_request(move |mut req: axum::http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(addr));
            req.map(Body::new)
        });
        let service = TowerToHyperService::new(service);
        let mut closing = closing_rx.clone();
        let done = done_rx.clone();
        let timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(client = %addr, error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
                }
            }
            drop((place, permit, done));
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}
