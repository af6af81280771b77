//! The Discord bot end to end: a real node, its HTTP interactions endpoint, twilight-http for
//! follow-ups and notifications, and the local Discord simulator in place of Discord.

use std::path::Path;
use std::time::Duration;

use dreamos_discord_sim::{APPLICATION_ID, CHANNEL_ID, Simulator, check_message};
use dreamos_node::Node;
use serde_json::{Value, json};

const VIEWER: u64 = 11;
const OPERATOR: u64 = 22;
const ADMIN: u64 = 33;

struct Bot {
    node: Node,
    config: dreamos_node::Config,
    sim: Simulator,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Bot {
    async fn start(workspace: Option<&Path>) -> Self {
        Self::start_with(workspace, Simulator::start().await, "").await
    }

    /// A node whose bot reaches only `sim` (REST and gateway), with `extra` settings.
    async fn start_with(workspace: Option<&Path>, sim: Simulator, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "discord_application_id = {APPLICATION_ID}\n\
             discord_public_key = \"{}\"\n\
             discord_token = \"sim-bot-token\"\n\
             discord_channel = {CHANNEL_ID}\n\
             discord_api = \"{}\"\n\
             discord_gateway = \"{}\"\n\
             exec_allow = [\"sleep\", \"printf\", \"false\"]\n\
             {extra}\n\
             [discord_roles]\n\"{VIEWER}\" = \"viewer\"\n\"{OPERATOR}\" = \"operator\"\n\"{ADMIN}\" = \"admin\"\n",
            sim.public_key_hex(),
            sim.rest_proxy(),
            sim.gateway_url()
        );
        std::fs::write(dir.path().join("dreamos.toml"), toml).unwrap();
        let mut config = crate::config(dir.path(), 2);
        config.workspaces.extend(workspace.map(Path::to_path_buf));
        let node = Node::start(config.clone()).await.unwrap();
        let endpoint = format!("http://{}/discord/interactions", node.addr);
        Self { node, config, sim, endpoint, _dir: dir }
    }

    /// A bot on a gateway that asks for heartbeats every 250 ms, so a silent one is noticed
    /// quickly.
    async fn with_gateway(workspace: Option<&Path>) -> Self {
        Self::start_with(workspace, Simulator::with_heartbeat(250).await, "").await
    }

