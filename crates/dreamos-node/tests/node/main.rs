//! The node's behaviour through its HTTP API and its lifecycle.

mod agents;
mod api;
mod code;
mod discord;
mod holes;
mod lifecycle;
mod security;

use std::path::Path;
use std::time::Duration;

use dreamos_node::{Config, Overrides};

/// A configuration for a node in `dir` on a free loopback port.
pub fn config(dir: &Path, agents: usize) -> Config {
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".into()),
        agents: Some(agents),
        ..Overrides::default()
    };
    let mut config = Config::load(dir, None, overrides).unwrap();
    // The tests' source trees are temporary directories.
    config.workspace_roots.push(std::env::temp_dir().canonicalize().unwrap());
    config
}

/// Polls `check` until it holds or `limit` passes (a condition with a deadline, not a sleep).
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One HTTP request with a bearer token; the status and the JSON answer (null if none).
pub async fn http_call(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}
