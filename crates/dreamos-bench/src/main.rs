//! `dreamos-bench`: the project's benchmarks, each printing its figures beside a reference
//! measured in the same run. A binary of its own, so that the product (`dreamos`) links none
//! of what only the benchmarks need (Redis, the Discord simulator, a raw PostgreSQL client).
//! Benchmarks that need a node start the `dreamos` binary built beside this one:
//! `scripts/bench.sh ARGS` builds both and runs this.

mod agents;
mod discord;
mod queue;
mod scan;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

// The same allocator as the product, so that in-process measurements match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dreamos-bench",
    version,
    about = "Dream.OS benchmarks, each beside a reference measured in the same run"
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Queue throughput and dispatch latency per backend, beside reference queues.
    Queue(crate::queue::QueueBench),
    /// A cold index of a tree beside universal-ctags, and definitions found.
    Index(crate::scan::IndexBench),
    /// Search latency on an index of a tree, beside ripgrep, with equal results checked.
    Search(crate::scan::SearchBench),
    /// Time from saving an edit to finding it by search, in watch mode.
    Watch(crate::scan::WatchBench),
    /// Remote agents over HTTP: noop throughput with claim latency, and heartbeats of many
    /// agents with the node's CPU use.
    Agents(crate::agents::AgentsBench),
    /// `/search` through the Discord interactions endpoint (the simulator plays Discord),
    /// beside the plain HTTP search.
    Discord(crate::discord::DiscordBench),
}

async fn run(command: &BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Queue(args) => crate::queue::queue(args).await,
        BenchCommand::Index(args) => crate::scan::index(args),
        BenchCommand::Search(args) => crate::scan::search(args),
        BenchCommand::Watch(args) => crate::scan::watch(args),
        BenchCommand::Agents(args) => crate::agents::agents(args).await,
        BenchCommand::Discord(args) => crate::discord::discord(args).await,
    }
}

/// The `dreamos` binary beside this one (`target/release/dreamos` for a release build).
pub fn dreamos_bin() -> Result<PathBuf> {
    let me = std::env::current_exe().context("where is dreamos-bench?")?;
    let bin = me.with_file_name("dreamos");
    if !bin.exists() {
        bail!("{} is missing: build it first (scripts/bench.sh does)", bin.display());
    }
    Ok(bin)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DREAMOS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    run(&cli.command).await
}