    /// `/task submit exec sleep 3` as an admin: work that outlasts the inline wait.
    async fn submit_slow(&self) -> Value {
        let payload = string("payload", r#"{"program":"sleep","args":["3"]}"#);
        self.command("task", sub("submit", json!([string("kind", "exec"), payload])), ADMIN).await
    }

    /// Delivers a slash command as a member with `role`; the immediate answer.
    async fn command(&self, name: &str, options: Value, role: u64) -> Value {
        let interaction = self.sim.command(name, options, &[role]);
        self.deliver(&interaction).await
    }

    async fn deliver(&self, interaction: &Value) -> Value {
        let (status, answer, _) = self.sim.deliver(&self.endpoint, interaction).await;
        assert_eq!(status, 200, "{answer}");
        if let Some(data) = answer.get("data") {
            check_message(data).unwrap_or_else(|e| panic!("breaks Discord's limits: {e}"));
        }
        answer
    }
}

fn sub(name: &str, options: Value) -> Value {
    json!([{ "type": 1, "name": name, "options": options }])
}

fn string(name: &str, value: &str) -> Value {
    json!({ "type": 3, "name": name, "value": value })
}

fn embed_text(message: &Value) -> String {
    message["embeds"].to_string()
}

/// Everything the simulator sends deserialises into twilight's model, so fixtures cannot
/// drift from what the library accepts.
#[tokio::test]
async fn simulator_fixtures_are_what_twilight_reads() {
    use twilight_model::application::interaction::Interaction;
    let sim = Simulator::start().await;
    for fixture in [
        sim.ping(),
        sim.command("task", sub("list", json!([])), &[VIEWER]),
        sim.autocomplete(
            "task",
            sub("submit", json!([{ "type": 3, "name": "kind", "value": "no", "focused": true }])),
            &[VIEWER],
        ),
        sim.button("search:1:1", &[VIEWER]),
    ] {
        serde_json::from_value::<Interaction>(fixture.clone())
            .unwrap_or_else(|e| panic!("{e}: {fixture}"));
    }
}

#[tokio::test]
async fn ping_is_answered_and_a_bad_signature_is_refused() {
    let bot = Bot::start(None).await;
    let (status, answer, _) = bot.sim.deliver(&bot.endpoint, &bot.sim.ping()).await;
    assert_eq!((status, answer), (200, json!({ "type": 1 })));
    let (status, answer) = bot.sim.deliver_forged(&bot.endpoint, &bot.sim.ping()).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("unauthorized")), "{answer}");
    let command = bot.sim.command("task", sub("list", json!([])), &[ADMIN]);
    let (status, _) = bot.sim.deliver_forged(&bot.endpoint, &command).await;
    assert_eq!(status, 401, "a forged command is refused before it runs");
    // Forgeries are security events: in the audit log (the second from the same client within
    // a minute is coalesced into the next entry appended, so floods cannot fill the disk).
    let filter = dreamos_store::AuditFilter { limit: 1_000, ..Default::default() };
    let audit = bot.node.store.read_audit(filter).await.unwrap();
    let forged = audit
        .iter()
        .filter(|e| e.entry.action == "auth.failed" && e.entry.target == "/discord/interactions")
        .count();
    assert_eq!(forged, 1, "{audit:#?}");
    bot.node.shutdown().await.unwrap();
}

/// `/task submit` -> the queue -> a local agent runs it -> the reply shows the result, and the
/// channel hears about it, mentioning who submitted it.
#[tokio::test]
async fn task_submit_runs_on_an_agent_and_notifies_the_submitter() {
    let bot = Bot::start(None).await;
    let answer =
        bot.command("task", sub("submit", json!([string("kind", "noop")])), OPERATOR).await;
    assert_eq!(answer["type"], 4, "{answer}");
    let text = embed_text(&answer["data"]);
    assert!(text.contains("succeeded"), "{text}");
    let note = bot
        .sim
        .wait_for("the notification", |r| {
            r.method == "POST" && r.path == format!("/channels/{CHANNEL_ID}/messages")
        })
        .await;
    let content = note.body["content"].as_str().unwrap();
    assert!(
        content.contains("<@1100000000000000200>") && content.contains("succeeded"),
        "{content}"
    );
    assert_eq!(note.status, 200);
    assert_eq!(note.authorization.as_deref(), Some("Bot sim-bot-token"));
    bot.node.shutdown().await.unwrap();
}

/// Work longer than about 2 s answers "deferred" first, then edits the original reply.
#[tokio::test]
async fn long_work_is_deferred_then_the_original_is_edited() {
    let bot = Bot::start(None).await;
    let answer = bot.submit_slow().await;
    assert_eq!(answer["type"], 5, "deferred: {answer}");
    let edit = bot
        .sim
        .wait_for("the edited reply", |r| {
            r.method == "PATCH" && r.path.ends_with("/messages/@original")
        })
        .await;
    assert_eq!(edit.status, 200, "{:?}", edit.refusal);
    assert!(embed_text(&edit.body).contains("succeeded"), "{}", edit.body);
    bot.node.shutdown().await.unwrap();
}

