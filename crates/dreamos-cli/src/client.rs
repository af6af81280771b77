//! The HTTP client the CLI uses to talk to a node, or to the first of several that answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A client of one or more nodes of a cluster. Requests go to the node that answered last; a
/// node that cannot be connected to (the request never left) is passed over for the next.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    bases: Arc<Vec<String>>,
    active: Arc<AtomicUsize>,
    token: String,
}

impl Client {
    /// A client of the nodes at `bases` (at least one); `ca_pem` is a certificate to trust
    /// besides the usual roots (a private CA, or a self-signed node).
    pub fn new(bases: &[String], token: String, ca_pem: Option<&[u8]>) -> Result<Self> {
        if bases.is_empty() {
            bail!("no node URL");
        }
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(120));
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .context("--ca-cert is not a PEM certificate")?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        let bases = bases.iter().map(|b| b.trim_end_matches('/').to_string()).collect();
        Ok(Self { http, bases: Arc::new(bases), active: Arc::new(AtomicUsize::new(0)), token })
    }

    /// The node requests go to now.
    pub fn base(&self) -> &str {
        &self.bases[self.active.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// How many nodes this client knows.
    pub fn nodes(&self) -> usize {
        self.bases.len()
    }

    /// Turns to the next node (one that said it is stopping is left for another), if there is
    /// another; whether it did.
    pub fn next_node(&self) -> bool {
        if self.bases.len() < 2 {
            return false;
        }
        self.active.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let first = self.active.load(Ordering::Relaxed);
        let mut unreachable = Vec::new();
        for i in 0..self.bases.len() {
            let at = (first + i) % self.bases.len();
            let base = &self.bases[at];
            let url = format!("{base}{path}");
            let mut request = self.http.request(method.clone(), &url).bearer_auth(&self.token);
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => {
                    if i > 0 {
                        self.active.store(at, Ordering::Relaxed);
                    }
                    return self.answer(response).await;
                }
                // Not connected: the request never reached that node, so another may take
                // it, whatever it is.
                Err(e) if e.is_connect() && !certificate_problem(&e) => {
                    unreachable.push(base.as_str())
                }
                Err(e) if certificate_problem(&e) => {
                    return Err(Lasting(format!(
                        "cannot verify the TLS certificate of {base}: pass --ca-cert FILE (or set DREAMOS_CA_CERT) to trust it"
                    ))
                    .into());
                }
                Err(e) => bail!("request to {url} failed: {e}"),
            }
        }
        bail!("cannot reach the node at {}: is `dreamos up` running?", unreachable.join(" or "))
    }

    async fn answer(&self, response: reqwest::Response) -> Result<Value> {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                Lasting(format!("the node answered with invalid JSON ({e}): {text}")).into()
            });
        }
        let detail: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = detail["code"].as_str().unwrap_or("http_error").to_string();
        let message =
            detail["message"].as_str().map(str::to_string).unwrap_or_else(|| text.clone());
        Err(Refused { status, code, message }.into())
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }
}

/// A node's answer that is not a success.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (message, code) = (&self.message, &self.code);
        if self.status == StatusCode::UNAUTHORIZED && message.contains("expired") {
            // The node told this token's holder why: the token is fine, only old.
            write!(f, "{message} ({code}); an admin makes one with `dreamos token create`")
        } else if self.status == StatusCode::UNAUTHORIZED {
            write!(
                f,
                "{message} ({code}): pass --token, set DREAMOS_TOKEN, or check DATA_DIR/admin.token"
            )
        } else {
            write!(f, "{message} ({code}, HTTP {})", self.status.as_u16())
        }
    }
}

impl std::error::Error for Refused {}

/// A failure that sending again will not cure (a certificate not trusted, an answer this
/// client cannot read).
#[derive(Debug)]
pub struct Lasting(pub String);

impl std::fmt::Display for Lasting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Lasting {}

/// Whether a failed request may succeed if sent again: the node could not be reached or
/// answered, or it was unavailable or overloaded (5xx, 429), rather than refusing the request.
pub fn transient(e: &anyhow::Error) -> bool {
    if e.downcast_ref::<Lasting>().is_some() {
        return false;
    }
    match e.downcast_ref::<Refused>() {
        Some(r) => r.status.is_server_error() || r.status == StatusCode::TOO_MANY_REQUESTS,
        None => true,
    }
}

fn certificate_problem(e: &reqwest::Error) -> bool {
    let chain = format!("{e:?}");
    chain.contains("Certificate") || chain.contains("certificate")
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
