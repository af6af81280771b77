//! The HTTP client the CLI uses to talk to a node.

use anyhow::{Context, Result, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client of the node at `base`; `ca_pem` is a certificate to trust besides the usual
    /// roots (a private CA, or a self-signed node).
    pub fn new(base: &str, token: String, ca_pem: Option<&[u8]>) -> Result<Self> {
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(120));
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .context("--ca-cert is not a PEM certificate")?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        Ok(Self { http, base: base.trim_end_matches('/').to_string(), token })
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            let chain = format!("{e:?}");
            if chain.contains("Certificate") || chain.contains("certificate") {
                anyhow!(
                    "cannot verify the TLS certificate of {}: pass --ca-cert FILE (or set DREAMOS_CA_CERT) to trust it",
                    self.base
                )
            } else if chain.contains("Connect") {
                anyhow!("cannot reach the node at {}: is `dreamos up` running?", self.base)
            } else {
                anyhow!("request to {url} failed: {e}")
            }
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text)
                .with_context(|| format!("the node answered with invalid JSON: {text}"));
        }
        let detail: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = detail["code"].as_str().unwrap_or("http_error");
        let message =
            detail["message"].as_str().map(str::to_string).unwrap_or_else(|| text.clone());
        if status == StatusCode::UNAUTHORIZED {
            bail!(
                "{message} ({code}): pass --token, set DREAMOS_TOKEN, or check DATA_DIR/admin.token"
            );
        }
        bail!("{message} ({code}, HTTP {})", status.as_u16())
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }
}
