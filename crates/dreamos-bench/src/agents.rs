//! `dreamos-bench agents`: remote agents over HTTP against a node process on loopback.
//!
//! - **Throughput**: `noop` tasks through remote agents speaking protocol v1 (long-poll claim,
//!   batched reports), the load generator submitting over the API in the same run; with the
//!   latency of claims that returned work. Beside it, the same lifecycle straight on a store
//!   in this process (no HTTP, no node): what the protocol costs.
//! - **Heartbeats**: many simulated agents heartbeating once a second; heartbeat latency and
//!   the node's CPU use, beside `/healthz` round trips at the same rate (HTTP alone).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use dreamos_core::{Completion, NewTask, Outcome, SystemClock};
use dreamos_store::{ClaimRequest, StoreConfig};
use serde_json::{Value, json};

#[derive(Args, Clone)]
pub struct AgentsBench {
    /// Tasks in the throughput run.
    #[arg(long, default_value_t = 60_000)]
    tasks: usize,
    /// Remote agents in the throughput run.
    #[arg(long, default_value_t = 4)]
    agents: usize,
    /// Most tasks per claim and per report (an agent's slots).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Simulated agents in the heartbeat run.
    #[arg(long, default_value_t = 1_000)]
    heartbeat_agents: usize,
    /// Length of the heartbeat run, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

struct NodeProcess {
    child: Child,
    url: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(crate::dreamos_bin()?)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["up", "--listen", "127.0.0.1:0", "--agents", "0"])
            .env("DREAMOS_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start the node")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let url = loop {
            let Some(line) = lines.next() else { bail!("the node exited before listening") };
            if let Some(rest) = line?.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap_or_default().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(dir.path().join("admin.token"))?.trim().to_string();
        Ok(Self { child, url, token, _dir: dir })
    }

    /// CPU seconds (user + system) the node has used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 14th field.
        let rest = stat.rsplit(')').next().unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> Result<Value> {
    let r = http.post(url).bearer_auth(token).json(body).send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url}: HTTP {status}: {v}");
    }
    Ok(v)
}

async fn create_agent(
    http: &reqwest::Client,
    node: &NodeProcess,
    name: &str,
    slots: usize,
) -> Result<String> {
    let body = json!({ "name": name, "capabilities": ["noop"], "slots": slots });
    let v = post(http, &format!("{}/api/v1/agents", node.url), &node.token, &body).await?;
    let token = v["token"].as_str().context("token")?.to_string();
    let reg = json!({ "protocol": 1, "capabilities": [{ "name": "noop" }], "slots": slots });
    post(http, &format!("{}/agent/v1/register", node.url), &token, &reg).await?;
    Ok(token)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

pub async fn agents(args: &AgentsBench) -> Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "dreamos-bench agents: {cores} cores; node process on loopback (SQLite), load generator and agents in this process"
    );
    throughput(args).await?;
    heartbeats(args).await?;
    Ok(())
}

