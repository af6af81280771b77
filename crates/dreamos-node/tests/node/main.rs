//! The node's behaviour through its HTTP API and its lifecycle.

mod agents;
mod api;
mod code;
mod discord;
mod feed;
mod holes;
mod lifecycle;
mod readiness;
mod security;

use std::path::Path;
use std::time::Duration;

use dreamos_node::{Config, Node, Overrides};

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

/// A node started for a test, with an HTTP client, its URL and its admin token.
pub struct Api {
    pub node: Node,
    pub http: reqwest::Client,
    pub base: String,
    pub admin: String,
}

impl Api {
    pub async fn start(cfg: Config) -> Self {
        let node = Node::start(cfg).await.unwrap();
        let admin = std::fs::read_to_string(&node.admin_token_path).unwrap().trim().to_string();
        let base = format!("http://{}", node.addr);
        Self { node, http: reqwest::Client::new(), base, admin }
    }

    pub async fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        http_call(&self.http, &self.base, token, method, path, body).await
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        self.call(token, "GET", path, None).await
    }

    pub async fn post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call(token, "POST", path, Some(body)).await
    }

    /// A token issued by `by`; answers (id, token).
    pub async fn token_by(&self, by: &str, body: serde_json::Value) -> (String, String) {
        let (status, v) = self.post(by, "/api/v1/tokens", body).await;
        assert_eq!(status, 201, "{v}");
        (v["id"].as_str().unwrap().into(), v["token"].as_str().unwrap().into())
    }

    /// A token issued by the admin; answers (id, token).
    pub async fn token(&self, body: serde_json::Value) -> (String, String) {
        self.token_by(&self.admin, body).await
    }

    /// The audit log's entries, oldest first.
    pub async fn audit(&self) -> Vec<serde_json::Value> {
        let (_, v) = self.get(&self.admin, "/api/v1/audit?limit=1000").await;
        v["entries"].as_array().unwrap().clone()
    }
}
