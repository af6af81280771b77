//! `dreamos`: runs a node (`up`), talks to one (`task`, `status`), and searches code locally.
//! The binary is glue: the work lives in the library crates. (The benchmarks are
//! `dreamos-bench`, a binary of their own.)

mod admin;
mod agent;
mod client;
mod output;
mod scan;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use dreamos_node::{Config, Node, Overrides};
use serde_json::{Value, json};

use crate::client::Client;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dreamos",
    version,
    about = "Dream.OS: a distributed agent system that understands code"
)]
struct Cli {
    /// Where the node keeps its store, tokens and configuration.
    #[arg(long, global = true, env = "DREAMOS_DATA_DIR", default_value = "./.dreamos")]
    data_dir: PathBuf,
    /// Configuration file (default: DATA_DIR/dreamos.toml if present).
    #[arg(long, global = true, env = "DREAMOS_CONFIG")]
    config: Option<PathBuf>,
    /// Node to talk to (default: the node running on the data dir, as its node.json says,
    /// else the configured listen address). Repeat it, or separate URLs with commas, to name
    /// several nodes of a cluster: requests go to the first that can be reached.
    #[arg(long, global = true, env = "DREAMOS_URL", value_delimiter = ',')]
    server: Vec<String>,
    /// A PEM certificate (a CA or the node's own) to trust for https:// nodes, besides the
    /// usual roots.
    #[arg(long, global = true, env = "DREAMOS_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// API token (default: DATA_DIR/admin.token).
    #[arg(long, global = true, env = "DREAMOS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Machine-readable output: one JSON object, or one per line for lists.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: the store, the HTTP API and the local agents.
    Up(UpArgs),
    /// Submit, list, inspect, cancel and retry tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// The node's status: tasks by state, queue depth, uptime.
    Status,
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Code workspaces registered with the node: add, list, remove, index.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Index a source tree (it becomes a workspace of the data dir); no node needed.
    Index(scan::IndexArgs),
    /// Search the indexed workspaces: words, "phrases", /regexes/, sym:, lang:, path:, kind:.
    Search(scan::SearchArgs),
    /// List definitions from the index.
    Symbols(scan::SymbolsArgs),
    /// Structure metrics: lines, complexity per language, file and function; hotspots.
    Metrics(scan::MetricsArgs),
    /// The import graph: export, cycles, and what depends on a file.
    Graph(scan::GraphArgs),
    /// Agents: create, list, show, drain, resume, stop, restart, message, broadcast, and
    /// `agent run` to run a remote agent against a node.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// API tokens: create (with a role, an expiry, workspace scopes), list, revoke (admin).
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// The hash-chained audit log: tail, search, verify (admin).
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// The Discord bot: `discord register` registers its slash commands.
    #[command(subcommand)]
    Discord(DiscordCommand),
}

#[derive(Subcommand)]
enum DiscordCommand {
    /// Register the slash commands (a bulk overwrite): in these guilds (instant), or in the
    /// configured `discord_guilds`, or globally when there are none.
    Register {
        /// A guild id (repeatable).
        #[arg(long = "guild")]
        guilds: Vec<u64>,
    },
}

#[derive(Args)]
struct UpArgs {
    /// Address of the HTTP API.
    #[arg(long, env = "DREAMOS_LISTEN")]
    listen: Option<String>,
    /// Number of built-in local agents (default: number of cores).
    #[arg(long, env = "DREAMOS_AGENTS")]
    agents: Option<usize>,
    /// Store URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "DREAMOS_STORE")]
    store: Option<String>,
    /// A source tree to register as a code workspace and index (repeatable).
    #[arg(long = "workspace")]
    workspaces: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Submit a task.
    Submit(SubmitArgs),
    /// List tasks, newest first.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        /// List the archive instead of live tasks.
        #[arg(long)]
        archived: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show a task with its history.
    Show { id: String },
    /// Cancel a task (a running one stops at its holder's next heartbeat).
    Cancel { id: String },
    /// Retry a failed or cancelled task with a fresh attempt budget.
    Retry { id: String },
}