async fn throughput(args: &AgentsBench) -> Result<()> {
    let node = NodeProcess::start()?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(1_000).build()?;
    let mut tokens = Vec::new();
    for i in 0..args.agents {
        tokens.push(create_agent(&http, &node, &format!("bench-{i}"), args.batch).await?);
    }
    let done = Arc::new(AtomicUsize::new(0));
    let claim_latency = Arc::new(std::sync::Mutex::new(Vec::new()));
    let cpu0 = node.cpu_seconds();
    let started = Instant::now();
    let mut handles = Vec::new();
    for token in tokens {
        let (http, url, done, lat) =
            (http.clone(), node.url.clone(), done.clone(), claim_latency.clone());
        let (total, batch) = (args.tasks, args.batch);
        handles.push(tokio::spawn(async move {
            let claim = json!({ "max": batch, "wait_ms": 500 });
            while done.load(Ordering::Relaxed) < total {
                let t0 = Instant::now();
                let v = post(&http, &format!("{url}/agent/v1/claim"), &token, &claim).await?;
                let tasks = v["tasks"].as_array().cloned().unwrap_or_default();
                if tasks.is_empty() {
                    continue;
                }
                lat.lock().unwrap_or_else(|e| e.into_inner()).push(t0.elapsed());
                let reports: Vec<Value> = tasks
                    .iter()
                    .map(|t| json!({ "task_id": t["id"], "fence": t["fence"], "result": {} }))
                    .collect();
                let n = reports.len();
                post(
                    &http,
                    &format!("{url}/agent/v1/reports"),
                    &token,
                    &json!({ "reports": reports }),
                )
                .await?;
                done.fetch_add(n, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    // The load generator: batches of 500 over the API, two submitters at a time.
    let per_batch = 500;
    let mut submitted = 0;
    let mut producers = Vec::new();
    while submitted < args.tasks {
        let n = per_batch.min(args.tasks - submitted);
        submitted += n;
        let tasks: Vec<Value> = (0..n).map(|_| json!({ "kind": "noop" })).collect();
        let (http, url, token) = (http.clone(), node.url.clone(), node.token.clone());
        producers.push(tokio::spawn(async move {
            post(&http, &format!("{url}/api/v1/tasks/batch"), &token, &json!({ "tasks": tasks }))
                .await
        }));
        if producers.len() >= 2 {
            producers.remove(0).await??;
        }
    }
    for p in producers {
        p.await??;
    }
    for h in handles {
        h.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = node.cpu_seconds() - cpu0;
    let mut lat = claim_latency.lock().unwrap_or_else(|e| e.into_inner()).clone();
    lat.sort();
    let remote = args.tasks as f64 / seconds;
    let reference = in_process(args).await?;
    println!();
    println!(
        "{:<46} {:>9} {:>10} {:>12}",
        "noop lifecycle (submit -> claim -> report)", "tasks", "seconds", "tasks/s"
    );
    println!(
        "{:<46} {:>9} {:>10.2} {:>12.0}",
        format!("remote agents over HTTP ({} agents)", args.agents),
        args.tasks,
        seconds,
        remote
    );
    println!(
        "{:<46} {:>9} {:>10.2} {:>12.0}",
        "reference: same batches on the store, no HTTP",
        reference.0,
        reference.1,
        reference.0 as f64 / reference.1
    );
    println!("remote / reference: {:.2}x", remote / (reference.0 as f64 / reference.1));
    println!(
        "claim latency (claims that returned work, {} claims): p50 {:.2} ms, p99 {:.2} ms; node CPU {:.0}% of one core",
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        cpu / seconds * 100.0
    );
    Ok(())
}

/// The same lifecycle straight on a SQLite store in this process.
async fn in_process(args: &AgentsBench) -> Result<(usize, f64)> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("ref.db").display());
    let store = dreamos_store::open(&url, StoreConfig::default(), Arc::new(SystemClock)).await?;
    let started = Instant::now();
    let mut submitted = 0;
    while submitted < args.tasks {
        let n = 500.min(args.tasks - submitted);
        submitted += n;
        store.submit((0..n).map(|_| NewTask::new("noop", json!({}))).collect()).await?;
    }
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..args.agents {
        let (store, done, total, batch) = (store.clone(), done.clone(), args.tasks, args.batch);
        handles.push(tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < total {
                let req = ClaimRequest {
                    holder: format!("ref-{i}"),
                    capabilities: vec!["noop".into()],
                    kinds: None,
                    max: batch,
                    lease_ms: 30_000,
                };
                let tasks = store.claim(req).await?;
                if tasks.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                let reports: Vec<Completion> = tasks
                    .iter()
                    .filter_map(|t| t.lease.as_ref().map(|l| (t.id, l.fence)))
                    .map(|(task_id, fence)| Completion {
                        task_id,
                        fence,
                        outcome: Outcome::Succeeded { result: json!({}) },
                    })
                    .collect();
                let n = reports.len();
                store.complete(&format!("ref-{i}"), reports).await?;
                done.fetch_add(n, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    store.close().await;
    Ok((args.tasks, seconds))
}

async fn heartbeats(args: &AgentsBench) -> Result<()> {
    let node = NodeProcess::start()?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(2_000).build()?;
    let n = args.heartbeat_agents;
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        tokens.push(create_agent(&http, &node, &format!("hb-{i}"), 1).await?);
    }
    let run = Duration::from_secs(args.seconds);
    // Every agent also waits for work all along (a long-poll claim, renewed every 20 s), as
    // idle agents do: the node holds 1,000 waiters in its dispatcher meanwhile.
    let stop_polling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pollers = Vec::new();
    for token in &tokens {
        let (http, url, token, stop) = (
            http.clone(),
            format!("{}/agent/v1/claim", node.url),
            token.clone(),
            stop_polling.clone(),
        );
        pollers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let claim = json!({ "max": 1, "wait_ms": 20_000 });
                if post(&http, &url, &token, &claim).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    let mut rows = Vec::new();
    for (label, path) in
        [("reference: GET /healthz", "/healthz"), ("heartbeat", "/agent/v1/heartbeat")]
    {
        let cpu0 = node.cpu_seconds();
        let started = Instant::now();
        let mut handles = Vec::new();
        for (i, token) in tokens.iter().enumerate() {
            let (http, url, token) = (http.clone(), format!("{}{path}", node.url), token.clone());
            // Spread the agents evenly over the second.
            let offset = Duration::from_micros((i * 1_000_000 / n) as u64);
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut tick = tokio::time::interval_at(
                    tokio::time::Instant::now() + offset,
                    Duration::from_secs(1),
                );
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while started.elapsed() < run {
                    tick.tick().await;
                    let t0 = Instant::now();
                    let ok = if path == "/healthz" {
                        http.get(&url)
                            .send()
                            .await
                            .map(|r| r.status().is_success())
                            .unwrap_or(false)
                    } else {
                        post(&http, &url, &token, &json!({ "running": [] })).await.is_ok()
                    };
                    if ok {
                        lat.push(t0.elapsed());
                    }
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for h in handles {
            lat.extend(h.await?);
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = node.cpu_seconds() - cpu0;
        lat.sort();
        rows.push((
            label,
            lat.len(),
            lat.len() as f64 / seconds,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            cpu / seconds * 100.0,
        ));
    }
    stop_polling.store(true, Ordering::Relaxed);
    for p in pollers {
        p.abort();
    }
    println!();
    println!(
        "{n} agents, each long-polling for work and sending one request a second, {} s:",
        args.seconds
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "", "requests", "per s", "p50 ms", "p99 ms", "node CPU"
    );
    for (label, count, rate, p50, p99, cpu) in &rows {
        println!("{label:<26} {count:>9} {rate:>9.0} {p50:>9.2} {p99:>9.2} {cpu:>9.0}%");
    }
    println!("heartbeat p99 / healthz p99: {:.2}x", rows[1].4 / rows[0].4.max(0.001));
    Ok(())
}
