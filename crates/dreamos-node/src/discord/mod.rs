//! The Discord bot: the HTTP interactions endpoint (`POST /discord/interactions`, Ed25519
//! signatures checked with the application's public key), the command pipeline it feeds
//! (parse -> authorise by the member's Discord roles -> act through the node's own API ->
//! render within Discord's limits), follow-ups by editing the original reply, and
//! notifications to a channel, coalesced so a burst does not spam it.
//!
//! Discord is reached with twilight-http; `discord_api` points it elsewhere (the tests'
//! simulator). The bot token never appears in logs or in `config show`.

mod cards;
pub mod commands;
mod components;
mod outbound;
pub mod render;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dreamos_store::AuditEntry;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tower::ServiceExt;
use twilight_model::application::command::{CommandOptionChoice, CommandOptionChoiceValue};
use twilight_model::application::interaction::{Interaction, InteractionData, InteractionType};
use twilight_model::http::interaction::{
    InteractionResponse, InteractionResponseData, InteractionResponseType,
};
use twilight_model::id::Id;

use self::cards::{analysis_card, dependents_card, finished, task_reply};
use self::commands::Invocation;
pub use self::outbound::register;
use self::outbound::{client, notifier, patiently};
use self::render::{Card, Reply};
use crate::api::AppState;
use crate::auth::{Principal, Role};
use crate::config::DiscordConfig;

/// Work that may take longer than this answers "deferred" first (Discord allows 3 s).
const INLINE_WAIT: Duration = Duration::from_millis(2_000);
/// Interaction tokens live 15 minutes: follow-ups stop before that.
const FOLLOW_UP_FOR: Duration = Duration::from_secs(14 * 60);
/// Notifications arriving within this window go out as one message.
const COALESCE: Duration = Duration::from_secs(1);
/// Search hits per page.
const PAGE: usize = 5;
/// Label of the API tokens a node's bot acts with (re-issued at every start; one label per
/// node, so nodes sharing a store do not revoke each other's).
fn token_label(node_id: &str) -> String {
    format!("discord-bot@{node_id}")
}

/// Who invoked a command.
#[derive(Debug, Clone)]
struct Member {
    id: u64,
    name: String,
    roles: Vec<u64>,
}

#[derive(Debug, Clone)]
struct SearchArgs {
    query: String,
    workspace: Option<String>,
}

/// The bot. One per node, when Discord is configured.
pub struct Discord {
    config: DiscordConfig,
    http: twilight_http::Client,
    public_key: Option<Vec<u8>>,
    /// The node's API without this bot in it (no reference cycle).
    api: OnceLock<Router>,
    /// This node's id, for the bot's own principal.
    node_id: String,
    searches: Mutex<(HashMap<u64, SearchArgs>, VecDeque<u64>)>,
    next_search: AtomicU64,
    notices: tokio::sync::mpsc::UnboundedSender<String>,
    /// For audit entries of Discord commands.
    store: Arc<dyn dreamos_store::Store>,
}

impl Discord {
    /// Sets the bot up: revokes the API tokens earlier versions of this node's bot issued
    /// (members act as principals of their own now, with no shared tokens) and starts the
    /// notification worker.
    pub async fn start(
        config: DiscordConfig,
        store: &Arc<dyn dreamos_store::Store>,
        node_id: &str,
    ) -> anyhow::Result<Arc<Self>> {
        let label = token_label(node_id);
        for old in store.list_tokens().await? {
            if old.label == label && old.revoked_at_ms.is_none() {
                store.revoke_token(&old.id).await?;
            }
        }
        let public_key = config.public_key.as_deref().map(hex::decode).transpose()?;
        let (notices, queue) = tokio::sync::mpsc::unbounded_channel();
        let bot = Arc::new(Self {
            http: client(&config),
            config,
            public_key,
            api: OnceLock::new(),
            node_id: node_id.to_string(),
            searches: Mutex::new((HashMap::new(), VecDeque::new())),
            next_search: AtomicU64::new(1),
            notices,
            store: store.clone(),
        });
        tokio::spawn(notifier(Arc::downgrade(&bot), queue));
        Ok(bot)
    }

