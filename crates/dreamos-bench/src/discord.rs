//! `dreamos-bench discord TREE`: the time from a signed `/search` interaction reaching the
//! node's HTTP endpoint to the first response going back (what Discord's 3 s deadline
//! applies to), on an index of TREE, beside the same searches over the plain HTTP API
//! (`GET /api/v1/search`) in the same run. The local Discord simulator plays Discord.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use dreamos_discord_sim::{APPLICATION_ID, CHANNEL_ID, Simulator};
use serde_json::json;

use crate::agents::percentile;

#[derive(Args, Clone)]
pub struct DiscordBench {
    /// The source tree to index and search (e.g. a Python standard library).
    tree: PathBuf,
    /// Interactions to time (after a warm-up of 20).
    #[arg(long, default_value_t = 300)]
    queries: usize,
}

/// Searches a user might type: identifiers, words, a phrase, a regex.
const QUERIES: &[&str] = &[
    "urlopen",
    "parse_args",
    "ThreadPoolExecutor",
    "json decode error",
    "read config file",
    "socket timeout",
    "\"def __init__\"",
    "HTTPConnection",
    "compress data",
    "/def test_\\w+/",
    "OrderedDict",
    "base64 encode",
    "temporary directory",
    "lru_cache",
    "parse url query string",
    "subprocess run",
];

pub async fn discord(args: &DiscordBench) -> Result<()> {
    let tree = args.tree.canonicalize().with_context(|| format!("{}", args.tree.display()))?;
    let sim = Simulator::start().await;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("dreamos.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\n\
             rate_limit_per_address = 0\n\
             rate_limit_per_token = 0\n\
             discord_application_id = {APPLICATION_ID}\n\
             discord_public_key = \"{}\"\n\
             discord_channel = {CHANNEL_ID}\n\
             discord_api = \"{}\"\n\
             [discord_roles]\n\"1\" = \"viewer\"\n",
            sim.public_key_hex(),
            sim.rest_proxy()
        ),
    )?;
    let overrides =
        dreamos_node::Overrides { workspaces: vec![tree.clone()], ..Default::default() };
    let config = dreamos_node::Config::load(dir.path(), None, overrides)?;
    let node = dreamos_node::Node::start(config).await?;
    let base = format!("http://{}", node.addr);
    let admin = std::fs::read_to_string(&node.admin_token_path)?.trim().to_string();
    let http = reqwest::Client::new();
    eprintln!("indexing {} ...", tree.display());
    loop {
        let tasks: serde_json::Value = http
            .get(format!("{base}/api/v1/tasks?kind=index"))
            .bearer_auth(&admin)
            .send()
            .await?
            .json()
            .await?;
        let state = tasks["tasks"][0]["state"].as_str().unwrap_or("queued").to_string();
        match state.as_str() {
            "succeeded" => break,
            "failed" | "cancelled" => {
                bail!("the index task {state}: {}", tasks["tasks"][0]["error"])
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let endpoint = format!("{base}/discord/interactions");
    let (mut discord, mut api) = (Vec::new(), Vec::new());
    let mut deferred = 0;
    for i in 0..args.queries + 20 {
        let query = QUERIES[i % QUERIES.len()];
        let interaction =
            sim.command("search", json!([{ "type": 3, "name": "query", "value": query }]), &[1]);
        let (status, answer, took) = sim.deliver(&endpoint, &interaction).await;
        if status != 200 {
            bail!("/search {query}: {status} {answer}");
        }
        let started = std::time::Instant::now();
        let response = http
            .get(format!("{base}/api/v1/search"))
            .query(&[("q", query), ("limit", "5")])
            .bearer_auth(&admin)
            .send()
            .await?;
        response.error_for_status()?.bytes().await?;
        let reference = started.elapsed();
        if i >= 20 {
            deferred += usize::from(answer["type"] == 5);
            discord.push(took);
            api.push(reference);
        }
    }
    discord.sort();
    api.sort();
    println!(
        "/search over the Discord interactions endpoint, {} queries on an index of {}",
        args.queries,
        tree.display()
    );
    println!("{:<44} {:>9} {:>9} {:>9} {:>9}", "", "p50 ms", "p95 ms", "p99 ms", "max ms");
    for (label, samples) in [
        ("interaction -> first response (search task)", &discord),
        ("reference: GET /api/v1/search (in the API)", &api),
    ] {
        println!(
            "{label:<44} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            percentile(samples, 0.50),
            percentile(samples, 0.95),
            percentile(samples, 0.99),
            percentile(samples, 1.0)
        );
    }
    println!(
        "p99 ratio (Discord / API): {:.2}x; answered deferred: {deferred} of {} (Discord's deadline: 3000 ms; target p99 <= 100 ms)",
        percentile(&discord, 0.99) / percentile(&api, 0.99),
        args.queries
    );
    node.shutdown().await?;
    Ok(())
}
