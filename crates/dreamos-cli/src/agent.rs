//! `dreamos agent ...`: operators manage agents, and `dreamos agent run` is a remote agent
//! speaking protocol v1 (docs/protocol.md) to a node over HTTP.
//!
//! The remote agent registers, heartbeats (its answer carries cancellations, draining and
//! stop/restart), long-polls for work within its slots, runs `noop` and `exec` tasks (exec
//! under this machine's own allowlists and limits, from its data dir's configuration), reports
//! finished attempts in batches with their fencing tokens, and answers operators' messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use dreamos_core::Outcome;
use dreamos_node::Config;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};

use crate::client::Client;
use crate::output;

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Create an agent and its credential (printed once; admin).
    Create {
        /// A name people know it by (unique).
        name: String,
        /// A capability it may declare: NAME or NAME@VERSION (repeatable).
        #[arg(long = "capability", value_name = "CAPABILITY")]
        capabilities: Vec<String>,
        /// A label, KEY=VALUE (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Tasks it may run at once.
        #[arg(long, default_value_t = 1)]
        slots: u32,
    },
    /// List agents with their state and load.
    List,
    /// One agent: state, capabilities, running tasks and its state history.
    Show {
        /// The agent's id or name.
        agent: String,
    },
    /// Let running work finish and take no new work.
    Drain {
        /// The agent's id or name.
        agent: String,
    },
    /// Take work again after a drain.
    Resume {
        /// The agent's id or name.
        agent: String,
    },
    /// Stop the agent (it finishes its running work and exits).
    Stop {
        /// The agent's id or name.
        agent: String,
    },
    /// Restart the agent (it finishes its running work and registers again).
    Restart {
        /// The agent's id or name.
        agent: String,
    },
    /// Delete an agent that is not connected (starting, stopped or lost) and revoke its
    /// credential (unscoped admin).
    Delete {
        /// The agent's id or name.
        agent: String,
    },
    /// Send a message to an agent and show its reply.
    Message {
        /// The agent's id or name.
        agent: String,
        /// The message.
        text: String,
        /// How long to wait for a reply (0: do not wait).
        #[arg(long, default_value = "10s")]
        wait: String,
    },
    /// Send a message to every agent, or to those with a capability.
    Broadcast {
        /// The message.
        text: String,
        /// Only agents that declare this capability (exact name), e.g. exec.
        #[arg(long, value_name = "NAME")]
        capability: Option<String>,
    },
    /// Messages agents sent to you.
    Inbox,
    /// Run a remote agent against a node.
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// Capability to declare: NAME or NAME@VERSION (repeatable; default noop and exec).
    #[arg(long = "capability", value_name = "CAPABILITY")]
    capabilities: Vec<String>,
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Tasks to run at once (default: the slots the agent was created with).
    #[arg(long, value_name = "N")]
    slots: Option<u32>,
}

fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("label `{l}` is not KEY=VALUE"))
        })
        .collect()
}

fn short_time(ms: Option<i64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) => output::relative(ms.min(crate::now_ms()), crate::now_ms()),
    }
}

