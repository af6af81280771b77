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

/// A listener that holds at most `max` connections open: past it, new connections wait in
/// the kernel's backlog until one closes.
pub struct LimitedListener<L> {
    inner: L,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

impl<L> LimitedListener<L> {
    pub fn new(inner: L, max: usize) -> Self {
        Self { inner, permits: std::sync::Arc::new(tokio::sync::Semaphore::new(max.max(1))) }
    }
}

/// A connection holding its place under the limit until it is dropped.
pub struct Limited<T> {
    io: T,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<L: axum::serve::Listener> axum::serve::Listener for LimitedListener<L> {
    type Io = Limited<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit =
            self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (io, addr) = self.inner.accept().await;
        (Limited { io, _permit: permit }, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

type Pinned<'a, T> = std::pin::Pin<&'a mut Limited<T>>;

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Limited<T> {
    fn poll_read(
        self: Pinned<'_, T>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Limited<T> {
    fn poll_write(
        self: Pinned<'_, T>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(
        self: Pinned<'_, T>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: Pinned<'_, T>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pinned<'_, T>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