#[derive(Args)]
struct SubmitArgs {
    kind: String,
    /// Payload as JSON (default `{}`).
    #[arg(long)]
    payload: Option<String>,
    /// critical, high, normal or low.
    #[arg(long)]
    priority: Option<String>,
    /// Capability the agent needs besides the kind (repeatable).
    #[arg(long = "capability")]
    capabilities: Vec<String>,
    /// Run only after this task succeeded (repeatable).
    #[arg(long = "after")]
    after: Vec<String>,
    #[arg(long)]
    idempotency_key: Option<String>,
    /// When to run: RFC 3339 (2026-01-01T10:00:00Z) or a delay (30s, 5m).
    #[arg(long)]
    run_at: Option<String>,
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Time limit of one attempt (e.g. 30s).
    #[arg(long)]
    timeout: Option<String>,
    /// Wait for the task to finish and show its result.
    #[arg(long)]
    wait: bool,
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Register a source tree of the node's machine and index it (admin).
    Add { name: String, path: PathBuf },
    /// List the workspaces.
    List,
    /// Forget a workspace and delete its index (its files are kept).
    Remove { name: String },
    /// Index a workspace again (an `index` task).
    Index {
        name: String,
        /// Wait for the index to be up to date, showing progress.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (without secrets).
    Show,
}

fn main() {
    // Output piped into a program that stops reading (`| head`) ends the command quietly,
    // as with other command-line tools, instead of a panic about a broken pipe.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.contains("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = Cli::parse_from(scan::mark_negations(std::env::args_os().collect()));
    let filter = match cli.command {
        Command::Up(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DREAMOS_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => std::process::exit(code),
        // A reader that stopped early (`dreamos symbols | head`) is not an error to report;
        // the status is the shell's for a closed pipe, as when printing panicked above.
        Err(e) if broken_pipe(&e) => std::process::exit(141),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Whether an error comes from writing to a pipe whose reader has gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Up(ref args) => up(&cli, args).await,
        Command::Config(ConfigCommand::Show) => {
            // A running node's own configuration (what it actually runs with), else what a
            // node on this data dir would start with.
            let running =
                !cli.server.is_empty() || dreamos_node::running_node_url(&cli.data_dir).is_some();
            if running {
                let client = client(&cli)?;
                let shown = client.get("/api/v1/config").await?;
                eprintln!("the configuration of the node at {}", client.base());
                println!("{}", serde_json::to_string_pretty(&shown)?);
                return Ok(0);
            }
            let config = Config::load(&cli.data_dir, cli.config.as_deref(), Overrides::default())?;
            eprintln!(
                "no node is running on this data dir: the configuration one would start with"
            );
            println!("{}", serde_json::to_string_pretty(&config.redacted())?);
            Ok(0)
        }
        Command::Discord(DiscordCommand::Register { ref guilds }) => {
            let config = Config::load(&cli.data_dir, cli.config.as_deref(), Overrides::default())?;
            let Some(discord) = config.discord else {
                anyhow::bail!(
                    "Discord is not configured: set discord_application_id and discord_token \
                     (DREAMOS_DISCORD_APPLICATION_ID, DREAMOS_DISCORD_TOKEN)"
                );
            };
            let guilds = if guilds.is_empty() { discord.guilds.clone() } else { guilds.clone() };
            let n = dreamos_node::discord::register(&discord, &guilds).await?;
            match guilds.as_slice() {
                [] => {
                    println!("registered {n} commands globally (they may take an hour to appear)")
                }
                g => println!("registered {n} commands in {} guild(s)", g.len()),
            }
            Ok(0)
        }
        Command::Status => {
            let v = client(&cli)?.get("/api/v1/status").await?;
            output::status(&v, cli.json);
            Ok(0)
        }
        Command::Task(ref command) => task(&cli, command).await,
        Command::Agent(agent::AgentCommand::Run(ref args)) => {
            let config = Config::load(&cli.data_dir, cli.config.as_deref(), Overrides::default())?;
            agent::run_remote(client(&cli)?, args, config).await
        }
        Command::Agent(ref command) => agent::command(client(&cli)?, command, cli.json).await,
        Command::Token(ref command) => admin::token(client(&cli)?, command, cli.json).await,
        Command::Audit(ref command) => admin::audit(client(&cli)?, command, cli.json).await,
        Command::Workspace(ref command) => workspace(&cli, command).await,
        Command::Index(ref args) => scan::index(&cli.data_dir, args, cli.json),
        // With --server, search asks that node (with the caller's token and scope).
        Command::Search(ref args) if !cli.server.is_empty() => {
            scan::search_remote(&client(&cli)?, args, cli.json).await
        }
        Command::Search(ref args) => scan::search(&cli.data_dir, args, cli.json),
        // The node does not serve these yet: say so rather than answer from this machine.
        Command::Symbols(_) | Command::Metrics(_) | Command::Graph(_) if !cli.server.is_empty() => {
            anyhow::bail!(
                "symbols, metrics and graph read this machine's index (DATA_DIR/index); a node does not serve them over --server yet: run them where the workspace is indexed"
            )
        }
        Command::Symbols(ref args) => scan::symbols(&cli.data_dir, args, cli.json),
        Command::Metrics(ref args) => scan::metrics(&cli.data_dir, args, cli.json),
        Command::Graph(ref args) => scan::graph(&cli.data_dir, args, cli.json),
    }
}

async fn up(cli: &Cli, args: &UpArgs) -> Result<i32> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        agents: args.agents,
        store: args.store.clone(),
        workspaces: args.workspaces.clone(),
    };
    let config = Config::load(&cli.data_dir, cli.config.as_deref(), overrides)?;
    let store = dreamos_node::config::redact_url(&config.store);
    let agents = config.agents;
    let node = Node::start(config).await?;
    println!(
        "Dream.OS node {} listening on {}://{} (store {store}, {agents} local agents)",
        node.node_id, node.scheme, node.addr
    );
    if node.admin_token_created {
        println!("admin token created: {} (mode 0600)", node.admin_token_path.display());
    } else {
        println!("admin token: {}", node.admin_token_path.display());
    }
    println!("try: dreamos --data-dir {} task submit noop --wait", cli.data_dir.display());
    wait_for_signal().await;
    eprintln!("stopping: no new claims; running tasks get the grace period to finish");
    node.shutdown().await?;
    Ok(0)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn client(cli: &Cli) -> Result<Client> {
    let bases = if !cli.server.is_empty() {
        cli.server.clone()
    } else if let Some(url) = dreamos_node::running_node_url(&cli.data_dir) {
        vec![url]
    } else {
        let config = Config::load(&cli.data_dir, cli.config.as_deref(), Overrides::default())?;
        let mut addr = config.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if config.tls_cert.is_some() { "https" } else { "http" };
        vec![format!("{scheme}://{addr}")]
    };
    let token = match &cli.token {
        Some(t) => t.clone(),
        None => read_token(&cli.data_dir)?,
    };
    let ca = match &cli.ca_cert {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?,
        ),
        None => None,
    };
    Client::new(&bases, token, ca.as_deref())
}

