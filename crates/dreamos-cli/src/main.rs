//! `dreamos`: runs a node (`up`), talks to one (`task`, `status`), and searches code locally.
//! The binary is glue: the work lives in the library crates. (The benchmarks are
//! `dreamos-bench`, a binary of their own.)

mod admin;
mod agent;
mod cli;
mod client;
mod output;
mod scan;
mod setup;
mod tasks;

use std::io::IsTerminal;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;
use dreamos_node::{Config, Node, Overrides};

use crate::cli::{Cli, Color, Command, DiscordCommand, UpArgs};
use crate::client::Client;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    // A node logs at info, a client only warnings. sqlx logs PostgreSQL's notices (such as
    // "relation already exists, skipping" at every start) at info: they are not news.
    let filter = match cli.command {
        Command::Up(_) => "info,sqlx::postgres::notice=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DREAMOS_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_ansi(colour(cli.color, std::io::stderr().is_terminal()))
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

/// Whether to colour a stream: `--color`, then `NO_COLOR` (any non-empty value), then
/// whether it is a terminal.
fn colour(choice: Color, terminal: bool) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Up(ref args) => up(&cli, args).await,
        Command::Config(ref command) => setup::config(&cli, command).await,
        Command::Completions { shell } => setup::completions(shell),
        Command::Man { ref dir } => setup::man(dir.as_deref()),
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
        Command::Kinds => tasks::kinds(&cli).await,
        Command::Task(ref command) => tasks::task(&cli, command).await,
        Command::Agent(agent::AgentCommand::Run(ref args)) => {
            let config = Config::load(&cli.data_dir, cli.config.as_deref(), Overrides::default())?;
            agent::run_remote(client(&cli)?, args, config).await
        }
        Command::Agent(ref command) => agent::command(client(&cli)?, command, cli.json).await,
        Command::Token(ref command) => admin::token(client(&cli)?, command, cli.json).await,
        Command::Audit(ref command) => admin::audit(client(&cli)?, command, cli.json).await,
        Command::Workspace(ref command) => tasks::workspace(&cli, command).await,
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
        "Dream.OS node {} listening on {}://{} (store {store}, {})",
        node.node_id,
        node.scheme,
        node.addr,
        output::count(agents as u64, "local agent")
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

pub(crate) fn client(cli: &Cli) -> Result<Client> {
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

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `2026-01-01T10:00:00Z`, or a delay from now such as `30s` or `+5m`.
pub(crate) fn parse_time(text: &str) -> Result<i64> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0));
    }
    let delay = humantime::parse_duration(text.trim_start_matches('+'))
        .with_context(|| format!("`{text}` is neither an RFC 3339 time nor a delay like 30s"))?;
    Ok(now_ms() + delay.as_millis() as i64)
}

pub(crate) fn parse_id(raw: &str) -> Result<i64> {
    raw.parse::<dreamos_core::TaskId>().map(|id| id.0).map_err(|e| anyhow::anyhow!("{e}"))
}
