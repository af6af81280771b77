//! The commands: their definitions (for registration), the least role each needs, and what
//! each does. Commands act through the node's own HTTP API, in process, so Discord gets
//! exactly the API's validation, scopes and errors; work runs on the queue like any other
//! (`/search` is a `search` task an agent runs, `/index` an `index` task, ...).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use twilight_model::application::interaction::application_command::{
    CommandDataOption, CommandOptionValue,
};

use super::render::{BLUE, Card, GREEN, GREY, RED, Reply, clip, code_block};
use crate::auth::Role;

/// The command set, as registered with Discord (bulk overwrite).
pub fn definitions() -> Value {
    let s = |name: &str, description: &str, required: bool| json!({ "type": 3, "name": name, "description": description, "required": required });
    let auto = |name: &str, description: &str, required: bool| json!({ "type": 3, "name": name, "description": description, "required": required, "autocomplete": true });
    let sub = |name: &str, description: &str, options: Vec<Value>| json!({ "type": 1, "name": name, "description": description, "options": options });
    let choices = |name: &str, description: &str, values: &[&str]| {
        let c: Vec<Value> = values.iter().map(|v| json!({ "name": v, "value": v })).collect();
        json!({ "type": 3, "name": name, "description": description, "required": false, "choices": c })
    };
    let task_id = || json!({ "type": 4, "name": "id", "description": "task id", "required": true, "autocomplete": true, "min_value": 1 });
    json!([
        { "name": "agent", "description": "Agents: status, messages, drain and resume", "options": [
            sub("status", "One agent, or all of them", vec![auto("agent", "agent id or name", false)]),
            sub("message", "Send an agent a message and show its reply", vec![auto("agent", "agent id or name", true), s("text", "the message", true)]),
            sub("broadcast", "Send every agent a message", vec![s("text", "the message", true)]),
            sub("drain", "Let an agent finish its work and take no more", vec![auto("agent", "agent id or name", true)]),
            sub("resume", "Let a drained agent take work again", vec![auto("agent", "agent id or name", true)]),
        ]},
        { "name": "task", "description": "Tasks: submit, list, status, cancel, retry", "options": [
            sub("submit", "Submit a task", vec![
                auto("kind", "task kind", true),
                s("payload", "JSON payload", false),
                choices("priority", "priority", &["low", "normal", "high", "critical"]),
            ]),
            sub("list", "Recent tasks", vec![choices("state", "only tasks in this state", &["pending", "queued", "running", "succeeded", "failed", "cancelled"])]),
            sub("status", "One task with its history", vec![task_id()]),
            sub("cancel", "Cancel a task", vec![task_id()]),
            sub("retry", "Run a failed task again", vec![task_id()]),
        ]},
        { "name": "system", "description": "System status and alerts", "options": [
            sub("status", "Agents, queue depth, throughput, error rate, uptime", vec![]),
            sub("alerts", "What needs attention", vec![]),
        ]},
        { "name": "search", "description": "Search the code", "options": [
            s("query", "words, identifiers, \"exact phrase\" or /regex/", true),
            s("lang", "only this language", false),
            s("path", "only paths containing this", false),
            auto("workspace", "only this workspace", false),
        ]},
        { "name": "index", "description": "Bring a workspace's index up to date", "options": [auto("workspace", "workspace", true)] },
        { "name": "analyze", "description": "Complexity hotspots and dependency cycles of a workspace", "options": [auto("workspace", "workspace", true)] },
        { "name": "deps", "description": "What depends on a file", "options": [s("target", "file path", true), auto("workspace", "workspace", false)] },
        { "name": "help", "description": "What Dream.OS can do here" },
    ])
}

/// A parsed invocation: `/name sub` with its options as text.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub name: String,
    pub sub: Option<String>,
    pub args: BTreeMap<String, String>,
    /// For autocomplete: the option being typed and what is typed so far.
    pub focused: Option<(String, String)>,
}

impl Invocation {
    pub fn parse(name: &str, options: &[CommandDataOption]) -> Self {
        let mut inv = Invocation { name: name.to_string(), ..Self::default() };
        inv.take(options);
        inv
    }

