//! The Discord bot: the HTTP interactions endpoint (`POST /discord/interactions`, Ed25519
//! signatures checked with the application's public key), the command pipeline it feeds
//! (parse -> authorise by the member's Discord roles -> act through the node's own API ->
//! render within Discord's limits), follow-ups by editing the original reply, and
//! notifications to a channel, coalesced so a burst does not spam it.
//!
//! Discord is reached with twilight-http; `discord_api` points it elsewhere (the tests'
//! simulator). The bot token never appears in logs or in `config show`.

pub mod commands;
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

use self::commands::Invocation;
use self::render::{Card, Reply};
use crate::api::AppState;
use crate::auth::{self, Role};
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
    /// API tokens by role, issued at start.
    tokens: Vec<(Role, String)>,
    searches: Mutex<(HashMap<u64, SearchArgs>, VecDeque<u64>)>,
    next_search: AtomicU64,
    notices: tokio::sync::mpsc::UnboundedSender<String>,
    /// For audit entries of Discord commands.
    store: Arc<dyn dreamos_store::Store>,
}

impl Discord {
    /// Sets the bot up: issues its API tokens (revoking the previous run's) and starts the
    /// notification worker.
    pub async fn start(
        config: DiscordConfig,
        store: &Arc<dyn dreamos_store::Store>,
        node_id: &str,
    ) -> anyhow::Result<Arc<Self>> {
        let now = store.clock().now_ms();
        let label = token_label(node_id);
        for old in store.list_tokens().await? {
            if old.label == label && old.revoked_at_ms.is_none() {
                store.revoke_token(&old.id).await?;
            }
        }
        let mut tokens = Vec::new();
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            let issued = auth::issue(role, &label, now, None);
            store.create_token(issued.record).await?;
            tokens.push((role, issued.token));
        }
        let public_key = config.public_key.as_deref().map(hex::decode).transpose()?;
        let (notices, queue) = tokio::sync::mpsc::unbounded_channel();
        let bot = Arc::new(Self {
            http: client(&config),
            config,
            public_key,
            api: OnceLock::new(),
            tokens,
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

    fn token(&self, role: Role) -> &str {
        &self.tokens.iter().find(|(r, _)| *r == role).expect("a token per role").1
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

    /// Calls the node's API as `role`; an error answer becomes its message.
    async fn call(
        &self,
        role: Role,
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
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token(role)));
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
        let role = role.expect("allowed");
        match self.run(member, role, &invocation).await {
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

    async fn run(self: &Arc<Self>, member: &Member, role: Role, inv: &Invocation) -> Step {
        let arg = |name: &str| inv.arg(name).map(str::to_owned);
        let failed = |e: String| Step::Now(Reply::private(e));
        match (inv.name.as_str(), inv.sub.as_deref()) {
            ("help", _) => Step::Now(commands::help()),
            ("system", Some(sub)) => {
                let status = self.call(role, "GET", "/api/v1/status", None).await;
                let agents = self.call(role, "GET", "/api/v1/agents", None).await;
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
                    match self.call(role, "GET", &format!("/api/v1/agents/{}", enc(&a)), None).await
                    {
                        Ok(v) => Step::Now(Reply::card(commands::agent_card(&v))),
                        Err(e) => failed(e),
                    }
                }
                None => match self.call(role, "GET", "/api/v1/agents", None).await {
                    Ok(v) => Step::Now(Reply::card(commands::agents_card(&v))),
                    Err(e) => failed(e),
                },
            },
            ("agent", Some(action @ ("drain" | "resume"))) => {
                let a = arg("agent").unwrap_or_default();
                let path = format!("/api/v1/agents/{}/{action}", enc(&a));
                match self.call(role, "POST", &path, None).await {
                    Ok(v) => Step::Now(Reply::card(commands::agent_card(&v))),
                    Err(e) => failed(e),
                }
            }
            ("agent", Some("message")) => {
                let a = arg("agent").unwrap_or_default();
                let body = json!({ "text": arg("text").unwrap_or_default(), "wait_ms": 1_500 });
                let path = format!("/api/v1/agents/{}/messages", enc(&a));
                match self.call(role, "POST", &path, Some(body)).await {
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
                match self.call(role, "POST", "/api/v1/agents/broadcast", Some(body)).await {
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
                // The caller's own role: `exec` stays admin-only.
                match self.call(role, "POST", "/api/v1/tasks", Some(body)).await {
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
                match self.call(role, "GET", &path, None).await {
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
                match self.call(role, method, &path, None).await {
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
                self.search(search, 0).await
            }
            ("index", None) => {
                let w = arg("workspace").unwrap_or_default();
                let path = format!("/api/v1/workspaces/{}/index", enc(&w));
                match self.call(role, "POST", &path, None).await {
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
                match self.call(Role::Operator, "POST", "/api/v1/tasks/batch", Some(batch)).await {
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
                    None => match self.only_workspace().await {
                        Ok(w) => w,
                        Err(e) => return failed(e),
                    },
                };
                let task = json!({ "kind": "analyze", "payload": { "workspace": workspace, "what": "dependents", "target": target } });
                match self.call(Role::Operator, "POST", "/api/v1/tasks", Some(task)).await {
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

    async fn only_workspace(&self) -> Result<String, String> {
        let v = self.call(Role::Viewer, "GET", "/api/v1/workspaces", None).await?;
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
        self.call(Role::Admin, "GET", &path, None).await
    }

    async fn search(self: &Arc<Self>, search: SearchArgs, page: usize) -> Step {
        let key = {
            let mut guard = self.searches.lock().unwrap_or_else(|e| e.into_inner());
            let (map, order) = &mut *guard;
            let key = self.next_search.fetch_add(1, Ordering::Relaxed);
            map.insert(key, search.clone());
            order.push_back(key);
            while order.len() > 1_000 {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
            key
        };
        self.search_page(key, search, page).await
    }

    async fn search_page(self: &Arc<Self>, key: u64, search: SearchArgs, page: usize) -> Step {
        let mut payload = json!({ "query": search.query, "limit": PAGE, "offset": page * PAGE });
        if let Some(w) = &search.workspace {
            payload["workspace"] = json!(w);
        }
        let task = json!({ "kind": "search", "payload": payload });
        let id = match self.call(Role::Operator, "POST", "/api/v1/tasks", Some(task)).await {
            Ok(v) => v["task"]["id"].as_i64().unwrap_or_default(),
            Err(e) => return Step::Now(Reply::private(e)),
        };
        let query = search.query.clone();
        self.gather(vec![id], move |results| {
            let task = &results[0];
            if task["state"] != "succeeded" {
                return Reply::private(format!(
                    "The search failed: {}",
                    task["error"]["message"].as_str().unwrap_or("unknown error")
                ));
            }
            let result = &task["result"];
            let mut reply = Reply::card(commands::search_card(&query, result, page));
            if page > 0 {
                reply.buttons.push((format!("search:{key}:{}", page - 1), "Previous".into()));
            }
            if result["more"] == true {
                reply.buttons.push((format!("search:{key}:{}", page + 1), "Next".into()));
            }
            reply
        })
        .await
    }

    async fn button(self: &Arc<Self>, member: &Member, custom_id: &str) -> InteractionResponse {
        if self.role_of(member).is_none() {
            return render::message(&Reply::private("You have no Dream.OS role here."));
        }
        let mut parts = custom_id.splitn(3, ':');
        let (Some("search"), Some(key), Some(page)) = (parts.next(), parts.next(), parts.next())
        else {
            return render::message(&Reply::private("This button is not mine."));
        };
        let (Ok(key), Ok(page)) = (key.parse::<u64>(), page.parse::<usize>()) else {
            return render::message(&Reply::private("This button is not mine."));
        };
        let search = self.searches.lock().unwrap_or_else(|e| e.into_inner()).0.get(&key).cloned();
        let Some(search) = search else {
            return render::message(&Reply::private(
                "This search has expired: run `/search` again.",
            ));
        };
        match self.search_page(key, search, page).await {
            Step::Now(reply) if !reply.ephemeral => render::update(&reply),
            Step::Now(reply) => render::message(&reply),
            Step::Later(_) => {
                render::message(&Reply::private("The search is taking long; run `/search` again."))
            }
        }
    }

    async fn autocomplete(&self, member: &Member, inv: &Invocation) -> InteractionResponse {
        let choices = match (self.role_of(member), &inv.focused) {
            (Some(role), Some((option, typed))) => self.choices(role, option, typed).await,
            _ => Vec::new(),
        };
        InteractionResponse {
            kind: InteractionResponseType::ApplicationCommandAutocompleteResult,
            data: Some(InteractionResponseData { choices: Some(choices), ..Default::default() }),
        }
    }

    async fn choices(&self, role: Role, option: &str, typed: &str) -> Vec<CommandOptionChoice> {
        let (path, list, field) = match option {
            "agent" => ("/api/v1/agents", "agents", "name"),
            "workspace" => ("/api/v1/workspaces", "workspaces", "name"),
            "kind" => ("/api/v1/kinds", "kinds", "name"),
            "id" => ("/api/v1/tasks?limit=100", "tasks", "id"),
            _ => return Vec::new(),
        };
        let Ok(v) = self.call(role, "GET", path, None).await else { return Vec::new() };
        let typed = typed.to_lowercase();
        v[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let value = &item[field];
                let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
                if !text.to_lowercase().contains(&typed) {
                    return None;
                }
                let value = match value.as_i64() {
                    Some(n) => CommandOptionChoiceValue::Integer(n),
                    None => CommandOptionChoiceValue::String(text.clone()),
                };
                let name = match item["kind"].as_str() {
                    Some(kind) if field == "id" => {
                        format!("#{text} {kind} ({})", item["state"].as_str().unwrap_or(""))
                    }
                    _ => text,
                };
                Some(CommandOptionChoice {
                    name: render::clip(&name, 100),
                    name_localizations: None,
                    value,
                })
            })
            .take(25)
            .collect()
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

    /// Runs the gateway connection (when a bot token is configured) until `closing`:
    /// interactions arriving over it go through the same pipeline as the HTTP endpoint's,
    /// answered with an interaction callback. twilight's shard reconnects, resumes and
    /// re-identifies by itself (RECONNECT, INVALID_SESSION, unanswered heartbeats).
    pub fn spawn_gateway(self: &Arc<Self>, mut closing: tokio::sync::watch::Receiver<bool>) {
        use twilight_gateway::{
            ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
        };
        let Some(token) = self.config.token.clone() else { return };
        let mut builder = ConfigBuilder::new(token.0, Intents::GUILDS);
        if let Some(url) = &self.config.gateway {
            builder = builder.proxy_url(url.clone());
        }
        let config = match &self.config.gateway {
            // A local gateway: no identify spacing.
            Some(_) => builder
                .queue(twilight_gateway::queue::InMemoryQueue::new(1, 1_000, Duration::ZERO, 1_000))
                .build(),
            None => builder.build(),
        };
        let bot = self.clone();
        tokio::spawn(async move {
            let mut shard = Shard::with_config(ShardId::ONE, config);
            let wanted = EventTypeFlags::INTERACTION_CREATE | EventTypeFlags::READY;
            loop {
                let item = tokio::select! {
                    _ = closing.wait_for(|c| *c) => break,
                    item = shard.next_event(wanted) => item,
                };
                match item {
                    None => {
                        tracing::error!("Discord gateway closed for good (a fatal close code)");
                        break;
                    }
                    Some(Ok(Event::InteractionCreate(i))) => {
                        let bot = bot.clone();
                        tokio::spawn(async move {
                            let (id, token) = (i.id, i.token.clone());
                            let answer = bot.handle(i.0).await;
                            bot.respond(id, &token, &answer).await;
                        });
                    }
                    Some(Ok(Event::Ready(r))) => {
                        tracing::info!(user = %r.user.name, "Discord gateway ready");
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "Discord gateway"),
                }
            }
        });
    }

    /// Watches for alerts until `closing`, notifying the channel of each new one: an agent
    /// lost, tasks dead-lettered, the queue depth or the error rate over its threshold. The
    /// first check only sets the baseline; an alert is announced when it appears (or its
    /// figure changes), not again while it stands.
    pub fn spawn_watch(self: &Arc<Self>, mut closing: tokio::sync::watch::Receiver<bool>) {
        if self.config.channel.is_none() {
            return;
        }
        let bot = Arc::downgrade(self);
        let every = Duration::from_millis(self.config.watch_ms);
        tokio::spawn(async move {
            let mut known: Option<Vec<String>> = None;
            loop {
                tokio::select! {
                    _ = closing.wait_for(|c| *c) => break,
                    _ = tokio::time::sleep(every) => {}
                }
                let Some(bot) = bot.upgrade() else { break };
                let status = bot.call(Role::Admin, "GET", "/api/v1/status", None).await;
                let agents = bot.call(Role::Admin, "GET", "/api/v1/agents", None).await;
                let (Ok(status), Ok(agents)) = (status, agents) else { continue };
                let now = bot.alerts(&status, &agents);
                if let Some(before) = &known {
                    for alert in now.iter().filter(|a| !before.contains(a)) {
                        bot.notify(format!("⚠️ {alert}"));
                    }
                }
                known = Some(now);
            }
        });
    }

    fn alerts(&self, status: &Value, agents: &Value) -> Vec<String> {
        commands::alerts(
            status,
            agents,
            self.config.alert_queue_depth,
            self.config.alert_error_rate,
        )
    }

    /// Answers a gateway interaction (`POST /interactions/{id}/{token}/callback`).
    async fn respond(
        &self,
        id: Id<twilight_model::id::marker::InteractionMarker>,
        token: &str,
        answer: &InteractionResponse,
    ) {
        let app = Id::new(self.config.application_id);
        patiently("answer a Discord interaction", || async {
            self.http.interaction(app).create_response(id, token, answer).await
        })
        .await;
    }

    /// "@member, task #12 succeeded" in the notification channel.
    fn announce(&self, task: &Value, member: &Member) {
        let _ = self.notices.send(format!(
            "<@{}> task #{} ({}) {}",
            member.id,
            task["id"],
            task["kind"].as_str().unwrap_or("?"),
            task["state"].as_str().unwrap_or("?")
        ));
    }

    /// Queues a notification for the channel.
    pub fn notify(&self, text: String) {
        let _ = self.notices.send(text);
    }

    async fn post(&self, text: &str) {
        let Some(channel) = self.config.channel else { return };
        patiently("post a Discord notification", || async {
            self.http.create_message(Id::new(channel)).content(text).await
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

fn finished(task: &Value) -> bool {
    matches!(task["state"].as_str(), Some("succeeded" | "failed" | "cancelled"))
}

fn task_reply(task: &Value, title: Option<&str>) -> Reply {
    let mut card = commands::task_card(task);
    if let Some(t) = title {
        card.title = format!("{t} · task #{}", task["id"]);
    }
    Reply::card(card)
}

fn analysis_card(workspace: &str, results: &[Value]) -> Reply {
    let metrics = &results[0]["result"];
    let cycles = &results.get(1).map(|r| r["result"].clone()).unwrap_or_default();
    let hotspots: Vec<String> = metrics["hotspots"]
        .as_array()
        .into_iter()
        .flatten()
        .take(10)
        .map(|h| {
            format!(
                "`{}` {}:{} complexity {}",
                h["name"].as_str().or(h["symbol"].as_str()).unwrap_or("?"),
                h["path"].as_str().unwrap_or("?"),
                h["line"],
                h["complexity"]
            )
        })
        .collect();
    let cycle_lines: Vec<String> = cycles["cycles"]
        .as_array()
        .into_iter()
        .flatten()
        .take(10)
        .map(|c| {
            c.as_array()
                .map(|files| files.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" → "))
                .unwrap_or_default()
        })
        .collect();
    if let Some(e) = results.iter().find_map(|r| r["error"]["message"].as_str()) {
        return Reply::private(format!("The analysis failed: {e}"));
    }
    Reply::card(Card {
        title: format!("Analysis of {workspace}"),
        description: format!(
            "{} files · {} functions · {} lines",
            metrics["files"], metrics["functions"], metrics["lines"]
        ),
        fields: vec![
            (
                "Complexity hotspots".into(),
                if hotspots.is_empty() { "none".into() } else { hotspots.join("\n") },
            ),
            (
                format!("Dependency cycles ({})", cycles["total"].as_u64().unwrap_or(0)),
                if cycle_lines.is_empty() { "none".into() } else { cycle_lines.join("\n") },
            ),
        ],
        footer: None,
        color: Some(render::BLUE),
    })
}

fn dependents_card(target: &str, results: &[Value]) -> Reply {
    let task = &results[0];
    if let Some(e) = task["error"]["message"].as_str() {
        return Reply::private(format!("Cannot list dependents: {e}"));
    }
    let deps: Vec<String> = task["result"]["dependents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            d.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| d["path"].as_str().unwrap_or("?").to_string())
        })
        .collect();
    Reply::card(Card {
        title: render::clip(&format!("What depends on {target}"), 256),
        description: if deps.is_empty() {
            "Nothing.".into()
        } else {
            deps.iter().map(|d| format!("• `{d}`")).collect::<Vec<_>>().join("\n")
        },
        footer: Some(format!("{} dependents", deps.len())),
        color: Some(render::BLUE),
        ..Card::default()
    })
}

/// A Discord REST client for `config` (discord.com, or `discord_api` over plain HTTP).
fn client(config: &DiscordConfig) -> twilight_http::Client {
    let mut builder = twilight_http::Client::builder().remember_invalid_token(false);
    if let Some(token) = &config.token {
        builder = builder.token(format!("Bot {}", token.0));
    }
    if let Some(api) = &config.api {
        builder = builder.proxy(api.clone(), true);
    }
    builder.build()
}

/// Registers the command set (bulk overwrite) in `guilds`, or globally when there are none;
/// returns how many commands were registered.
pub async fn register(config: &DiscordConfig, guilds: &[u64]) -> anyhow::Result<usize> {
    let commands: Vec<twilight_model::application::command::Command> =
        serde_json::from_value(with_defaults(commands::definitions()))?;
    let http = client(config);
    let client = http.interaction(Id::new(config.application_id));
    if guilds.is_empty() {
        client.set_global_commands(&commands).await?;
    } else {
        for guild in guilds {
            client.set_guild_commands(Id::new(*guild), &commands).await?;
        }
    }
    Ok(commands.len())
}

/// Makes a Discord request, waiting out 429s (as long as Discord asks, up to five tries);
/// other failures are logged.
async fn patiently<T, F, Fut>(what: &str, mut request: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, twilight_http::Error>>,
{
    for attempt in 0..5 {
        match request().await {
            Ok(_) => return,
            Err(e) => match retry_after(&e) {
                Some(wait) if attempt < 4 => tokio::time::sleep(wait).await,
                _ => {
                    tracing::warn!(error = %e, "cannot {what}");
                    return;
                }
            },
        }
    }
}

/// How long Discord asked us to wait, if this error is a 429.
fn retry_after(e: &twilight_http::Error) -> Option<Duration> {
    match e.kind() {
        twilight_http::error::ErrorType::Response { status, body, .. } if status.get() == 429 => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let secs = v["retry_after"].as_f64().unwrap_or(1.0).clamp(0.0, 60.0);
            Some(Duration::from_secs_f64(secs))
        }
        _ => None,
    }
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

/// Sends queued notifications, coalescing those that arrive together into one message (at
/// most one message per [`COALESCE`] window, each within 2,000 characters).
async fn notifier(
    bot: std::sync::Weak<Discord>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    while let Some(first) = queue.recv().await {
        let mut lines = vec![first];
        let window = tokio::time::Instant::now() + COALESCE;
        while let Ok(Some(more)) = tokio::time::timeout_at(window, queue.recv()).await {
            lines.push(more);
        }
        let Some(bot) = bot.upgrade() else { return };
        let mut message = String::new();
        let mut messages = Vec::new();
        for line in lines {
            let line = render::clip(&line, 500);
            if message.chars().count() + line.chars().count() + 1 > render::CONTENT_MAX {
                messages.push(std::mem::take(&mut message));
            }
            if !message.is_empty() {
                message.push('\n');
            }
            message.push_str(&line);
        }
        messages.push(message);
        for m in messages {
            bot.post(&m).await;
        }
    }
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
