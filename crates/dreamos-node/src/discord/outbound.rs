//! Discord's side of the bot: the gateway shard, notifications and alerts to the channel, the
//! REST client, command registration, and waiting out Discord's rate limits.

use super::*;

impl Discord {
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
                let status = bot.call(&bot.itself(), "GET", "/api/v1/status", None).await;
                let agents = bot.call(&bot.itself(), "GET", "/api/v1/agents", None).await;
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

    pub(super) fn alerts(&self, status: &Value, agents: &Value) -> Vec<String> {
        commands::alerts(
            status,
            agents,
            self.config.alert_queue_depth,
            self.config.alert_error_rate,
        )
    }

    /// Answers a gateway interaction (`POST /interactions/{id}/{token}/callback`).
    pub(super) async fn respond(
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
    pub(super) fn announce(&self, task: &Value, member: &Member) {
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

    pub(super) async fn post(&self, text: &str) {
        let Some(channel) = self.config.channel else { return };
        patiently("post a Discord notification", || async {
            self.http.create_message(Id::new(channel)).content(text).await
        })
        .await;
    }
}

/// A Discord REST client for `config` (discord.com, or `discord_api` over plain HTTP).
pub(super) fn client(config: &DiscordConfig) -> twilight_http::Client {
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
pub(super) async fn patiently<T, F, Fut>(what: &str, mut request: F)
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
pub(super) fn retry_after(e: &twilight_http::Error) -> Option<Duration> {
    match e.kind() {
        twilight_http::error::ErrorType::Response { status, body, .. } if status.get() == 429 => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let secs = v["retry_after"].as_f64().unwrap_or(1.0).clamp(0.0, 60.0);
            Some(Duration::from_secs_f64(secs))
        }
        _ => None,
    }
}

/// Sends queued notifications, coalescing those that arrive together into one message (at
/// most one message per [`COALESCE`] window, each within 2,000 characters).
pub(super) async fn notifier(
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
