//! A local Discord for the tests. No machine here reaches Discord, so the bot is tested
//! against this: Discord's REST API under `/api/v10` (the routes the bot uses), enforcing
//! Discord's message and embed limits (an oversized embed fails as Discord fails it: `400`,
//! code 50035) and its rate limits (`429` with `retry_after` and the `X-RateLimit-*` headers,
//! injected on demand; a retry before the reset time is recorded as a violation); an Ed25519
//! signer that POSTs interactions to the bot's HTTP endpoint the way Discord does; and a record
//! of every request, with a way to wait for one without sleeping.
//!
//! Point twilight-http at it with `Client::builder().proxy(sim.rest_proxy(), true)`, and
//! twilight-gateway with `ConfigBuilder::proxy_url(sim.gateway_url())`.

mod gateway;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

/// The application the simulator plays.
pub const APPLICATION_ID: u64 = 1_100_000_000_000_000_001;
/// The guild interactions come from.
pub const GUILD_ID: u64 = 1_100_000_000_000_000_002;
/// The channel interactions come from, and a channel the bot may post to.
pub const CHANNEL_ID: u64 = 1_100_000_000_000_000_003;

/// Discord's answer deadlines.
pub const INITIAL_RESPONSE_DEADLINE: Duration = Duration::from_secs(3);
pub const INTERACTION_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// One request the bot made, as the simulator saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path below `/api/v10`, e.g. `/webhooks/{app}/{token}/messages/@original`.
    pub path: String,
    pub body: Value,
    /// The status the simulator answered.
    pub status: u16,
    pub authorization: Option<String>,
    /// Why the simulator refused it (a limit, a rate limit, an expired token), if it did.
    pub refusal: Option<String>,
}