    /// Gives the bot the API it acts through.
    pub fn attach(&self, state: &AppState) {
        let mut inner = state.clone();
        inner.discord = None;
        let _ = self.api.set(crate::api::router(inner));
    }

    /// A member acting with `role`: a principal of its own (submitter, audit actor and
    /// rate-limit key), keyed by the member's Discord id.
    fn principal(&self, member: &Member, role: Role) -> Principal {
        Principal {
            token_id: format!("discord-{}", member.id),
            role,
            label: format!("discord:{}", member.name.replace([':', '#'], "_")),
            workspaces: None,
        }
    }

    /// The bot itself, for its own reads (task states for follow-ups, the status for alerts):
    /// a viewer, which changes nothing.
    fn itself(&self) -> Principal {
        Principal {
            token_id: token_label(&self.node_id),
            role: Role::Viewer,
            label: token_label(&self.node_id),
            workspaces: None,
        }
    }

    /// The highest Dream.OS role the member's Discord roles give.
    fn role_of(&self, member: &Member) -> Option<Role> {
        member.roles.iter().filter_map(|r| self.config.roles.get(r).copied()).max()
    }

    /// Checks Discord's Ed25519 signature over `timestamp || body`.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let Some(key) = &self.public_key else { return false };
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(signature), Some(timestamp)) =
            (get("x-signature-ed25519"), get("x-signature-timestamp"))
        else {
            return false;
        };
        let Ok(signature) = hex::decode(signature) else { return false };
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(body);
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(&signed, &signature)
            .is_ok()
    }

    /// Calls the node's API in process as `who` (no token: the principal rides in the
    /// request's extensions, which only code in this process can set); the API and the
    /// service layer check it like any caller. An error answer becomes its message.
    async fn call(
        &self,
        who: &Principal,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let Some(router) = self.api.get().cloned() else {
            return Err("the bot is starting; try again".into());
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .extension(crate::api::InProcess(who.clone()));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty))
            .map_err(|e| e.to_string())?;
        let response = match router.oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(value["message"].as_str().unwrap_or("the request failed").to_string())
        }
    }

    /// Answers one interaction (from the HTTP endpoint or the gateway).
    pub async fn handle(self: &Arc<Self>, interaction: Interaction) -> InteractionResponse {
        let member = member_of(&interaction);
        match (interaction.kind, interaction.data) {
            (InteractionType::Ping, _) => {
                InteractionResponse { kind: InteractionResponseType::Pong, data: None }
            }
            (InteractionType::ApplicationCommand, Some(InteractionData::ApplicationCommand(d))) => {
                let invocation = Invocation::parse(&d.name, &d.options);
                self.command(&member, invocation, interaction.token, interaction.id.get()).await
            }
            (
                InteractionType::ApplicationCommandAutocomplete,
                Some(InteractionData::ApplicationCommand(d)),
            ) => {
                let invocation = Invocation::parse(&d.name, &d.options);
                self.autocomplete(&member, &invocation).await
            }
            (InteractionType::MessageComponent, Some(InteractionData::MessageComponent(d))) => {
                self.button(&member, &d.custom_id).await
            }
            _ => render::message(&Reply::private("This kind of interaction is not supported.")),
        }
    }

    async fn command(
        self: &Arc<Self>,
        member: &Member,
        invocation: Invocation,
        token: String,
        interaction_id: u64,
    ) -> InteractionResponse {
        let Some(needed) = invocation.least_role() else {
            return render::message(&Reply::private(format!(
                "Unknown command `{}`. Try `/help`.",
                invocation.label()
            )));
        };
        let role = self.role_of(member);
        let allowed = role.is_some_and(|r| r.allows(needed));
        if !allowed || needed >= Role::Operator {
            self.audit(member, &invocation, interaction_id, allowed).await;
        }
        if !allowed {
            return render::message(&Reply::private(format!(
                "`{}` needs the {needed} role; yours is {}.",
                invocation.label(),
                role.map_or("none".to_string(), |r| r.to_string())
            )));
        }
        let who = self.principal(member, role.expect("allowed"));
        match self.run(member, &who, &invocation).await {
            Step::Now(reply) => render::message(&reply),
            Step::Later(work) => {
                let bot = self.clone();
                tokio::spawn(async move {
                    let reply = work(bot.clone(), token.clone()).await;
                    bot.edit(&token, &reply).await;
                });
                render::deferred()
            }
        }
    }

    async fn audit(&self, member: &Member, invocation: &Invocation, id: u64, allowed: bool) {
        let entry = AuditEntry {
            request_id: format!("discord-{id}"),
            actor: format!("discord:{}({})", member.id, member.name),
            action: if allowed {
                format!("discord {}", invocation.label())
            } else {
                format!("denied discord {}", invocation.label())
            },
            target: invocation.args.values().cloned().collect::<Vec<_>>().join(" "),
            outcome: if allowed { "ok" } else { "403" }.into(),
            detail: None,
        };
        if let Err(e) = self.store.audit(vec![entry]).await {
            tracing::error!(error = %e, "AUDIT APPEND FAILED for a Discord command");
        }
    }

    async fn run(self: &Arc<Self>, member: &Member, who: &Principal, inv: &Invocation) -> Step {
        let arg = |name: &str| inv.arg(name).map(str::to_owned);
        let failed = |e: String| Step::Now(Reply::private(e));
        match (inv.name.as_str(), inv.sub.as_deref()) {
            ("help", _) => Step::Now(commands::help()),
            ("system", Some(sub)) => {
                let status = self.call(who, "GET", "/api/v1/status", None).await;
                let agents = self.call(who, "GET", "/api/v1/agents", None).await;
                let (status, agents) = match (status, agents) {
                    (Ok(s), Ok(a)) => (s, a),
                    (Err(e), _) | (_, Err(e)) => return failed(e),
                };
                if sub == "status" {
                    return Step::Now(Reply::card(commands::system_card(&status, &agents)));
                }
                let alerts = self.alerts(&status, &agents);
                let text = if alerts.is_empty() {
                    "No alerts.".to_string()
                } else {
                    alerts.iter().map(|a| format!("• {a}")).collect::<Vec<_>>().join("\n")
                };
                Step::Now(Reply::card(Card {
                    title: "Alerts".into(),
                    description: text,
                    color: Some(if alerts.is_empty() { render::GREEN } else { render::RED }),
                    ..Card::default()
                }))
            }
            ("agent", Some("status")) => match arg("agent") {
                Some(a) => {
                    match self.call(who, "GET", &format!("/api/v1/agents/{}", enc(&a)), None).await
                    {
                        Ok(v) => Step::Now(Reply::card(commands::agent_card(&v))),
                        Err(e) => failed(e),
                    }
                }
                None => match self.call(who, "GET", "/api/v1/agents", None).await {
                    Ok(v) => Step::Now(Reply::card(commands::agents_card(&v))),
                    Err(e) => failed(e),
                },
            },
            ("agent", Some(action @ ("drain" | "resume"))) => {
                let a = arg("agent").unwrap_or_default();
                let path = format!("/api/v1/agents/{}/{action}", enc(&a));
                match self.call(who, "POST", &path, None).await {
                    Ok(v) => Step::Now(Reply::card(commands::agent_card(&v))),
                    Err(e) => failed(e),
                }
            }
            ("agent", Some("message")) => {
                let a = arg("agent").unwrap_or_default();
                let body = json!({ "text": arg("text").unwrap_or_default(), "wait_ms": 1_500 });
                let path = format!("/api/v1/agents/{}/messages", enc(&a));
                match self.call(who, "POST", &path, Some(body)).await {
                    Ok(v) if !v["reply"].is_null() => {
                        let text = v["reply"]["body"]["text"]
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v["reply"]["body"].to_string());
                        Step::Now(Reply::text(render::clip(
                            &format!("**{a}** replied: {text}"),
                            2_000,
                        )))
                    }
                    Ok(_) => Step::Now(Reply::text(format!("Sent to **{a}**; no reply yet."))),
                    Err(e) => failed(e),
                }
            }
            ("agent", Some("broadcast")) => {
                let body = json!({ "text": arg("text").unwrap_or_default() });
                match self.call(who, "POST", "/api/v1/agents/broadcast", Some(body)).await {
                    Ok(v) => Step::Now(Reply::text(format!(
                        "Sent to {} agent(s).",
                        v["ids"].as_array().map_or(0, Vec::len)
                    ))),
                    Err(e) => failed(e),
                }
            }
            ("task", Some("submit")) => {
                let payload = match arg("payload") {
                    None => json!({}),
                    Some(p) => match serde_json::from_str::<Value>(&p) {
                        Ok(v) => v,
                        Err(e) => return failed(format!("The payload is not JSON: {e}")),
                    },
                };
                let mut body =
                    json!({ "kind": arg("kind").unwrap_or_default(), "payload": payload });
                if let Some(p) = arg("priority") {
                    body["priority"] = json!(p);
                }
                // The member's own rights: `exec` stays admin-only.
                match self.call(who, "POST", "/api/v1/tasks", Some(body)).await {
                    Ok(v) => {
                        let id = v["task"]["id"].as_i64().unwrap_or_default();
                        self.follow(id, Some(member.clone()), None).await
                    }
                    Err(e) => failed(e),
                }
            }
            ("task", Some("list")) => {
                let mut path = "/api/v1/tasks?limit=15".to_string();
                if let Some(s) = arg("state") {
                    path.push_str(&format!("&state={}", enc(&s)));
                }
                match self.call(who, "GET", &path, None).await {
                    Ok(v) => {
                        let lines: Vec<String> = v["tasks"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|t| {
                                format!(
                                    "`#{}` {} · **{}** · {}",
                                    t["id"],
                                    t["kind"].as_str().unwrap_or("?"),
                                    t["state"].as_str().unwrap_or("?"),
                                    t["submitter"].as_str().unwrap_or("?")
                                )
                            })
                            .collect();
                        Step::Now(Reply::card(Card {
                            title: "Tasks".into(),
                            description: if lines.is_empty() {
                                "None.".into()
                            } else {
                                lines.join("\n")
                            },
                            color: Some(render::BLUE),
                            ..Card::default()
                        }))
                    }
                    Err(e) => failed(e),
                }
            }
            ("task", Some(action @ ("status" | "cancel" | "retry"))) => {
                let id = arg("id").unwrap_or_default();
                let (method, path) = match action {
                    "status" => ("GET", format!("/api/v1/tasks/{}", enc(&id))),
                    _ => ("POST", format!("/api/v1/tasks/{}/{action}", enc(&id))),
                };
                match self.call(who, method, &path, None).await {
                    Ok(v) => Step::Now(Reply::card(commands::task_card(&v))),
                    Err(e) => failed(e),
                }
            }
            ("search", None) => {
                let mut query = arg("query").unwrap_or_default();
                if let Some(l) = arg("lang") {
                    query.push_str(&format!(" lang:{l}"));
                }
                if let Some(p) = arg("path") {
                    query.push_str(&format!(" path:{p}"));
                }
                let search = SearchArgs { query, workspace: arg("workspace") };
                self.search(who, search, 0).await
            }
            ("index", None) => {
                let w = arg("workspace").unwrap_or_default();
                let path = format!("/api/v1/workspaces/{}/index", enc(&w));
                match self.call(who, "POST", &path, None).await {
                    Ok(v) => {
                        let id = v["task"]["id"].as_i64().unwrap_or_default();
                        self.follow(id, None, Some(format!("Indexing **{w}**"))).await
                    }
                    Err(e) => failed(e),
                }
            }
            ("analyze", None) => {
                let w = arg("workspace").unwrap_or_default();
                let metrics = json!({ "kind": "analyze", "payload": { "workspace": w, "what": "metrics", "top": 10 } });
                let cycles = json!({ "kind": "analyze", "payload": { "workspace": w, "what": "cycles", "top": 10 } });
                let batch = json!({ "tasks": [metrics, cycles] });
                match self.call(who, "POST", "/api/v1/tasks/batch", Some(batch)).await {
                    Ok(v) => {
                        let ids: Vec<i64> = v["tasks"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|t| t["id"].as_i64())
                            .collect();
                        self.gather(ids, move |results| analysis_card(&w, results)).await
                    }
                    Err(e) => failed(e),
                }
            }
            ("deps", None) => {
                let target = arg("target").unwrap_or_default();
                let workspace = match arg("workspace") {
                    Some(w) => w,
                    None => match self.only_workspace(who).await {
                        Ok(w) => w,
                        Err(e) => return failed(e),
                    },
                };
                let task = json!({ "kind": "analyze", "payload": { "workspace": workspace, "what": "dependents", "target": target } });
                match self.call(who, "POST", "/api/v1/tasks", Some(task)).await {
                    Ok(v) => {
                        let id = v["task"]["id"].as_i64().unwrap_or_default();
                        self.gather(vec![id], move |results| dependents_card(&target, results))
                            .await
                    }
                    Err(e) => failed(e),
                }
            }
            _ => failed(format!("Unknown command `{}`.", inv.label())),
        }
    }

    async fn only_workspace(&self, who: &Principal) -> Result<String, String> {
        let v = self.call(who, "GET", "/api/v1/workspaces", None).await?;
        let names: Vec<String> = v["workspaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w["name"].as_str().map(str::to_owned))
            .collect();
        match names.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err("No workspaces yet.".into()),
            _ => Err(format!("Name a workspace: {}", names.join(", "))),
        }
    }

    /// Waits for a task: its card at once if it finishes within [`INLINE_WAIT`], otherwise a
    /// deferred answer that is edited as it progresses and when it ends. A task submitted by
    /// a member is announced in the notification channel when it ends, mentioning them.
    async fn follow(
        self: &Arc<Self>,
        id: i64,
        submitter: Option<Member>,
        title: Option<String>,
    ) -> Step {
        let first = self.wait_task(id, INLINE_WAIT).await;
        if let Ok(task) = &first
            && finished(task)
        {
            if let Some(m) = &submitter {
                self.announce(task, m);
            }
            return Step::Now(task_reply(task, title.as_deref()));
        }
        Step::Later(Box::new(move |bot: Arc<Discord>, token: String| {
            Box::pin(async move {
                let deadline = tokio::time::Instant::now() + FOLLOW_UP_FOR;
                let mut shown_progress = Value::Null;
                loop {
                    let task = match bot.wait_task(id, Duration::from_secs(2)).await {
                        Ok(t) => t,
                        Err(e) => return Reply::private(e),
                    };
                    if finished(&task) {
                        if let Some(m) = &submitter {
                            bot.announce(&task, m);
                        }
                        return task_reply(&task, title.as_deref());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Reply::text(format!(
                            "Task #{id} is still {}; see `/task status {id}`.",
                            task["state"].as_str().unwrap_or("?")
                        ));
                    }
                    if task["progress"] != shown_progress {
                        shown_progress = task["progress"].clone();
                        bot.edit(&token, &task_reply(&task, title.as_deref())).await;
                    }
                }
            })
        }))
    }

    /// Waits for tasks to end, then renders their results together.
    async fn gather(
        self: &Arc<Self>,
        ids: Vec<i64>,
        render: impl Fn(&[Value]) -> Reply + Send + Sync + 'static,
    ) -> Step {
        let mut done = Vec::new();
        for id in &ids {
            match self.wait_task(*id, INLINE_WAIT).await {
                Ok(t) if finished(&t) => done.push(t),
                Ok(_) => break,
                Err(e) => return Step::Now(Reply::private(e)),
            }
        }
        if done.len() == ids.len() {
            return Step::Now(render(&done));
        }
        Step::Later(Box::new(move |bot: Arc<Discord>, _token: String| {
            Box::pin(async move {
                let mut all = Vec::new();
                for id in ids {
                    loop {
                        match bot.wait_task(id, Duration::from_secs(60)).await {
                            Ok(t) if finished(&t) => {
                                all.push(t);
                                break;
                            }
                            Ok(_) => continue,
                            Err(e) => return Reply::private(e),
                        }
                    }
                }
                render(&all)
            })
        }))
    }

    async fn wait_task(&self, id: i64, wait: Duration) -> Result<Value, String> {
        let path = format!("/api/v1/tasks/{id}?wait_ms={}", wait.as_millis());
        self.call(&self.itself(), "GET", &path, None).await
    }

    /// Replaces the original reply (follow-ups), honouring Discord's rate limits.
    async fn edit(&self, token: &str, reply: &Reply) {
        let data = render::data(reply);
        let app = Id::new(self.config.application_id);
        patiently("edit a Discord reply", || async {
            self.http
                .interaction(app)
                .update_response(token)
                .content(data.content.as_deref())
                .embeds(data.embeds.as_deref())
                .components(data.components.as_deref())
                .await
        })
        .await;
    }
}

