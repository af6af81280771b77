//! `dreamos-bench queue`: full-lifecycle throughput (submit -> claim -> complete of `noop`
//! tasks), unbatched and batched, and idle dispatch latency, for each backend, beside two
//! references measured in the same run: Redis used as a simple queue (LPUSH + BRPOP) and a
//! naive PostgreSQL `FOR UPDATE SKIP LOCKED` queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use dreamos_core::{Completion, Outcome, SystemClock};
use dreamos_queue::{KindRegistry, Queue, QueueConfig, SubmitRequest};
use dreamos_store::{ClaimRequest, StoreConfig};
use serde_json::json;

#[derive(Args, Clone)]
pub struct QueueBench {
    /// Tasks per SQLite (and Redis) throughput run.
    #[arg(long, default_value_t = 40_000)]
    tasks: usize,
    /// Tasks per PostgreSQL throughput run (PostgreSQL commits are slower).
    #[arg(long, default_value_t = 10_000)]
    pg_tasks: usize,
    /// Tasks per submit, claim and complete in the batched runs.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent producers, and as many consumers, in each run (think clients and agents).
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Dispatch latency samples per backend.
    #[arg(long, default_value_t = 1_000)]
    samples: usize,
    /// PostgreSQL to measure; `none` skips it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg: String,
    /// Redis for the reference queue; `none` skips it.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    redis: String,
}

struct Row {
    system: String,
    mode: &'static str,
    tasks: usize,
    seconds: f64,
}

impl Row {
    fn rate(&self) -> f64 {
        self.tasks as f64 / self.seconds
    }
}

pub async fn queue(args: &QueueBench) -> Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "dreamos-bench queue: {cores} cores, {} workers, batch {}, noop tasks, full lifecycle (submit -> claim -> complete)",
        args.workers, args.batch
    );
    let mut rows = Vec::new();
    let mut latencies = Vec::new();

    let dir = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    for batched in [false, true] {
        let queue = open_queue(&sqlite_url, None).await?;
        rows.push(lifecycle("dreamos sqlite", &queue, args.tasks, batched, args).await?);
        queue.store().close().await;
        let _ = std::fs::remove_file(dir.path().join("bench.db"));
    }
    let queue = open_queue(&sqlite_url, None).await?;
    latencies.push(("dreamos sqlite", dispatch_latency(&queue, args.samples).await?));
    queue.store().close().await;

    let pg_ok = args.pg != "none";
    if pg_ok {
        let schema = format!("bench_{}", std::process::id());
        match open_queue(&args.pg, Some(format!("{schema}_u"))).await {
            Ok(queue) => {
                rows.push(lifecycle("dreamos postgres", &queue, args.pg_tasks, false, args).await?);
                queue.store().close().await;
                let queue = open_queue(&args.pg, Some(format!("{schema}_b"))).await?;
                rows.push(lifecycle("dreamos postgres", &queue, args.pg_tasks, true, args).await?);
                queue.store().close().await;
                let queue = open_queue(&args.pg, Some(format!("{schema}_l"))).await?;
                latencies.push((
                    "dreamos postgres",
                    dispatch_latency(&queue, args.samples.min(500)).await?,
                ));
                queue.store().close().await;
                for batched in [false, true] {
                    rows.push(naive_pg(&args.pg, args.pg_tasks, batched, args).await?);
                }
                drop_schemas(&args.pg, &schema).await;
            }
            Err(e) => println!("postgres: skipped ({e:#})"),
        }
    }
    if args.redis != "none" {
        for batched in [false, true] {
            match redis_queue(&args.redis, args.tasks, batched, args).await {
                Ok(row) => rows.push(row),
                Err(e) => {
                    println!("redis: skipped ({e:#})");
                    break;
                }
            }
        }
    }

    println!();
    println!("{:<22} {:<10} {:>8} {:>9} {:>11}", "system", "mode", "tasks", "seconds", "tasks/s");
    for r in &rows {
        println!(
            "{:<22} {:<10} {:>8} {:>9.2} {:>11.0}",
            r.system,
            r.mode,
            r.tasks,
            r.seconds,
            r.rate()
        );
    }
    println!();
    let find = |system: &str, mode: &str| {
        rows.iter().find(|r| r.system == system && r.mode == mode).map(Row::rate)
    };
    for mode in ["unbatched", "batched"] {
        for (ours, reference) in
            [("dreamos sqlite", "redis LPUSH+BRPOP"), ("dreamos postgres", "naive pg SKIP LOCKED")]
        {
            if let (Some(a), Some(b)) = (find(ours, mode), find(reference, mode)) {
                println!("ratio {mode:<9} {ours} / {reference}: {:.2}x", a / b);
            }
        }
    }
    println!();
    for (system, mut samples) in latencies {
        samples.sort_unstable();
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        println!(
            "idle dispatch latency {system}: p50 {:.3} ms, p99 {:.3} ms ({} samples, submit -> claim returns in a waiting claimer)",
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            samples.len()
        );
    }
    Ok(())
}