struct RateLimit {
    path_contains: String,
    retry_after: Duration,
    /// Set when the 429 was sent: no request on the route may come before it.
    until: Option<Instant>,
}

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    changed: tokio::sync::watch::Sender<u64>,
    rate_limits: Mutex<Vec<RateLimit>>,
    /// Interaction tokens issued, with when: webhook calls after 15 minutes fail.
    tokens: Mutex<HashMap<String, Instant>>,
    violations: Mutex<Vec<String>>,
    next_id: AtomicU64,
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    gateway: Arc<gateway::Gateway>,
    shared: Arc<Shared>,
    key: Ed25519KeyPair,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Simulator {
    pub async fn start() -> Self {
        Self::with_heartbeat(41_250).await
    }

    /// With the gateway asking for heartbeats every `heartbeat_ms` (Discord: 41,250).
    pub async fn with_heartbeat(heartbeat_ms: u64) -> Self {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            changed: tokio::sync::watch::channel(0).0,
            rate_limits: Mutex::new(Vec::new()),
            tokens: Mutex::new(HashMap::new()),
            violations: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1_200_000_000_000_000_000),
        });
        let app = Router::new().fallback(rest).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let seed: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        let key = Ed25519KeyPair::from_seed_unchecked(&seed).expect("an Ed25519 seed");
        let gateway = gateway::Gateway::start(heartbeat_ms, shared.changed.clone()).await;
        Self { addr, gateway, shared, key, http: reqwest::Client::new(), server }
    }

    /// `ws://host:port` of the gateway.
    pub fn gateway_url(&self) -> String {
        self.gateway.url()
    }

    /// Sends an interaction over the gateway as `INTERACTION_CREATE` (kept and replayed on
    /// RESUME if the bot is away).
    pub fn gateway_interaction(&self, interaction: Value) {
        self.gateway.dispatch("INTERACTION_CREATE", interaction);
    }

    /// Asks the bot to reconnect (op 7).
    pub fn gateway_reconnect(&self) {
        self.gateway.send(json!({ "op": 7, "d": null }));
    }

    /// Tells the bot its session is invalid (op 9); not resumable: it must identify again.
    pub fn gateway_invalid_session(&self) {
        self.gateway.invalidate();
        self.gateway.send(json!({ "op": 9, "d": false }));
    }

    /// Stops answering the current connection's heartbeats (a zombie connection).
    pub fn gateway_silence_heartbeats(&self) {
        self.gateway.silence_heartbeats();
    }

    /// Closes the connection with a close code.
    pub fn gateway_close(&self, code: u16) {
        self.gateway.close(code);
    }

    /// What the bot did on the gateway: `connect`, `identify`, `resume`, `heartbeat`, ...
    pub fn gateway_log(&self) -> Vec<String> {
        self.gateway.state.lock().unwrap().log.clone()
    }

    /// Waits (up to 60 s) until the gateway log holds `count` entries equal to `what`.
    pub async fn wait_gateway(&self, what: &str, count: usize) {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.gateway_log().iter().filter(|e| *e == what).count() < count {
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                panic!(
                    "no {count} x `{what}` on the gateway within 60 s: {:?}",
                    self.gateway_log()
                );
            }
        }
    }

    /// `host:port` for twilight-http's `proxy(.., true)`.
    pub fn rest_proxy(&self) -> String {
        self.addr.to_string()
    }

    /// The application's public key, hex, as the Developer Portal shows it.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.public_key().as_ref())
    }

    /// The next request whose path contains `path_contains` is answered `429` with
    /// `retry_after`; any request on it before that time has passed is a violation.
    pub fn inject_rate_limit(&self, path_contains: &str, retry_after: Duration) {
        self.shared.rate_limits.lock().unwrap().push(RateLimit {
            path_contains: path_contains.into(),
            retry_after,
            until: None,
        });
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Requests that broke Discord's rules (a retry before `retry_after`).
    pub fn violations(&self) -> Vec<String> {
        self.shared.violations.lock().unwrap().clone()
    }

    /// Waits (up to 60 s, then panics naming `what`) for a request matching `matches`.
    pub async fn wait_for(&self, what: &str, matches: impl Fn(&Recorded) -> bool) -> Recorded {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(r) = self.requests().into_iter().find(|r| matches(r)) {
                return r;
            }
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                panic!("no request for {what} within 60 s; saw {:#?}", self.requests());
            }
        }
    }

    /// A slash-command interaction shaped like Discord's: `/name` with `options` (Discord's
    /// option objects), from a guild member with `roles`.
    pub fn command(&self, name: &str, options: Value, roles: &[u64]) -> Value {
        let data = json!({
            "id": "1100000000000000100",
            "name": name,
            "type": 1,
            "options": options,
            "guild_id": GUILD_ID.to_string(),
        });
        self.interaction(2, data, roles)
    }

    /// An autocomplete request for `/name`, the `focused` option holding what was typed.
    pub fn autocomplete(&self, name: &str, options: Value, roles: &[u64]) -> Value {
        let data =
            json!({ "id": "1100000000000000100", "name": name, "type": 1, "options": options });
        self.interaction(4, data, roles)
    }

    /// A button press on a message the bot sent.
    pub fn button(&self, custom_id: &str, roles: &[u64]) -> Value {
        self.interaction(3, json!({ "custom_id": custom_id, "component_type": 2 }), roles)
    }

    /// A PING, as Discord sends to check an endpoint.
    pub fn ping(&self) -> Value {
        let mut ping = self.interaction(1, Value::Null, &[]);
        let map = ping.as_object_mut().expect("object");
        for field in ["data", "member", "guild_id", "channel", "channel_id"] {
            map.remove(field);
        }
        ping
    }

    fn interaction(&self, kind: u8, data: Value, roles: &[u64]) -> Value {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let token = format!("itoken-{id}");
        self.shared.tokens.lock().unwrap().insert(token.clone(), Instant::now());
        json!({
            "id": id.to_string(),
            "application_id": APPLICATION_ID.to_string(),
            "type": kind,
            "data": data,
            "guild_id": GUILD_ID.to_string(),
            "channel": { "id": CHANNEL_ID.to_string(), "type": 0 },
            "channel_id": CHANNEL_ID.to_string(),
            "member": {
                "user": user(),
                "roles": roles.iter().map(u64::to_string).collect::<Vec<_>>(),
                "permissions": "2147483647",
                "joined_at": "2026-01-01T00:00:00.000000+00:00",
                "deaf": false,
                "mute": false,
                "flags": 0,
                "nick": null,
                "communication_disabled_until": null,
                "premium_since": null,
                "avatar": null,
            },
            "token": token,
            "version": 1,
            "locale": "en-US",
            "guild_locale": "en-US",
            "app_permissions": "2147483647",
            "entitlements": [],
            "authorizing_integration_owners": { "0": GUILD_ID.to_string() },
            "context": 0,
            "attachment_size_limit": 10485760,
        })
    }

    /// POSTs a signed interaction to the bot's endpoint, as Discord does; returns the status,
    /// the answer, and how long the answer took (Discord gives up after 3 s).
    pub async fn deliver(&self, endpoint: &str, interaction: &Value) -> (u16, Value, Duration) {
        let body = serde_json::to_vec(interaction).expect("JSON");
        let timestamp = format!("{}", 1_790_000_000u64);
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(&body);
        let signature = hex::encode(self.key.sign(&signed).as_ref());
        self.post(endpoint, body, &signature, &timestamp).await
    }

    /// The same, with a signature that does not verify (Discord sends these on purpose).
    pub async fn deliver_forged(&self, endpoint: &str, interaction: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(interaction).expect("JSON");
        let forged = hex::encode([7u8; 64]);
        let (status, answer, _) = self.post(endpoint, body, &forged, "1790000000").await;
        (status, answer)
    }

    async fn post(
        &self,
        endpoint: &str,
        body: Vec<u8>,
        signature: &str,
        timestamp: &str,
    ) -> (u16, Value, Duration) {
        let started = Instant::now();
        let response = self
            .http
            .post(endpoint)
            .header("content-type", "application/json")
            .header("x-signature-ed25519", signature)
            .header("x-signature-timestamp", timestamp)
            .timeout(INITIAL_RESPONSE_DEADLINE)
            .body(body)
            .send()
            .await
            .expect("the endpoint answers within Discord's 3 s");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, started.elapsed())
    }
}