fn read_token(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("admin.token");
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no token: pass --token or set DREAMOS_TOKEN (or run `dreamos up` once to create {})",
            path.display()
        )
    })?;
    Ok(token.trim().to_string())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `2026-01-01T10:00:00Z`, or a delay from now such as `30s` or `+5m`.
fn parse_time(text: &str) -> Result<i64> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0));
    }
    let delay = humantime::parse_duration(text.trim_start_matches('+'))
        .with_context(|| format!("`{text}` is neither an RFC 3339 time nor a delay like 30s"))?;
    Ok(now_ms() + delay.as_millis() as i64)
}

fn parse_id(raw: &str) -> Result<i64> {
    raw.parse::<dreamos_core::TaskId>().map(|id| id.0).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn task(cli: &Cli, command: &TaskCommand) -> Result<i32> {
    let client = client(cli)?;
    match command {
        TaskCommand::Submit(args) => {
            let payload: Value = match &args.payload {
                Some(p) => serde_json::from_str(p).context("--payload is not valid JSON")?,
                None => json!({}),
            };
            let mut body = json!({ "kind": args.kind, "payload": payload });
            if let Some(p) = &args.priority {
                let priority: dreamos_core::Priority = p.parse()?;
                body["priority"] = json!(priority);
            }
            if !args.capabilities.is_empty() {
                body["capabilities"] = json!(args.capabilities);
            }
            if !args.after.is_empty() {
                let ids = args.after.iter().map(|a| parse_id(a)).collect::<Result<Vec<_>>>()?;
                body["depends_on"] = json!(ids);
            }
            if let Some(k) = &args.idempotency_key {
                body["idempotency_key"] = json!(k);
            }
            if let Some(t) = &args.run_at {
                body["run_at_ms"] = json!(parse_time(t)?);
            }
            if let Some(n) = args.max_attempts {
                body["max_attempts"] = json!(n);
            }
            if let Some(t) = &args.timeout {
                let d = humantime::parse_duration(t)
                    .with_context(|| format!("--timeout `{t}` is not a duration like 30s"))?;
                body["timeout_ms"] = json!(d.as_millis() as i64);
            }
            let answer = client.post("/api/v1/tasks", &body).await?;
            let task = &answer["task"];
            if !args.wait {
                output::task_line(task, cli.json, answer["created"].as_bool() == Some(false));
                return Ok(0);
            }
            let id = task["id"].as_i64().unwrap_or_default();
            if !cli.json {
                eprintln!("task {id} submitted; waiting for it to finish...");
            }
            loop {
                let t = client.get(&format!("/api/v1/tasks/{id}?wait_ms=30000")).await?;
                let state = t["state"].as_str().unwrap_or_default().to_string();
                if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
                    output::task_detail(&t, cli.json);
                    return Ok(if state == "succeeded" { 0 } else { 2 });
                }
            }
        }
        TaskCommand::List { state, kind, archived, limit } => {
            let mut query = vec![format!("limit={limit}")];
            if let Some(s) = state {
                query.push(format!("state={s}"));
            }
            if let Some(k) = kind {
                query.push(format!("kind={k}"));
            }
            if *archived {
                query.push("archived=true".into());
            }
            let v = client.get(&format!("/api/v1/tasks?{}", query.join("&"))).await?;
            output::task_list(&v["tasks"], cli.json);
            Ok(0)
        }
        TaskCommand::Show { id } => {
            let v = client.get(&format!("/api/v1/tasks/{}", parse_id(id)?)).await?;
            output::task_detail(&v, cli.json);
            Ok(0)
        }
        TaskCommand::Cancel { id } => {
            let v =
                client.post(&format!("/api/v1/tasks/{}/cancel", parse_id(id)?), &json!({})).await?;
            output::task_line(&v, cli.json, false);
            Ok(0)
        }
        TaskCommand::Retry { id } => {
            let v =
                client.post(&format!("/api/v1/tasks/{}/retry", parse_id(id)?), &json!({})).await?;
            output::task_line(&v, cli.json, false);
            Ok(0)
        }
    }
}