async fn open_queue(url: &str, schema: Option<String>) -> Result<Queue> {
    let config = StoreConfig { pg_schema: schema, max_connections: 16, ..StoreConfig::default() };
    let store = dreamos_store::open(url, config, Arc::new(SystemClock)).await?;
    Ok(Queue::new(store, KindRegistry::builtin(), QueueConfig::default()))
}

fn claim_request(worker: usize, max: usize) -> ClaimRequest {
    ClaimRequest {
        holder: format!("bench-{worker}"),
        capabilities: vec!["noop".into()],
        kinds: None,
        max,
        lease_ms: 60_000,
    }
}

/// `workers` producers submit `tasks` noop tasks while `workers` consumers claim and complete
/// them; the time runs until the last one is complete.
async fn lifecycle(
    system: &str,
    queue: &Queue,
    tasks: usize,
    batched: bool,
    args: &QueueBench,
) -> Result<Row> {
    let per_call = if batched { args.batch } else { 1 };
    let workers = args.workers.max(1);
    let completed = Arc::new(AtomicUsize::new(0));
    let submitted = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (queue, submitted) = (queue.clone(), submitted.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let start = submitted.fetch_add(per_call, Ordering::SeqCst);
                if start >= tasks {
                    return Ok::<_, anyhow::Error>(());
                }
                let n = per_call.min(tasks - start);
                let requests = (0..n).map(|_| SubmitRequest::new("noop", json!({}))).collect();
                queue.submit("bench", requests).await?;
            }
        }));
    }
    for worker in 0..workers {
        let (queue, completed) = (queue.clone(), completed.clone());
        handles.push(tokio::spawn(async move {
            while completed.load(Ordering::SeqCst) < tasks {
                let claimed =
                    queue.claim(claim_request(worker, per_call), Duration::from_millis(50)).await?;
                if claimed.is_empty() {
                    continue;
                }
                let reports = claimed
                    .iter()
                    .map(|t| Completion {
                        task_id: t.id,
                        fence: t.lease.as_ref().map_or(0, |l| l.fence),
                        outcome: Outcome::Succeeded { result: json!({}) },
                    })
                    .collect::<Vec<_>>();
                let n = reports.len();
                for r in queue.store().complete("bench", reports).await? {
                    r?;
                }
                completed.fetch_add(n, Ordering::SeqCst);
            }
            Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let row = Row {
        system: system.into(),
        mode: if batched { "batched" } else { "unbatched" },
        tasks,
        seconds: started.elapsed().as_secs_f64(),
    };
    println!("  {:<20} {:<9} {:>9.0} tasks/s", row.system, row.mode, row.rate());
    Ok(row)
}

/// One claimer waits on an empty queue; each sample submits one task and measures until the
/// claimer holds it.
async fn dispatch_latency(queue: &Queue, samples: usize) -> Result<Vec<Duration>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Instant>(1);
    let claimer = {
        let queue = queue.clone();
        tokio::spawn(async move {
            for _ in 0..samples {
                let claimed = loop {
                    let c = queue.claim(claim_request(0, 1), Duration::from_secs(10)).await?;
                    if !c.is_empty() {
                        break c;
                    }
                };
                tx.send(Instant::now()).await?;
                let t = &claimed[0];
                let fence = t.lease.as_ref().map_or(0, |l| l.fence);
                queue
                    .store()
                    .complete(
                        "bench",
                        vec![Completion {
                            task_id: t.id,
                            fence,
                            outcome: Outcome::Succeeded { result: json!({}) },
                        }],
                    )
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        // Let the claimer finish its report and go back to waiting: the queue is idle.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let sent = Instant::now();
        queue.submit("bench", vec![SubmitRequest::new("noop", json!({}))]).await?;
        let got = rx.recv().await.context("claimer stopped")?;
        out.push(got.saturating_duration_since(sent));
    }
    claimer.await??;
    Ok(out)
}

/// The reference: a plain jobs table with one state column, claimed with SKIP LOCKED.
async fn naive_pg(url: &str, tasks: usize, batched: bool, args: &QueueBench) -> Result<Row> {
    use sqlx::Executor;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(16).connect(url).await?;
    let table = format!("naive_jobs_{}", std::process::id());
    pool.execute(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}"))).await?;
    pool.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued')"
    )))
    .await?;
    pool.execute(sqlx::AssertSqlSafe(format!(
        "CREATE INDEX ON {table} (id) WHERE state = 'queued'"
    )))
    .await?;
    let per_call = if batched { args.batch } else { 1 };
    let workers = args.workers.max(1);
    let submitted = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let insert = format!("INSERT INTO {table} (payload) SELECT '{{}}' FROM generate_series(1, $1)");
    let claim = format!(
        "UPDATE {table} SET state = 'running' WHERE id IN (SELECT id FROM {table} WHERE state = 'queued' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id"
    );
    let done = format!("UPDATE {table} SET state = 'done' WHERE id = ANY($1)");
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (pool, submitted, insert) = (pool.clone(), submitted.clone(), insert.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let start = submitted.fetch_add(per_call, Ordering::SeqCst);
                if start >= tasks {
                    return Ok::<_, anyhow::Error>(());
                }
                let n = per_call.min(tasks - start) as i32;
                sqlx::query(sqlx::AssertSqlSafe(insert.clone())).bind(n).execute(&pool).await?;
            }
        }));
    }
    for _ in 0..workers {
        let (pool, completed, claim, done) =
            (pool.clone(), completed.clone(), claim.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            while completed.load(Ordering::SeqCst) < tasks {
                let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(claim.clone()))
                    .bind(per_call as i64)
                    .fetch_all(&pool)
                    .await?;
                if ids.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                sqlx::query(sqlx::AssertSqlSafe(done.clone())).bind(&ids).execute(&pool).await?;
                completed.fetch_add(ids.len(), Ordering::SeqCst);
            }
            Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    pool.execute(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}"))).await?;
    let row = Row {
        system: "naive pg SKIP LOCKED".into(),
        mode: if batched { "batched" } else { "unbatched" },
        tasks,
        seconds,
    };
    println!("  {:<20} {:<9} {:>9.0} tasks/s", row.system, row.mode, row.rate());
    Ok(row)
}