/// A 429 on a follow-up is waited out (no retry before `retry_after`), and the edit lands.
#[tokio::test]
async fn a_rate_limited_follow_up_waits_and_lands() {
    let bot = Bot::start(None).await;
    bot.sim.inject_rate_limit("/messages/@original", Duration::from_millis(700));
    let answer = bot.submit_slow().await;
    assert_eq!(answer["type"], 5, "{answer}");
    let landed = bot
        .sim
        .wait_for("the edit after the 429", |r| {
            r.path.ends_with("/messages/@original") && r.status == 200
        })
        .await;
    assert!(embed_text(&landed.body).contains("succeeded"));
    let limited = bot.sim.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(limited, 1, "exactly the injected 429");
    assert_eq!(bot.sim.violations(), Vec::<String>::new());
    bot.node.shutdown().await.unwrap();
}

/// A viewer may look but not act: `/task cancel` is refused privately, and the refusal is in
/// the audit log.
#[tokio::test]
async fn a_viewer_is_refused_task_cancel_privately_and_audited() {
    let bot = Bot::start(None).await;
    let cancel = sub("cancel", json!([{ "type": 4, "name": "id", "value": 1 }]));
    let answer = bot.command("task", cancel.clone(), VIEWER).await;
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64, "ephemeral: {answer}");
    let content = answer["data"]["content"].as_str().unwrap();
    assert!(content.contains("needs the operator role"), "{content}");
    // A member with no mapped role may do nothing at all.
    let answer = bot.command("help", json!([]), 999).await;
    assert_eq!(answer["data"]["flags"], 64, "{answer}");
    let filter = dreamos_store::AuditFilter { limit: 1_000, ..Default::default() };
    let audit = bot.node.store.read_audit(filter).await.unwrap();
    assert!(
        audit.iter().any(|e| e.entry.action == "denied discord /task cancel"
            && e.entry.actor.starts_with("discord:1100000000000000200")),
        "{audit:#?}"
    );
    bot.node.shutdown().await.unwrap();
}