async fn workspace(cli: &Cli, command: &WorkspaceCommand) -> Result<i32> {
    let client = client(cli)?;
    match command {
        WorkspaceCommand::Add { name, path } => {
            let path =
                path.canonicalize().with_context(|| format!("cannot read {}", path.display()))?;
            let body = json!({ "name": name, "path": path });
            let v = client.post("/api/v1/workspaces", &body).await?;
            if cli.json {
                println!("{v}");
            } else {
                println!(
                    "workspace {} ({}) added; indexing as task {}",
                    v["workspace"]["name"].as_str().unwrap_or_default(),
                    v["workspace"]["root"].as_str().unwrap_or_default(),
                    v["task"]["id"]
                );
            }
            Ok(0)
        }
        WorkspaceCommand::List => {
            let v = client.get("/api/v1/workspaces").await?;
            let list = v["workspaces"].as_array().cloned().unwrap_or_default();
            if cli.json {
                for w in &list {
                    println!("{w}");
                }
            } else if list.is_empty() {
                println!("no workspaces: dreamos workspace add NAME PATH");
            } else {
                println!("{:<20} {:>8}  {:<8}  ROOT", "NAME", "FILES", "WATCHED");
                for w in &list {
                    println!(
                        "{:<20} {:>8}  {:<8}  {}",
                        w["name"].as_str().unwrap_or_default(),
                        w["files"],
                        if w["watching"].as_bool() == Some(true) { "yes" } else { "no" },
                        w["root"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(0)
        }
        WorkspaceCommand::Remove { name } => {
            let v = client
                .call(reqwest::Method::DELETE, &format!("/api/v1/workspaces/{name}"), None)
                .await?;
            if cli.json {
                println!("{v}");
            } else {
                println!("workspace {name} removed (its files are untouched)");
            }
            Ok(0)
        }
        WorkspaceCommand::Index { name, wait } => {
            let v = client.post(&format!("/api/v1/workspaces/{name}/index"), &json!({})).await?;
            let id = v["task"]["id"].as_i64().unwrap_or_default();
            if !wait {
                if cli.json {
                    println!("{v}");
                } else {
                    println!("indexing {name} as task {id}");
                }
                return Ok(0);
            }
            loop {
                let t = client.get(&format!("/api/v1/tasks/{id}?wait_ms=1000")).await?;
                let state = t["state"].as_str().unwrap_or_default().to_string();
                if !cli.json
                    && let Some(p) = t.get("progress").filter(|p| !p.is_null())
                {
                    eprint!(
                        "\r{:>5.1}% {}    ",
                        p["percent"].as_f64().unwrap_or(0.0),
                        p["message"].as_str().unwrap_or("")
                    );
                }
                if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
                    if !cli.json {
                        eprintln!();
                    }
                    output::task_detail(&t, cli.json);
                    return Ok(if state == "succeeded" { 0 } else { 2 });
                }
            }
        }
    }
}