/// The reference: Redis as a simple queue, LPUSH to submit and BRPOP (batched: RPOP with a
/// count) to take. It has no leases, no retries and no completion step.
async fn redis_queue(url: &str, tasks: usize, batched: bool, args: &QueueBench) -> Result<Row> {
    let client = redis::Client::open(url)?;
    let key = format!("dreamos-bench-{}", std::process::id());
    let mut conn = client.get_multiplexed_async_connection().await.context("cannot reach Redis")?;
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
    let per_call = if batched { args.batch } else { 1 };
    let workers = args.workers.max(1);
    let submitted = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (client, submitted, key) = (client.clone(), submitted.clone(), key.clone());
        handles.push(tokio::spawn(async move {
            let mut conn = client.get_multiplexed_async_connection().await?;
            loop {
                let start = submitted.fetch_add(per_call, Ordering::SeqCst);
                if start >= tasks {
                    return Ok::<_, anyhow::Error>(());
                }
                let n = per_call.min(tasks - start);
                let mut cmd = redis::cmd("LPUSH");
                cmd.arg(&key);
                for _ in 0..n {
                    cmd.arg("{}");
                }
                let _: i64 = cmd.query_async(&mut conn).await?;
            }
        }));
    }
    for _ in 0..workers {
        let (client, completed, key) = (client.clone(), completed.clone(), key.clone());
        handles.push(tokio::spawn(async move {
            // Blocking pops need a connection each.
            let mut conn = client.get_multiplexed_async_connection().await?;
            while completed.load(Ordering::SeqCst) < tasks {
                let got = if batched {
                    let items: Option<Vec<String>> =
                        redis::cmd("RPOP").arg(&key).arg(per_call).query_async(&mut conn).await?;
                    match items {
                        Some(items) => items.len(),
                        None => {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            0
                        }
                    }
                } else {
                    let item: Option<(String, String)> =
                        redis::cmd("BRPOP").arg(&key).arg(0.05).query_async(&mut conn).await?;
                    usize::from(item.is_some())
                };
                completed.fetch_add(got, Ordering::SeqCst);
            }
            Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let row = Row {
        system: "redis LPUSH+BRPOP".into(),
        mode: if batched { "batched" } else { "unbatched" },
        tasks,
        seconds: started.elapsed().as_secs_f64(),
    };
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
    println!("  {:<20} {:<9} {:>9.0} tasks/s", row.system, row.mode, row.rate());
    Ok(row)
}

async fn drop_schemas(url: &str, prefix: &str) {
    use sqlx::Executor;
    if let Ok(pool) = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await {
        for suffix in ["u", "b", "l"] {
            let _ = pool
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {prefix}_{suffix} CASCADE"
                )))
                .await;
        }
        pool.close().await;
    }
}