/// `/search` finds a symbol of an indexed workspace (through a `search` task an agent runs),
/// renders file:line, the symbol and a code block, and pages with buttons.
#[tokio::test]
async fn search_finds_a_symbol_and_pages_with_buttons() {
    let src = tempfile::tempdir().unwrap();
    for i in 0..8 {
        std::fs::write(
            src.path().join(format!("mod{i}.py")),
            format!("def frobnicate_widget_{i}(x):\n    return frobnicate(x) + {i}\n"),
        )
        .unwrap();
    }
    let bot = Bot::start(Some(src.path())).await;
    let filter = dreamos_store::TaskFilter { limit: 100, ..Default::default() };
    let tasks = bot.node.store.list(&filter).await.unwrap();
    // The workspace's index task must finish before searching it.
    let index = tasks.iter().find(|t| t.kind == "index").expect("an index task").id;
    let store = bot.node.store.clone();
    let indexed = crate::eventually(Duration::from_secs(60), || {
        let store = store.clone();
        async move { store.get(index).await.unwrap().is_some_and(|t| t.state.is_terminal()) }
    })
    .await;
    assert!(indexed, "the index task finished");
    let answer = bot.command("search", json!([string("query", "frobnicate")]), VIEWER).await;
    assert_eq!(answer["type"], 4, "{answer}");
    let embed = &answer["data"]["embeds"][0];
    let fields = embed["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 5, "a page of five: {embed}");
    assert!(fields[0]["name"].as_str().unwrap().contains(".py:"), "{embed}");
    assert!(fields[0]["value"].as_str().unwrap().starts_with("```python"), "{embed}");
    let next = answer["data"]["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["label"] == "Next")
        .expect("a Next button")["custom_id"]
        .as_str()
        .unwrap()
        .to_string();
    let page2 = bot.deliver(&bot.sim.button(&next, &[VIEWER])).await;
    assert_eq!(page2["type"], 7, "the message is updated in place: {page2}");
    let fields = page2["data"]["embeds"][0]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 3, "the other three");
    bot.node.shutdown().await.unwrap();
}

/// An answer larger than Discord allows is cut to fit, never rejected.
#[tokio::test]
async fn an_oversized_result_fits_discords_limits() {
    let bot = Bot::start(None).await;
    let payload = string("payload", r#"{"program":"printf","args":["%09000d","0"]}"#);
    let answer =
        bot.command("task", sub("submit", json!([string("kind", "exec"), payload])), ADMIN).await;
    // `deliver` checked the answer against Discord's limits; the result is shown, cut.
    let text = embed_text(&answer["data"]);
    assert!(text.contains("000000") && text.contains('…'), "{text}");
    bot.node.shutdown().await.unwrap();
}

/// Autocomplete offers what exists; the read-only commands answer at once within limits.
#[tokio::test]
async fn autocomplete_and_the_read_only_commands() {
    let bot = Bot::start(None).await;
    let typing =
        sub("submit", json!([{ "type": 3, "name": "kind", "value": "no", "focused": true }]));
    let answer = bot.deliver(&bot.sim.autocomplete("task", typing, &[OPERATOR])).await;
    assert_eq!(answer["type"], 8, "{answer}");
    let choices = answer["data"]["choices"].as_array().unwrap();
    assert!(choices.iter().any(|c| c["value"] == "noop"), "{answer}");
    for (name, options) in [
        ("help", json!([])),
        ("system", sub("status", json!([]))),
        ("system", sub("alerts", json!([]))),
        ("agent", sub("status", json!([]))),
        ("task", sub("list", json!([]))),
    ] {
        let answer = bot.command(name, options, VIEWER).await;
        assert_eq!(answer["type"], 4, "/{name}: {answer}");
        assert_ne!(answer["data"]["flags"], 64, "/{name} is not a refusal: {answer}");
    }
    bot.node.shutdown().await.unwrap();
}

/// `dreamos discord register` sends the whole command set in one bulk overwrite that
/// Discord's registration limits accept.
#[tokio::test]
async fn the_command_set_registers_within_discords_limits() {
    let bot = Bot::start(None).await;
    let config = bot.config.discord.clone().unwrap();
    let n =
        dreamos_node::discord::register(&config, &[dreamos_discord_sim::GUILD_ID]).await.unwrap();
    assert_eq!(n, 8);
    let put = bot.sim.wait_for("the registration", |r| r.method == "PUT").await;
    assert_eq!(put.status, 200, "{:?}", put.refusal);
    assert!(put.path.ends_with("/commands") && put.path.contains("/guilds/"));
    bot.node.shutdown().await.unwrap();
}

/// The answer to a gateway interaction: its callback.
async fn callback(sim: &Simulator, interaction: &Value) -> dreamos_discord_sim::Recorded {
    let token = interaction["token"].as_str().unwrap().to_string();
    sim.wait_for(&format!("the callback of {token}"), |r| {
        r.method == "POST" && r.path.ends_with(&format!("/{token}/callback"))
    })
    .await
}

/// The same commands arrive over the gateway and are answered with interaction callbacks.
#[tokio::test]
async fn commands_arrive_over_the_gateway_too() {
    let bot = Bot::with_gateway(None).await;
    bot.sim.wait_gateway("identify", 1).await;
    let help = bot.sim.command("help", json!([]), &[VIEWER]);
    bot.sim.gateway_interaction(help.clone());
    let answer = callback(&bot.sim, &help).await;
    assert_eq!(answer.status, 204, "{:?}", answer.refusal);
    assert_eq!(answer.body["type"], 4);
    assert!(embed_text(&answer.body["data"]).contains("Dream.OS"));
    let submit =
        bot.sim.command("task", sub("submit", json!([string("kind", "noop")])), &[OPERATOR]);
    bot.sim.gateway_interaction(submit.clone());
    let answer = callback(&bot.sim, &submit).await;
    assert!(embed_text(&answer.body["data"]).contains("succeeded"), "{}", answer.body);
    bot.node.shutdown().await.unwrap();
}

/// RECONNECT, a resumable close code, INVALID_SESSION and a connection whose heartbeats go
/// unanswered are all survived, and every command sent along the way is answered exactly once.
#[tokio::test]
async fn gateway_trouble_loses_no_command() {
    let bot = Bot::with_gateway(None).await;
    let sim = &bot.sim;
    sim.wait_gateway("identify", 1).await;
    let mut sent = Vec::new();
    let mut send = |sim: &Simulator| {
        let i = sim.command("task", sub("list", json!([])), &[VIEWER]);
        sim.gateway_interaction(i.clone());
        sent.push(i);
    };
    // RECONNECT: the shard resumes, and a command sent meanwhile is replayed.
    send(sim);
    sim.gateway_reconnect();
    send(sim);
    sim.wait_gateway("resume", 1).await;
    send(sim);
    // Heartbeats unanswered: the shard gives up on the connection and resumes.
    sim.gateway_silence_heartbeats();
    sim.wait_gateway("resume", 2).await;
    send(sim);
    // A close with a resumable code (4000, unknown error): the shard resumes.
    sim.gateway_close(4000);
    sim.wait_gateway("resume", 3).await;
    send(sim);
    // INVALID_SESSION (not resumable): the shard identifies again.
    sim.gateway_invalid_session();
    sim.wait_gateway("identify", 2).await;
    send(sim);
    for i in &sent {
        let answer = callback(sim, i).await;
        assert_eq!(answer.status, 204, "{:?}", answer.refusal);
    }
    let token = |r: &dreamos_discord_sim::Recorded| r.path.split('/').nth(3).map(str::to_owned);
    let mut answered: Vec<_> =
        sim.requests().iter().filter(|r| r.path.ends_with("/callback")).filter_map(token).collect();
    answered.sort();
    let before = answered.len();
    answered.dedup();
    assert_eq!(before, answered.len(), "each command answered once");
    assert_eq!(answered.len(), sent.len());
    let log = sim.gateway_log();
    let connects = log.iter().filter(|e| *e == "connect").count();
    assert!(connects >= 3, "a new connection after each trouble: {log:?}");
    bot.node.shutdown().await.unwrap();
}

#[derive(Clone, Copy, Debug)]
enum Way {
    Http,
    Gateway,
}

/// The final answer to a command delivered one way or the other: the immediate message, or,
/// for a deferred answer, the edit that replaced it.
async fn final_answer(bot: &Bot, way: Way, interaction: &Value) -> Value {
    let first = match way {
        Way::Http => bot.deliver(interaction).await,
        Way::Gateway => {
            bot.sim.gateway_interaction(interaction.clone());
            let answer = callback(&bot.sim, interaction).await;
            assert_eq!(answer.status, 204, "{:?}", answer.refusal);
            answer.body
        }
    };
    if first["type"] != 5 {
        return first["data"].clone();
    }
    let token = interaction["token"].as_str().unwrap().to_string();
    let edit = bot
        .sim
        .wait_for("the deferred answer's edit", |r| {
            r.method == "PATCH" && r.path.contains(&token) && r.status == 200
        })
        .await;
    edit.body
}

/// Every command, by the HTTP endpoint and by the gateway, does what it says.
#[tokio::test]
async fn every_command_works_both_ways() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("util.py"), "def helper_fn(x):\n    return x\n").unwrap();
    std::fs::write(
        src.path().join("main.py"),
        "import util\n\ndef run():\n    return util.helper_fn(1)\n",
    )
    .unwrap();
    let bot = Bot::with_gateway(Some(src.path())).await;
    bot.sim.wait_gateway("identify", 1).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", bot.node.addr);
    let admin = std::fs::read_to_string(&bot.node.admin_token_path).unwrap();
    let admin = admin.trim();
    let (status, _) = crate::http_call(
        &http,
        &base,
        admin,
        "POST",
        "/api/v1/agents",
        Some(json!({ "name": "a1", "capabilities": ["echo"] })),
    )
    .await;
    assert_eq!(status, 201);
    let (_, listed) =
        crate::http_call(&http, &base, admin, "GET", "/api/v1/workspaces", None).await;
    let workspace = listed["workspaces"][0]["name"].as_str().unwrap().to_string();
    for way in [Way::Http, Way::Gateway] {
        // A task that waits (run far in the future), to cancel and retry.
        let later = json!({ "kind": "noop", "run_at_ms": 4_000_000_000_000i64 });
        let (_, created) =
            crate::http_call(&http, &base, admin, "POST", "/api/v1/tasks", Some(later)).await;
        let id = created["task"]["id"].as_i64().unwrap();
        let task_id =
            |sub_name: &str| sub(sub_name, json!([{ "type": 4, "name": "id", "value": id }]));
        let ws = string("workspace", &workspace);
        let listed = format!("#{id}`");
        let shown = format!("Task #{id}");
        let rows: Vec<(&str, Value, u64, &str)> = vec![
            ("help", json!([]), VIEWER, "Dream.OS"),
            ("system", sub("status", json!([])), VIEWER, "Queue depth"),
            ("system", sub("alerts", json!([])), VIEWER, "Alerts"),
            ("agent", sub("status", json!([])), VIEWER, "a1"),
            ("agent", sub("status", json!([string("agent", "a1")])), VIEWER, "Agent a1"),
            ("agent", sub("drain", json!([string("agent", "a1")])), OPERATOR, "draining"),
            ("agent", sub("resume", json!([string("agent", "a1")])), OPERATOR, "idle"),
            (
                "agent",
                sub("message", json!([string("agent", "a1"), string("text", "hello")])),
                OPERATOR,
                "Sent to **a1**",
            ),
            (
                "agent",
                sub("broadcast", json!([string("text", "hello all")])),
                OPERATOR,
                "Sent to 1 agent",
            ),
            (
                "task",
                sub("submit", json!([string("kind", "noop"), string("priority", "high")])),
                OPERATOR,
                "succeeded",
            ),
            ("task", sub("list", json!([string("state", "queued")])), VIEWER, &listed),
            ("task", task_id("status"), VIEWER, "queued"),
            ("task", task_id("cancel"), OPERATOR, "cancelled"),
            // Retried, it runs at once: the answer may already show it done (checked below).
            ("task", task_id("retry"), OPERATOR, &shown),
            ("index", json!([ws.clone()]), OPERATOR, "succeeded"),
            (
                "search",
                json!([string("query", "helper_fn"), string("lang", "python")]),
                VIEWER,
                "util.py:1",
            ),
            ("analyze", json!([ws.clone()]), VIEWER, "Analysis of"),
            ("deps", json!([string("target", "util.py"), ws.clone()]), VIEWER, "main.py"),
        ];
        for (name, options, role, expected) in rows {
            let interaction = bot.sim.command(name, options.clone(), &[role]);
            let answer = final_answer(&bot, way, &interaction).await;
            let text = answer.to_string();
            assert!(
                text.contains(expected),
                "{way:?} /{name} {options}: expected `{expected}` in {text}"
            );
            assert_ne!(answer["flags"], 64, "{way:?} /{name} is not a refusal: {text}");
        }
        let path = format!("/api/v1/tasks/{id}?wait_ms=30000");
        let (_, retried) = crate::http_call(&http, &base, admin, "GET", &path, None).await;
        assert_eq!(retried["state"], "succeeded", "the retried task ran: {retried}");
    }
    bot.node.shutdown().await.unwrap();
}