    fn take(&mut self, options: &[CommandDataOption]) {
        for o in options {
            let text = match &o.value {
                CommandOptionValue::SubCommand(inner)
                | CommandOptionValue::SubCommandGroup(inner) => {
                    self.sub = Some(o.name.clone());
                    self.take(inner);
                    continue;
                }
                CommandOptionValue::Focused(typed, _) => {
                    self.focused = Some((o.name.clone(), typed.clone()));
                    continue;
                }
                CommandOptionValue::String(s) => s.clone(),
                CommandOptionValue::Integer(i) => i.to_string(),
                CommandOptionValue::Number(n) => n.to_string(),
                CommandOptionValue::Boolean(b) => b.to_string(),
                _ => continue,
            };
            self.args.insert(o.name.clone(), text);
        }
    }

    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args.get(name).map(String::as_str).filter(|s| !s.trim().is_empty())
    }

    /// `/task submit`, for messages.
    pub fn label(&self) -> String {
        match &self.sub {
            Some(sub) => format!("/{} {sub}", self.name),
            None => format!("/{}", self.name),
        }
    }

    /// The least role that may run it; `None` for unknown commands.
    pub fn least_role(&self) -> Option<Role> {
        use Role::*;
        Some(match (self.name.as_str(), self.sub.as_deref()) {
            ("help", _) | ("system", Some("status" | "alerts")) => Viewer,
            ("agent", Some("status")) => Viewer,
            ("agent", Some("message" | "broadcast" | "drain" | "resume")) => Operator,
            ("task", Some("list" | "status")) => Viewer,
            ("task", Some("submit" | "cancel" | "retry")) => Operator,
            ("search" | "analyze" | "deps", None) => Viewer,
            ("index", None) => Operator,
            _ => return None,
        })
    }
}

/// One line per command, for `/help`.
pub fn help() -> Reply {
    let lines = [
        ("/agent status [agent]", "agents and what they run"),
        ("/agent message <agent> <text>", "ask an agent; its reply is shown (operator)"),
        ("/agent broadcast <text>", "tell every agent (operator)"),
        ("/agent drain|resume <agent>", "stop or restart an agent taking work (operator)"),
        (
            "/task submit <kind> [payload] [priority]",
            "run a task; the reply shows its result (operator)",
        ),
        ("/task list [state] · /task status <id>", "tasks and their history"),
        ("/task cancel|retry <id>", "(operator)"),
        ("/system status · /system alerts", "the system at a glance"),
        ("/search <query> [lang] [path]", "code search, a page at a time"),
        ("/index <workspace>", "update a workspace's index, with progress (operator)"),
        ("/analyze <workspace> · /deps <file>", "hotspots, cycles, dependents"),
    ];
    Reply::card(Card {
        title: "Dream.OS".into(),
        description: "Run and watch the agent system from here.".into(),
        fields: lines.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        footer: Some("Long work answers at once and updates the message when done.".into()),
        color: Some(BLUE),
    })
}

fn state_color(state: &str) -> u32 {
    match state {
        "succeeded" => GREEN,
        "failed" | "cancelled" => RED,
        _ => GREY,
    }
}