type Later = Box<dyn FnOnce(Arc<Discord>, String) -> BoxFuture<'static, Reply> + Send>;

enum Step {
    /// The answer, now.
    Now(Reply),
    /// Answer "deferred" now; this produces the reply that replaces it.
    Later(Later),
}

fn member_of(i: &Interaction) -> Member {
    let user = i.member.as_ref().and_then(|m| m.user.as_ref()).or(i.user.as_ref());
    Member {
        id: user.map_or(0, |u| u.id.get()),
        name: user.map_or_else(|| "unknown".into(), |u| u.name.clone()),
        roles: i
            .member
            .as_ref()
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default(),
    }
}

/// Percent-encodes a path segment.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fields twilight's command model requires that Discord fills in on registration.
fn with_defaults(mut commands: Value) -> Value {
    for c in commands.as_array_mut().into_iter().flatten() {
        c["type"] = json!(1);
        c["application_id"] = json!(null);
        // Discord assigns the version; twilight's model wants one to deserialise.
        c["version"] = json!("1");
        if c.get("options").is_none() {
            c["options"] = json!([]);
        }
    }
    commands
}

/// `POST /discord/interactions`: Discord's HTTP interactions endpoint.
pub async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(bot) = state.discord.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !bot.verify(&headers, &body) {
        tracing::info!("Discord interaction with a bad signature refused");
        return crate::error::ApiError::new(
            dreamos_core::ErrorCode::Unauthorized,
            "invalid request signature",
        )
        .into_response();
    }
    let interaction: Interaction = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "an interaction this bot cannot read");
            return (StatusCode::BAD_REQUEST, format!("unreadable interaction: {e}"))
                .into_response();
        }
    };
    let answer = bot.handle(interaction).await;
    axum::Json(answer).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client for discord.com itself (TLS with rustls) builds: one crypto provider.
    #[test]
    fn a_client_for_discord_itself_builds() {
        let config = DiscordConfig {
            token: Some(crate::config::Secret("t".into())),
            application_id: 1,
            public_key: None,
            guilds: vec![],
            channel: None,
            roles: Default::default(),
            api: None,
            gateway: None,
            watch_ms: 5_000,
            alert_queue_depth: 1_000,
            alert_error_rate: 20.0,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { drop(client(&config)) });
    }

    #[test]
    fn the_command_set_reads_as_twilight_commands() {
        let commands: Vec<twilight_model::application::command::Command> =
            serde_json::from_value(with_defaults(commands::definitions())).unwrap();
        assert_eq!(commands.len(), 8);
        dreamos_discord_sim::check_commands(&commands::definitions()).unwrap();
    }
}