/// The channel hears of a lost agent, a dead-lettered task and a queue at its configured
/// depth, the agent once while it stays lost.
#[tokio::test]
async fn lost_agents_and_dead_letters_are_announced() {
    let extra = "discord_watch_ms = 50\nalert_queue_depth = 3\nagent_heartbeat_ms = 50";
    let bot = Bot::start_with(None, Simulator::start().await, extra).await;
    let (node, sim) = (&bot.node, &bot.sim);
    let http = reqwest::Client::new();
    let base = format!("http://{}", node.addr);
    let admin = std::fs::read_to_string(&node.admin_token_path).unwrap().trim().to_string();
    // An agent that registers and then falls silent is lost after a few heartbeats.
    let (_, agent) = crate::http_call(
        &http,
        &base,
        &admin,
        "POST",
        "/api/v1/agents",
        Some(json!({ "name": "a2", "capabilities": ["x"] })),
    )
    .await;
    let agent_token = agent["token"].as_str().unwrap().to_string();
    let (status, _) = crate::http_call(
        &http,
        &base,
        &agent_token,
        "POST",
        "/agent/v1/register",
        Some(json!({ "protocol": 1, "capabilities": [{ "name": "x" }] })),
    )
    .await;
    assert_eq!(status, 200);
    let posted = |needle: &'static str| {
        move |r: &dreamos_discord_sim::Recorded| {
            r.path.ends_with("/messages")
                && r.body["content"].as_str().is_some_and(|c| c.contains(needle))
        }
    };
    sim.wait_for("the lost agent's notice", posted("agent a2 is lost")).await;
    // A task that fails for good is dead-lettered.
    let task = json!({ "kind": "exec", "payload": { "program": "false" }, "max_attempts": 1 });
    crate::http_call(&http, &base, &admin, "POST", "/api/v1/tasks", Some(task)).await;
    sim.wait_for("the dead letter's notice", posted("1 dead-lettered")).await;
    // Three tasks waiting reach the configured queue depth.
    for _ in 0..3 {
        let later = json!({ "kind": "noop", "run_at_ms": 4_000_000_000_000i64 });
        crate::http_call(&http, &base, &admin, "POST", "/api/v1/tasks", Some(later)).await;
    }
    sim.wait_for("the queue depth alert", posted("queue depth 3 (alert at 3)")).await;
    let lost_notices = sim
        .requests()
        .iter()
        .filter(|r| r.body["content"].as_str().is_some_and(|c| c.contains("agent a2 is lost")))
        .count();
    assert_eq!(lost_notices, 1, "announced once while it stands");
    bot.node.shutdown().await.unwrap();
}