/// A task as a card.
pub fn task_card(task: &Value) -> Card {
    let state = task["state"].as_str().unwrap_or("?");
    let mut fields = vec![
        ("State".to_string(), state.to_string()),
        ("Kind".to_string(), task["kind"].as_str().unwrap_or("?").to_string()),
        ("Priority".to_string(), task["priority"].as_str().unwrap_or("?").to_string()),
        ("Attempts".to_string(), format!("{}/{}", task["attempts"], task["max_attempts"])),
    ];
    if let Some(p) = task["progress"].as_object() {
        fields.push((
            "Progress".into(),
            format!("{}% {}", p["percent"], p["message"].as_str().unwrap_or("")),
        ));
    }
    if !task["result"].is_null() {
        let text = serde_json::to_string_pretty(&task["result"]).unwrap_or_default();
        fields.push(("Result".into(), code_block("json", &text, 1_024)));
    }
    if let Some(e) = task["error"].as_object() {
        fields.push((
            "Error".into(),
            format!(
                "{}: {}",
                e["class"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            ),
        ));
    }
    let history: Vec<String> = task["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .rev()
                .take(8)
                .rev()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["at"].as_str().unwrap_or(""),
                        e["event"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if !history.is_empty() {
        fields.push(("History".into(), history.join("\n")));
    }
    Card {
        title: format!("Task #{}", task["id"]),
        description: String::new(),
        fields,
        footer: Some(format!("submitted by {}", task["submitter"].as_str().unwrap_or("?"))),
        color: Some(state_color(state)),
    }
}

/// One page of search hits.
pub fn search_card(query: &str, result: &Value, page: usize) -> Card {
    let hits = result["hits"].as_array().cloned().unwrap_or_default();
    let fields = hits
        .iter()
        .map(|h| {
            let symbol = h["symbol"].as_str().map(|s| format!(" · {s}")).unwrap_or_default();
            let name = format!("{}:{}{symbol}", h["path"].as_str().unwrap_or("?"), h["line"]);
            let snippet: Vec<&str> = h["snippet"]
                .as_array()
                .map(|lines| lines.iter().filter_map(|l| l["text"].as_str()).collect())
                .unwrap_or_default();
            let lang = h["lang"].as_str().unwrap_or("");
            (name, code_block(lang, &snippet.join("\n"), 900))
        })
        .collect();
    Card {
        title: clip(&format!("Search: {query}"), 256),
        description: if hits.is_empty() { "No results.".into() } else { String::new() },
        fields,
        footer: Some(format!("page {}", page + 1)),
        color: Some(BLUE),
    }
}

pub fn agents_card(agents: &Value) -> Card {
    let list = agents["agents"].as_array().cloned().unwrap_or_default();
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    for a in &list {
        *by_state.entry(a["state"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    let summary: Vec<String> = by_state.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    Card {
        title: format!("Agents ({})", list.len()),
        description: if list.is_empty() {
            "No agents registered.".into()
        } else {
            summary.join(" · ")
        },
        fields: list
            .iter()
            .map(|a| {
                let caps: Vec<&str> = a["capabilities"]
                    .as_array()
                    .map(|c| c.iter().filter_map(|c| c["name"].as_str().or(c.as_str())).collect())
                    .unwrap_or_default();
                (
                    format!(
                        "{} ({})",
                        a["name"].as_str().unwrap_or("?"),
                        a["state"].as_str().unwrap_or("?")
                    ),
                    format!("running {} · {}", a["running"], caps.join(", ")),
                )
            })
            .collect(),
        footer: None,
        color: Some(BLUE),
    }
}

pub fn agent_card(a: &Value) -> Card {
    let caps = a["capabilities"].to_string();
    Card {
        title: format!("Agent {}", a["name"].as_str().unwrap_or("?")),
        description: format!("`{}`", a["id"].as_str().unwrap_or("?")),
        fields: vec![
            ("State".into(), a["state"].as_str().unwrap_or("?").to_string()),
            ("Capabilities".into(), clip(&caps, 1_000)),
            ("Slots".into(), a["slots"].to_string()),
        ],
        footer: None,
        color: Some(if a["state"] == "lost" { RED } else { GREEN }),
    }
}

/// `/system status` from the status and agent answers.
pub fn system_card(status: &Value, agents: &Value) -> Card {
    let tasks = &status["tasks"];
    let n = |s: &str| tasks[s].as_u64().unwrap_or(0);
    let finished = n("succeeded") + n("failed") + n("cancelled");
    let errors = n("failed");
    let rate = if finished == 0 { 0.0 } else { 100.0 * errors as f64 / finished as f64 };
    let uptime = status["uptime_s"].as_u64().unwrap_or(0);
    let throughput = status["submitted_total"].as_u64().unwrap_or(0) as f64 / uptime.max(1) as f64;
    let depth: Vec<String> = ["critical", "high", "normal", "low"]
        .iter()
        .map(|p| format!("{p}: {}", status["queued_by_priority"][p]))
        .collect();
    let agent_states = agents_card(agents).description;
    Card {
        title: format!("Dream.OS node {}", status["node"].as_str().unwrap_or("")),
        description: String::new(),
        fields: vec![
            ("Agents".into(), agent_states),
            ("Local agents".into(), status["local_agents"].to_string()),
            ("Queue depth".into(), depth.join(" · ")),
            ("Running".into(), n("running").to_string()),
            ("Throughput".into(), format!("{throughput:.2} tasks/s since start")),
            ("Error rate".into(), format!("{rate:.1}% of {finished} finished")),
            (
                "Uptime".into(),
                humantime::format_duration(std::time::Duration::from_secs(uptime)).to_string(),
            ),
        ],
        footer: Some(format!("store: {}", status["store"].as_str().unwrap_or("?"))),
        color: Some(BLUE),
    }
}

/// What needs attention, one line each (empty: nothing). `queue_depth` and `error_rate` (a
/// percentage of finished tasks, once ten have finished) are the thresholds.
pub fn alerts(status: &Value, agents: &Value, queue_depth: u64, error_rate: f64) -> Vec<String> {
    let tasks = &status["tasks"];
    let n = |s: &str| tasks[s].as_u64().unwrap_or(0);
    let mut out = Vec::new();
    if n("queued") >= queue_depth {
        out.push(format!("queue depth {} (alert at {queue_depth})", n("queued")));
    }
    let finished = n("succeeded") + n("failed") + n("cancelled");
    if finished >= 10 {
        let rate = 100.0 * n("failed") as f64 / finished as f64;
        if rate >= error_rate {
            out.push(format!("error rate {rate:.1}% (alert at {error_rate}%)"));
        }
    }
    // Failed tasks are the dead-letter set: nothing retries them but a person.
    if n("failed") > 0 {
        out.push(format!("{} dead-lettered task(s): `/task list state:failed`", n("failed")));
    }
    for a in agents["agents"].as_array().into_iter().flatten() {
        if a["state"] == "lost" {
            out.push(format!("agent {} is lost", a["name"].as_str().unwrap_or("?")));
        }
    }
    out
}