fn caps_text(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|c| match c["version"].as_str() {
                    Some(ver) => format!("{}@{ver}", c["name"].as_str().unwrap_or_default()),
                    None => c["name"].as_str().unwrap_or_default().to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub async fn command(client: Client, command: &AgentCommand, as_json: bool) -> Result<i32> {
    let print = |v: &Value| println!("{v}");
    match command {
        AgentCommand::Create { name, capabilities, labels, slots } => {
            let body = json!({
                "name": name,
                "capabilities": capabilities,
                "labels": parse_labels(labels)?,
                "slots": slots,
            });
            let v = client.post("/api/v1/agents", &body).await?;
            if as_json {
                print(&json!({ "id": v["id"], "name": name, "token": v["token"] }));
            } else {
                println!("agent {name} created: id {}", v["id"].as_str().unwrap_or_default());
                println!("token (shown once): {}", v["token"].as_str().unwrap_or_default());
                println!(
                    "run it: dreamos agent run --server URL --token TOKEN{}",
                    capabilities.iter().map(|c| format!(" --capability {c}")).collect::<String>()
                );
            }
        }
        AgentCommand::List => {
            let v = client.get("/api/v1/agents").await?;
            let list = v["agents"].as_array().cloned().unwrap_or_default();
            if as_json {
                list.iter().for_each(print);
            } else if list.is_empty() {
                println!("no agents: dreamos agent create NAME --capability C");
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|a| {
                        vec![
                            output::text(&a["id"]),
                            output::text(&a["name"]),
                            output::text(&a["state"]),
                            format!("{}/{}", a["running"], a["slots"]),
                            short_time(a["last_seen_at_ms"].as_i64()),
                            caps_text(&a["capabilities"]),
                        ]
                    })
                    .collect();
                output::table(&["ID", "NAME", "STATE", "LOAD", "SEEN", "CAPABILITIES"], &rows);
            }
        }
        AgentCommand::Show { agent } => {
            let a = client.get(&format!("/api/v1/agents/{agent}")).await?;
            if as_json {
                print(&a);
            } else {
                println!(
                    "agent    {} ({})",
                    a["name"].as_str().unwrap_or_default(),
                    a["id"].as_str().unwrap_or_default()
                );
                println!("state    {}", a["state"].as_str().unwrap_or_default());
                println!("caps     {}", caps_text(&a["capabilities"]));
                println!("labels   {}", a["labels"]);
                println!("slots    {}", a["slots"]);
                println!("seen     {}", short_time(a["last_seen_at_ms"].as_i64()));
                for t in a["running"].as_array().into_iter().flatten() {
                    println!(
                        "running  task {} ({})",
                        t["id"],
                        t["kind"].as_str().unwrap_or_default()
                    );
                }
                println!("history:");
                for e in a["history"].as_array().into_iter().flatten() {
                    println!(
                        "  {}  {} -> {}  {}",
                        short_time(e["at_ms"].as_i64()),
                        e["from"].as_str().unwrap_or("-"),
                        e["to"].as_str().unwrap_or_default(),
                        e["reason"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        AgentCommand::Drain { agent }
        | AgentCommand::Resume { agent }
        | AgentCommand::Stop { agent }
        | AgentCommand::Restart { agent } => {
            let action = match command {
                AgentCommand::Drain { .. } => "drain",
                AgentCommand::Resume { .. } => "resume",
                AgentCommand::Stop { .. } => "stop",
                _ => "restart",
            };
            let a = client.post(&format!("/api/v1/agents/{agent}/{action}"), &json!({})).await?;
            if as_json {
                print(&a);
            } else {
                println!(
                    "agent {} is {}",
                    a["name"].as_str().unwrap_or_default(),
                    a["state"].as_str().unwrap_or_default()
                );
            }
        }
        AgentCommand::Delete { agent } => {
            let a = client
                .call(reqwest::Method::DELETE, &format!("/api/v1/agents/{agent}"), None)
                .await?;
            if as_json {
                print(&a);
            } else {
                println!(
                    "agent {} ({}) deleted; its credential is revoked",
                    a["name"].as_str().unwrap_or_default(),
                    a["id"].as_str().unwrap_or_default()
                );
            }
        }
        AgentCommand::Message { agent, text, wait } => {
            let wait = humantime::parse_duration(wait)
                .with_context(|| format!("--wait `{wait}` is not a duration like 10s"))?;
            let body = json!({ "text": text, "wait_ms": wait.as_millis() as u64 });
            let v = client.post(&format!("/api/v1/agents/{agent}/messages"), &body).await?;
            if as_json {
                print(&v);
            } else if wait.is_zero() {
                println!("sent");
            } else if v["reply"].is_null() {
                println!("sent; no reply within {}", humantime::format_duration(wait));
                return Ok(3);
            } else {
                let r = &v["reply"];
                let text = r["body"]["text"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| r["body"].to_string());
                println!("{}: {text}", r["sender"].as_str().unwrap_or_default());
            }
        }
        AgentCommand::Broadcast { text, capability } => {
            let body = json!({ "text": text, "capability": capability });
            let v = client.post("/api/v1/agents/broadcast", &body).await?;
            if as_json {
                print(&v);
            } else {
                println!("sent to {} agents", v["ids"].as_array().map_or(0, Vec::len));
            }
        }
        AgentCommand::Inbox => {
            let v = client.get("/api/v1/messages").await?;
            let messages = v["messages"].as_array().cloned().unwrap_or_default();
            if as_json {
                messages.iter().for_each(print);
            } else if messages.is_empty() {
                println!("no messages");
            } else {
                for m in &messages {
                    let body = m["body"]["text"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| m["body"].to_string());
                    println!("{}: {body}", m["sender"].as_str().unwrap_or_default());
                }
            }
        }
        AgentCommand::Run(_) => bail!("internal: `agent run` is started by `run_remote`"),
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// The remote agent

/// What the node told the agent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Work,
    Drain,
    Stop,
    Restart,
}

struct Running {
    fence: i64,
    cancel: watch::Sender<bool>,
}

struct Session {
    client: Client,
    running: Mutex<HashMap<i64, Running>>,
    slot_freed: Notify,
    mode: watch::Sender<Mode>,
    reports: mpsc::UnboundedSender<Value>,
    config: Arc<Config>,
    /// How long a lease lasts past the last heartbeat a node answered.
    lease: Duration,
    /// When a node last answered a heartbeat (or the registration).
    contact: Mutex<Instant>,
}

impl Session {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn contact(&self) -> Instant {
        *self.contact.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        *self.contact.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// What this runtime can run.
const RUNS: [&str; 3] = ["noop", "exec", "fanout"];

pub async fn run_remote(client: Client, args: &RunArgs, config: Config) -> Result<i32> {
    let capabilities: Vec<Value> = if args.capabilities.is_empty() {
        // What the credential was granted and this runtime can run (all it can run when the
        // grant is open).
        let me = client.get("/agent/v1/me").await?;
        let granted: Vec<Value> = me["capabilities"].as_array().cloned().unwrap_or_default();
        let (mut caps, dropped): (Vec<Value>, Vec<Value>) = if granted.is_empty() {
            (RUNS.iter().map(|c| json!({ "name": c })).collect(), Vec::new())
        } else {
            granted
                .into_iter()
                .partition(|c| RUNS.contains(&c["name"].as_str().unwrap_or_default()))
        };
        if !dropped.is_empty() && !caps.is_empty() {
            eprintln!(
                "warning: not declaring {}: granted to this agent, but `dreamos agent run` cannot run them (it runs {}); declare them with --capability if a program of yours serves them",
                caps_text(&json!(dropped)),
                RUNS.join(", ")
            );
        }
        if caps.is_empty() {
            bail!(
                "this agent was granted none of the capabilities `dreamos agent run` can serve ({}); declare custom ones with --capability",
                RUNS.join(", ")
            );
        }
        caps.dedup();
        caps
    } else {
        args.capabilities
            .iter()
            .map(|c| match c.split_once('@') {
                Some((n, v)) => json!({ "name": n, "version": v }),
                None => json!({ "name": c }),
            })
            .collect()
    };
    let labels = parse_labels(&args.labels)?;
    let config = Arc::new(config);
    let mut signals = Box::pin(crate::wait_for_signal());
    loop {
        let mut registration = json!({
            "protocol": dreamos_node::protocol::PROTOCOL_VERSION,
            "capabilities": capabilities,
            "labels": labels,
        });
        if let Some(slots) = args.slots {
            registration["slots"] = json!(slots);
        }
        let reg = register(&client, &registration).await?;
        let slots = reg["agent"]["slots"].as_u64().map_or(1, |s| s.max(1) as u32);
        let heartbeat_ms = reg["heartbeat_ms"].as_u64().unwrap_or(5_000).max(10);
        let lease_ms = reg["lease_ms"].as_u64().unwrap_or(30_000).max(heartbeat_ms);
        let name = reg["agent"]["name"].as_str().unwrap_or_default().to_string();
        eprintln!(
            "agent {name} ({}) registered: {} slots, heartbeat every {heartbeat_ms} ms",
            reg["agent"]["id"].as_str().unwrap_or_default(),
            slots
        );
        let (mode, mode_rx) = watch::channel(Mode::Work);
        let (reports, report_rx) = mpsc::unbounded_channel();
        let session = Arc::new(Session {
            client: client.clone(),
            running: Mutex::new(HashMap::new()),
            slot_freed: Notify::new(),
            mode,
            reports,
            config: config.clone(),
            lease: Duration::from_millis(lease_ms),
            contact: Mutex::new(Instant::now()),
        });
        let beat = tokio::spawn(heartbeat_loop(session.clone(), heartbeat_ms, name.clone()));
        let reporter = tokio::spawn(report_loop(session.clone(), report_rx));
        let claimer = claim_loop(session.clone(), slots as usize, mode_rx.clone());
        let interrupted = tokio::select! {
            _ = claimer => false,
            _ = &mut signals => true,
        };
        if interrupted {
            let _ = session.mode.send(Mode::Stop);
            eprintln!("stopping: finishing running tasks");
        }
        // Running work finishes (and is reported) before the session ends.
        while !session.running().is_empty() {
            tokio::select! {
                _ = session.slot_freed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        beat.abort();
        drop(session);
        let _ = reporter.await;
        let last = *mode_rx.borrow();
        match last {
            Mode::Restart if !interrupted => {
                eprintln!("restarting at the node's request");
                continue;
            }
            _ => {
                // A clean exit: `stopped`, not `lost` a few heartbeats from now.
                let reason = json!({ "reason": "the agent process stopped" });
                if let Err(e) = client.post("/agent/v1/deregister", &reason).await {
                    eprintln!(
                        "warning: could not deregister ({e:#}); the node will call this agent lost"
                    );
                }
                eprintln!("agent {name} stopped");
                return Ok(0);
            }
        }
    }
}

/// Registers, trying again with backoff while no node can be reached or none is ready (an
/// agent may start before its node, or register again while the node restarts).
async fn register(client: &Client, registration: &Value) -> Result<Value> {
    let mut backoff = Backoff::new(Duration::from_secs(5));
    let mut said = false;
    loop {
        match client.post("/agent/v1/register", registration).await {
            Ok(v) => return Ok(v),
            Err(e) if crate::client::transient(&e) => {
                if !said {
                    eprintln!("cannot register yet: {e:#}; trying again");
                    said = true;
                }
                backoff.wait().await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn claim_loop(s: Arc<Session>, slots: usize, mut mode: watch::Receiver<Mode>) {
    loop {
        let current = *mode.borrow();
        match current {
            Mode::Stop | Mode::Restart => return,
            Mode::Drain => {
                let _ = mode.changed().await;
                continue;
            }
            Mode::Work => {}
        }
        let free = slots.saturating_sub(s.running().len());
        if free == 0 {
            tokio::select! {
                _ = s.slot_freed.notified() => {}
                _ = mode.changed() => {}
            }
            continue;
        }
        let body = json!({ "max": free, "wait_ms": 20_000 });
        let answer = tokio::select! {
            a = s.client.post("/agent/v1/claim", &body) => a,
            _ = mode.changed() => continue,
        };
        let tasks = match answer {
            Ok(v) if v["node"] == "stopping" => {
                // It takes no new work; the heartbeat turns to another node, if there is one.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = mode.changed() => {}
                }
                continue;
            }
            Ok(v) => v["tasks"].as_array().cloned().unwrap_or_default(),
            Err(e) => {
                eprintln!("claim failed: {e:#}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for task in tasks {
            let (Some(id), Some(fence)) = (task["id"].as_i64(), task["fence"].as_i64()) else {
                continue;
            };
            if task["kind"] == "fanout" {
                // Fan-out: the node runs the children and completes this task with their
                // results; nothing is reported for it here.
                let body = json!({ "fence": fence, "tasks": task["payload"]["tasks"] });
                let path = format!("/agent/v1/tasks/{id}/children");
                if let Err(e) = s.client.post(&path, &body).await {
                    let report = json!({
                        "task_id": id,
                        "fence": fence,
                        "error": { "class": "fan_out_failed", "message": format!("{e:#}") },
                        "retryable": false,
                    });
                    let _ = s.reports.send(report);
                }
                continue;
            }
            let (cancel, cancel_rx) = watch::channel(false);
            s.running().insert(id, Running { fence, cancel });
            let s = s.clone();
            tokio::spawn(async move {
                let outcome = execute(&s.config, &task, cancel_rx).await;
                let mut report = json!({ "task_id": id, "fence": fence });
                match outcome {
                    Outcome::Succeeded { result } => report["result"] = result,
                    Outcome::Failed { error, retryable } => {
                        report["error"] = json!(error);
                        report["retryable"] = json!(retryable);
                    }
                    Outcome::Cancelled | Outcome::Released => {
                        report["error"] =
                            json!({ "class": "cancelled", "message": "stopped by request" });
                        report["retryable"] = json!(false);
                    }
                }
                let _ = s.reports.send(report);
            });
        }
    }
}

/// Waits between tries of a request that failed for a reason that may pass: 200 ms, doubling
/// up to `max`.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self { next: Duration::from_millis(200).min(max), max }
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }
}

/// Sends finished attempts in batches: whatever is waiting goes in one message. A batch that
/// cannot be delivered (the node is restarting, or behind a balancer that has not noticed it
/// is gone) is sent again with backoff for as long as its leases may still hold: the running
/// tasks stay in the heartbeat, which keeps extending them whenever a node answers, and the
/// fences make a repeated report harmless.
async fn report_loop(s: Arc<Session>, mut rx: mpsc::UnboundedReceiver<Value>) {
    let client = s.client.clone();
    let lease = s.lease;
    let weak = Arc::downgrade(&s);
    drop(s);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1_000 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let body = json!({ "reports": batch });
        let mut backoff = Backoff::new(Duration::from_secs(5));
        let first_try = Instant::now();
        loop {
            match client.post("/agent/v1/reports", &body).await {
                Ok(v) => {
                    for r in v["results"].as_array().into_iter().flatten() {
                        if let Some(code) = r["code"].as_str() {
                            eprintln!(
                                "report on task {} refused: {code}: {}",
                                r["task_id"], r["message"]
                            );
                        }
                    }
                    break;
                }
                Err(e) => {
                    // Leases outlive the last answered heartbeat by `lease`; and a node that
                    // keeps answering but refuses the batch (5xx) is not tried beyond that
                    // either, so a batch never blocks the reports after it for long.
                    let holds = first_try.elapsed() < lease
                        && weak.upgrade().is_some_and(|s| s.contact().elapsed() < lease);
                    if crate::client::transient(&e) && holds {
                        eprintln!("reports failed: {e:#}; sending them again");
                        backoff.wait().await;
                        continue;
                    }
                    eprintln!(
                        "reports failed: {e:#}; their leases will lapse and the tasks be retried"
                    );
                    break;
                }
            }
        }
        if let Some(s) = weak.upgrade() {
            let mut running = s.running();
            for r in &batch {
                if let Some(id) = r["task_id"].as_i64() {
                    running.remove(&id);
                }
            }
            drop(running);
            s.slot_freed.notify_waiters();
            s.slot_freed.notify_one();
        }
    }
}

/// Heartbeats every `every_ms`. One that fails is tried again sooner, with backoff, so a node
/// back from a restart hears from the agent (and extends its leases) at once; a node that says
/// it is stopping is left for the next `--server`, if there is one.
async fn heartbeat_loop(s: Arc<Session>, every_ms: u64, name: String) {
    let every = Duration::from_millis(every_ms);
    let mut backoff = Backoff::new(every);
    let mut failing = false;
    let mut pause = every;
    let mut hops = 0;
    loop {
        tokio::time::sleep(pause).await;
        let running: Vec<Value> =
            s.running().iter().map(|(id, r)| json!({ "task_id": id, "fence": r.fence })).collect();
        let answer =
            match s.client.post("/agent/v1/heartbeat", &json!({ "running": running })).await {
                Ok(a) => a,
                Err(e) => {
                    if !failing {
                        eprintln!("heartbeat failed: {e:#}; trying again");
                        failing = true;
                    }
                    pause = backoff.next;
                    backoff.next = (backoff.next * 2).min(backoff.max);
                    continue;
                }
            };
        if failing {
            eprintln!("heartbeat answered again by {}", s.client.base());
            failing = false;
        }
        backoff = Backoff::new(every);
        pause = every;
        s.touch();
        if answer["node"] == "stopping" {
            let leaving = s.client.base().to_string();
            // At once to the next node, but once around the list at most: when every node is
            // stopping, the agent waits for them at the usual pace.
            if hops < s.client.nodes() && s.client.next_node() {
                eprintln!("{leaving} is stopping; going on with {}", s.client.base());
                pause = Duration::ZERO;
                hops += 1;
            }
        } else {
            hops = 0;
        }
        for id in answer["cancel"].as_array().into_iter().flatten().filter_map(Value::as_i64) {
            if let Some(r) = s.running().get(&id) {
                let _ = r.cancel.send(true);
            }
        }
        for id in answer["lost"].as_array().into_iter().flatten().filter_map(Value::as_i64) {
            // The lease is gone: stop the work; its report would be refused anyway.
            if let Some(r) = s.running().get(&id) {
                let _ = r.cancel.send(true);
            }
        }
        let mode = match (answer["control"].as_str(), answer["state"].as_str()) {
            (Some("stop"), _) => Mode::Stop,
            (Some("restart"), _) => Mode::Restart,
            (_, Some("draining")) => Mode::Drain,
            _ => Mode::Work,
        };
        s.mode.send_if_modified(|m| {
            let changed = *m != mode;
            *m = mode;
            changed
        });
        answer_messages(&s, &name).await;
    }
}

/// Shows messages and answers those that expect a reply (they carry a correlation id).
async fn answer_messages(s: &Session, name: &str) {
    let Ok(v) = s.client.get("/agent/v1/messages?max=100").await else { return };
    let messages = v["messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        return;
    }
    let mut ids = Vec::new();
    for m in &messages {
        let text =
            m["body"]["text"].as_str().map(str::to_string).unwrap_or_else(|| m["body"].to_string());
        eprintln!("message from {}: {text}", m["sender"].as_str().unwrap_or_default());
        if let (Some(corr), Some(sender)) = (m["correlation_id"].as_str(), m["sender"].as_str()) {
            let running = s.running().len();
            let reply = json!({
                "to": sender,
                "correlation_id": corr,
                "reply_to": m["id"],
                "body": { "text": format!("{name} received \"{text}\" ({running} tasks running)") },
            });
            if let Err(e) = s.client.post("/agent/v1/messages", &reply).await {
                eprintln!("reply failed: {e:#}");
            }
        }
        ids.extend(m["id"].as_i64());
    }
    let _ = s.client.post("/agent/v1/messages/ack", &json!({ "ids": ids })).await;
}

async fn execute(config: &Config, task: &Value, mut cancel: watch::Receiver<bool>) -> Outcome {
    let payload = &task["payload"];
    match task["kind"].as_str().unwrap_or_default() {
        "noop" => {
            let sleep_ms = payload["sleep_ms"].as_u64().unwrap_or(0);
            if sleep_ms > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
                    _ = cancel.wait_for(|c| *c) => return Outcome::Cancelled,
                }
            }
            Outcome::Succeeded { result: json!({}) }
        }
        "exec" => {
            dreamos_node::exec::run(config, payload, task["timeout_ms"].as_i64(), cancel).await
        }
        other => Outcome::Failed {
            error: dreamos_core::TaskError {
                class: "unsupported_kind".into(),
                message: format!("this agent cannot run `{other}`"),
            },
            retryable: true,
        },
    }
}