/// A burst of finished tasks does not spam the channel: their notices are joined into a few
/// messages, none over Discord's limits, and none is lost.
#[tokio::test]
async fn a_burst_of_notices_is_coalesced() {
    let bot = Bot::start(None).await;
    let burst = 30;
    for _ in 0..burst {
        let submit =
            bot.sim.command("task", sub("submit", json!([string("kind", "noop")])), &[OPERATOR]);
        bot.deliver(&submit).await;
    }
    let channel = format!("/channels/{CHANNEL_ID}/messages");
    let mentions = |sim: &Simulator| {
        sim.requests()
            .iter()
            .filter(|r| r.path == channel)
            .map(|r| r.body["content"].as_str().unwrap_or("").matches("<@").count())
            .sum::<usize>()
    };
    let sim = &bot.sim;
    let all_told =
        crate::eventually(Duration::from_secs(30), || async { mentions(sim) == burst }).await;
    assert!(all_told, "every finished task announced: {}", mentions(sim));
    let messages: Vec<_> = sim.requests().into_iter().filter(|r| r.path == channel).collect();
    assert!(messages.len() < burst / 3, "{} messages for {burst} notices", messages.len());
    assert!(messages.iter().all(|m| m.status == 200), "within Discord's limits");
    bot.node.shutdown().await.unwrap();
}

