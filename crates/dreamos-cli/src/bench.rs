//! Benchmarks (filled in below).

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Queue throughput and dispatch latency per backend, beside reference queues.
    Queue,
}

pub async fn run(_command: &BenchCommand) -> Result<()> {
    Ok(())
}