fn user() -> Value {
    json!({
        "id": "1100000000000000200",
        "username": "ada",
        "global_name": "Ada",
        "discriminator": "0",
        "avatar": null,
        "public_flags": 0,
    })
}

// ---------------------------------------------------------------------------------------------
// REST

async fn rest(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix("/api/v10").unwrap_or(uri.path()).to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, answer, refusal, extra) = answer(&shared, &method, &path, &body);
    shared.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path,
        body,
        status: status.as_u16(),
        authorization,
        refusal,
    });
    shared.changed.send_modify(|n| *n += 1);
    let mut response = (status, axum::Json(answer)).into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().expect("a header value"));
    }
    response
}

type Answer = (StatusCode, Value, Option<String>, Vec<(&'static str, String)>);

fn answer(shared: &Shared, method: &Method, path: &str, body: &Value) -> Answer {
    if let Some(limited) = rate_limited(shared, path) {
        return limited;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let id = || shared.next_id.fetch_add(1, Ordering::Relaxed).to_string();
    match (method.as_str(), segments.as_slice()) {
        ("PUT", ["applications", _, "commands"])
        | ("PUT", ["applications", _, "guilds", _, "commands"]) => match check_commands(body) {
            Ok(()) => {
                let mut commands = body.as_array().cloned().unwrap_or_default();
                for c in &mut commands {
                    c["id"] = json!(id());
                    c["application_id"] = json!(APPLICATION_ID.to_string());
                    c["version"] = json!("1");
                }
                (StatusCode::OK, Value::Array(commands), None, vec![])
            }
            Err(e) => invalid(e),
        },
        ("POST", ["interactions", _, token, "callback"]) => {
            let data = &body["data"];
            let issued = shared.tokens.lock().unwrap().get(*token).copied();
            if issued.is_none_or(|at| at.elapsed() > INITIAL_RESPONSE_DEADLINE) {
                // Discord forgets an interaction not answered within 3 s.
                return (
                    StatusCode::NOT_FOUND,
                    json!({ "message": "Unknown interaction", "code": 10062 }),
                    Some("the interaction was not answered within 3 s".into()),
                    vec![],
                );
            }
            match check_message(data) {
                Ok(()) => (StatusCode::NO_CONTENT, Value::Null, None, vec![]),
                Err(e) => invalid(e),
            }
        }
        ("PATCH", ["webhooks", _, token, "messages", _]) | ("POST", ["webhooks", _, token]) => {
            match token_alive(shared, token).and_then(|()| check_message(body)) {
                Ok(()) => (StatusCode::OK, message(body, id()), None, vec![]),
                Err(e) => invalid(e),
            }
        }
        ("POST", ["channels", _, "messages"]) | ("PATCH", ["channels", _, "messages", _]) => {
            match check_message(body) {
                Ok(()) => (StatusCode::OK, message(body, id()), None, vec![]),
                Err(e) => invalid(e),
            }
        }
        ("GET", ["gateway"]) | ("GET", ["gateway", "bot"]) => {
            (StatusCode::OK, json!({ "url": "ws://127.0.0.1:1", "shards": 1 }), None, vec![])
        }
        _ => (
            StatusCode::NOT_FOUND,
            json!({ "message": "404: Not Found", "code": 0 }),
            Some("unknown route".into()),
            vec![],
        ),
    }
}

fn rate_limited(shared: &Shared, path: &str) -> Option<Answer> {
    let mut limits = shared.rate_limits.lock().unwrap();
    let now = Instant::now();
    let i = limits.iter().position(|l| path.contains(&l.path_contains))?;
    let limit = &mut limits[i];
    match limit.until {
        Some(until) if now < until => {
            let early = format!("{path} retried {:?} before its reset", until - now);
            shared.violations.lock().unwrap().push(early.clone());
            Some(too_many(until - now, early))
        }
        Some(_) => {
            limits.remove(i);
            None
        }
        None => {
            limit.until = Some(now + limit.retry_after);
            Some(too_many(limit.retry_after, "rate limited (injected)".into()))
        }
    }
}

fn too_many(wait: Duration, why: String) -> Answer {
    let secs = wait.as_secs_f64();
    (
        StatusCode::TOO_MANY_REQUESTS,
        json!({ "message": "You are being rate limited.", "retry_after": secs, "global": false }),
        Some(why),
        vec![
            ("retry-after", format!("{}", secs.ceil() as u64)),
            ("x-ratelimit-limit", "5".into()),
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset-after", format!("{secs:.3}")),
            ("x-ratelimit-bucket", "sim-bucket".into()),
            ("x-ratelimit-scope", "user".into()),
        ],
    )
}

fn invalid(reason: String) -> Answer {
    (
        StatusCode::BAD_REQUEST,
        json!({ "message": "Invalid Form Body", "code": 50035, "errors": { "_errors": [{ "code": "BASE_TYPE_INVALID", "message": reason }] } }),
        Some(reason),
        vec![],
    )
}

fn message(body: &Value, id: String) -> Value {
    let mut m = body.clone();
    if !m.is_object() {
        m = json!({});
    }
    m["id"] = json!(id);
    m["channel_id"] = json!(CHANNEL_ID.to_string());
    m
}

fn token_alive(shared: &Shared, token: &str) -> Result<(), String> {
    match shared.tokens.lock().unwrap().get(token) {
        Some(issued) if issued.elapsed() <= INTERACTION_TOKEN_LIFETIME => Ok(()),
        Some(_) => Err("the interaction token has expired (15 minutes)".into()),
        None => Err(format!("unknown interaction token `{token}`")),
    }
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Discord's message limits: content 2,000; at most 10 embeds; per embed a title of 256, a
/// description of 4,096, 25 fields (name 256, value 1,024), a footer of 2,048; 6,000 in all.
pub fn check_message(m: &Value) -> Result<(), String> {
    if chars(&m["content"]) > 2_000 {
        return Err(format!("content is {} characters (at most 2000)", chars(&m["content"])));
    }
    let embeds = m["embeds"].as_array().cloned().unwrap_or_default();
    if embeds.len() > 10 {
        return Err(format!("{} embeds (at most 10)", embeds.len()));
    }
    let mut total = 0;
    for (i, e) in embeds.iter().enumerate() {
        let fields = e["fields"].as_array().cloned().unwrap_or_default();
        let checks = [
            ("title", chars(&e["title"]), 256),
            ("description", chars(&e["description"]), 4_096),
            ("footer", chars(&e["footer"]["text"]), 2_048),
            ("author", chars(&e["author"]["name"]), 256),
            ("fields", fields.len(), 25),
        ];
        for (what, n, max) in checks {
            if n > max {
                return Err(format!("embeds[{i}].{what} is {n} long (at most {max})"));
            }
        }
        for (j, f) in fields.iter().enumerate() {
            if chars(&f["name"]) > 256 || chars(&f["value"]) > 1_024 {
                return Err(format!("embeds[{i}].fields[{j}] is too long (name 256, value 1024)"));
            }
            if chars(&f["name"]) == 0 || chars(&f["value"]) == 0 {
                return Err(format!("embeds[{i}].fields[{j}] has an empty name or value"));
            }
            total += chars(&f["name"]) + chars(&f["value"]);
        }
        total += ["title", "description"].iter().map(|k| chars(&e[*k])).sum::<usize>()
            + chars(&e["footer"]["text"])
            + chars(&e["author"]["name"]);
    }
    if total > 6_000 {
        return Err(format!("the embeds hold {total} characters (at most 6000)"));
    }
    let rows = m["components"].as_array().map_or(0, Vec::len);
    if rows > 5 {
        return Err(format!("{rows} component rows (at most 5)"));
    }
    Ok(())
}

/// Command registration limits: names 1-32 lowercase characters, descriptions 1-100, at most
/// 100 commands, 25 options each.
pub fn check_commands(body: &Value) -> Result<(), String> {
    let commands = body.as_array().ok_or("a list of commands")?;
    if commands.len() > 100 {
        return Err("more than 100 commands".into());
    }
    fn check(c: &Value, at: &str) -> Result<(), String> {
        let name = c["name"].as_str().unwrap_or_default();
        let valid = (1..=32).contains(&name.chars().count())
            && name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_".contains(ch));
        if !valid {
            return Err(format!("{at}: invalid name `{name}`"));
        }
        let description = chars(&c["description"]);
        if !(1..=100).contains(&description) {
            return Err(format!("{at}.{name}: description of {description} characters (1-100)"));
        }
        let options = c["options"].as_array().cloned().unwrap_or_default();
        if options.len() > 25 {
            return Err(format!("{at}.{name}: more than 25 options"));
        }
        options.iter().try_for_each(|o| check(o, &format!("{at}.{name}")))
    }
    commands.iter().try_for_each(|c| check(c, "commands"))
}