/// `/agent message` shows the agent's reply: the agent answers the message with its
/// correlation id, and the reply is the command's answer.
#[tokio::test]
async fn agent_message_shows_the_reply() {
    let bot = Bot::start(None).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", bot.node.addr);
    let admin = std::fs::read_to_string(&bot.node.admin_token_path).unwrap().trim().to_string();
    let body = json!({ "name": "echoer", "capabilities": ["echo"] });
    let (_, agent) =
        crate::http_call(&http, &base, &admin, "POST", "/api/v1/agents", Some(body)).await;
    let token = agent["token"].as_str().unwrap().to_string();
    // The agent: waits for one message and answers it.
    let agent = {
        let (http, base) = (http.clone(), base.clone());
        tokio::spawn(async move {
            loop {
                let (_, inbox) =
                    crate::http_call(&http, &base, &token, "GET", "/agent/v1/messages", None).await;
                if let Some(m) = inbox["messages"].as_array().and_then(|m| m.first()).cloned() {
                    let text = format!("pong to {}", m["body"]["text"].as_str().unwrap_or(""));
                    let reply = json!({ "to": m["sender"], "correlation_id": m["correlation_id"], "body": { "text": text } });
                    let (status, answer) = crate::http_call(
                        &http,
                        &base,
                        &token,
                        "POST",
                        "/agent/v1/messages",
                        Some(reply),
                    )
                    .await;
                    assert_eq!(status, 201, "{answer}");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let options = sub("message", json!([string("agent", "echoer"), string("text", "ping")]));
    let answer = bot.command("agent", options, OPERATOR).await;
    agent.await.unwrap();
    let content = answer["data"]["content"].as_str().unwrap();
    assert_eq!(content, "**echoer** replied: pong to ping");
    bot.node.shutdown().await.unwrap();
}

/// Each member acts as a principal of its own (submitter, audit actor, rate-limit key), with
/// the rights its Discord roles give: no shared bot token decides, and the bot holds none.
#[tokio::test]
async fn members_are_principals_of_their_own() {
    let bot = Bot::start(None).await;
    for (id, name) in [("1100000000000000201", "bob"), ("1100000000000000202", "cy")] {
        let mut interaction =
            bot.sim.command("task", sub("submit", json!([string("kind", "noop")])), &[OPERATOR]);
        interaction["member"]["user"]["id"] = json!(id);
        interaction["member"]["user"]["username"] = json!(name);
        let answer = bot.deliver(&interaction).await;
        assert_eq!(answer["type"], 4, "{answer}");
    }
    let filter = dreamos_store::TaskFilter { limit: 10, ..Default::default() };
    let submitters: std::collections::BTreeSet<String> =
        bot.node.store.list(&filter).await.unwrap().into_iter().map(|t| t.submitter).collect();
    let expected = ["operator:discord:bob", "operator:discord:cy"].map(String::from);
    assert_eq!(submitters, expected.into_iter().collect(), "one submitter per member");
    let audit = bot
        .node
        .store
        .read_audit(dreamos_store::AuditFilter { limit: 1_000, ..Default::default() })
        .await
        .unwrap();
    let actors: Vec<&str> = audit
        .iter()
        .filter(|e| e.entry.action == "POST /api/v1/tasks")
        .map(|e| e.entry.actor.as_str())
        .collect();
    assert!(
        actors.iter().any(|a| a.ends_with("#discord-1100000000000000201"))
            && actors.iter().any(|a| a.ends_with("#discord-1100000000000000202")),
        "{actors:?}"
    );
    let tokens = bot.node.store.list_tokens().await.unwrap();
    assert!(
        tokens.iter().all(|t| !t.label.starts_with("discord-bot") || t.revoked_at_ms.is_some()),
        "the bot holds no API token: {tokens:?}"
    );
    // A viewer may search (a read, as over `GET /api/v1/search`), as a viewer.
    let answer = bot.command("search", json!([string("query", "anything")]), VIEWER).await;
    let text = answer.to_string();
    assert!(!text.contains("your role may not"), "{text}");
    bot.node.shutdown().await.unwrap();
}
