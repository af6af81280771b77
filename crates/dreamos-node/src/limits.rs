//! Rate limits: token buckets per client address (every request, before authentication) and
//! per token (after it), and a quota of task submissions per token and role. A request over a
//! limit is answered 429 `rate_limited` with `Retry-After`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dreamos_core::ErrorCode;

use crate::api::AppState;
use crate::error::ApiError;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by key.
#[derive(Default)]
pub struct Buckets {
    map: Mutex<HashMap<String, Bucket>>,
}

impl Buckets {
    /// Takes `n` from `key`'s bucket (refilled at `rate` per second up to `burst`), or answers
    /// how long until it could.
    pub fn take(&self, key: &str, n: f64, rate: f64, burst: f64) -> Result<(), Duration> {
        if rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            // Forget buckets that have been full for a while.
            map.retain(|_, b| now.duration_since(b.last) < Duration::from_secs(600));
        }
        let b = map.entry(key.to_string()).or_insert(Bucket { tokens: burst, last: now });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(burst);
        b.last = now;
        if b.tokens >= n {
            b.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((n - b.tokens) / rate).max(0.001)))
        }
    }
}

/// What the node limits, and the state of the buckets.
#[derive(Default)]
pub struct Limits {
    pub by_address: Buckets,
    pub by_token: Buckets,
    pub submissions: Buckets,
}

/// Bursts of twice the rate, and at least one request.
pub fn burst(rate: f64) -> f64 {
    (rate * 2.0).max(1.0)
}

pub fn too_many(what: &str, wait: Duration) -> ApiError {
    let mut e = ApiError::new(
        ErrorCode::RateLimited,
        format!("{what}; retry in {} ms", wait.as_millis().max(1)),
    );
    e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
    e
}

/// Per client address, before anything else.
pub async fn by_address(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let config = &state.config;
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let key = addr.ip().to_string();
        let rate = config.rate_limit_per_address;
        if let Err(wait) = state.limits.by_address.take(&key, 1.0, rate, burst(rate)) {
            return too_many("too many requests from this address", wait).into_response();
        }
    }
    let limit = std::time::Duration::from_millis(config.request_timeout_ms);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::Unavailable,
            format!("the request took longer than {} ms and was abandoned", limit.as_millis()),
        )
        .into_response(),
    }
}
