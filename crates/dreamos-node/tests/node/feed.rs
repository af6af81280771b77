//! The event stream in commit order: with two nodes on one PostgreSQL and eight submitters, a
//! stream on one node sees every task's `submitted` and `succeeded` event (ids taken at insert
//! and committed out of order skip nothing), and a reconnect with `Last-Event-ID` replays
//! exactly what came after; a position it never gave is told so.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dreamos_node::{Config, Node};
use serde_json::{Value, json};

use crate::config;

const TASKS: usize = 2_000;
const SUBMITTERS: usize = 8;
const BATCH: usize = 25;

/// One Server-Sent Event: its type, id and data.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    event: String,
    id: String,
    data: Value,
}

/// Reads events from a stream until `done` says so, or nothing comes for 60 s.
async fn read_events(
    resp: &mut reqwest::Response,
    mut done: impl FnMut(&[Sse]) -> bool,
) -> Vec<Sse> {
    let (mut text, mut events) = (String::new(), Vec::new());
    while !done(&events) {
        let chunk = match tokio::time::timeout(Duration::from_secs(60), resp.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            _ => break,
        };
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut e = Sse { event: String::new(), id: String::new(), data: Value::Null };
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    e.event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    e.id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    e.data = serde_json::from_str(v.trim()).unwrap_or(Value::Null);
                }
            }
            if !e.event.is_empty() {
                events.push(e);
            }
        }
    }
    events
}

fn pg_config(dir: &std::path::Path, schema: &str, url: &str) -> Config {
    let mut cfg = config(dir, 2);
    cfg.store = url.to_string();
    cfg.store_schema = Some(schema.to_string());
    cfg.submit_quota_per_minute = 0.0;
    cfg.rate_limit_per_address = 0.0;
    cfg.rate_limit_per_token = 0.0;
    cfg
}

/// Task events by task id: which events each task's stream showed.
fn kinds_by_task(events: &[Sse]) -> BTreeMap<i64, BTreeSet<String>> {
    let mut seen: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.event == "task") {
        let (Some(id), Some(kind)) = (e.data["task_id"].as_i64(), e.data["event"].as_str()) else {
            continue;
        };
        seen.entry(id).or_default().insert(kind.to_string());
    }
    seen
}

fn complete(events: &[Sse], ids: &BTreeSet<i64>) -> bool {
    let seen = kinds_by_task(events);
    ids.iter()
        .all(|id| seen.get(id).is_some_and(|k| k.contains("submitted") && k.contains("succeeded")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_stream_sees_every_event_and_resumes_after_the_last_seen() {
    let Some(_) = crate::readiness::postgres_address() else { return };
    let url = crate::readiness::pg_url();
    let schema = format!("t_feed_{}", std::process::id());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n1 = Node::start(pg_config(d1.path(), &schema, &url)).await.unwrap();
    let n2 = Node::start(pg_config(d2.path(), &schema, &url)).await.unwrap();
    let admin = std::fs::read_to_string(&n1.admin_token_path).unwrap().trim().to_string();
    let bases = [format!("http://{}", n1.addr), format!("http://{}", n2.addr)];
    let http = reqwest::Client::new();
    let open = |last: Option<String>| {
        let mut req = http.get(format!("{}/api/v1/events", bases[0])).bearer_auth(&admin);
        if let Some(last) = last {
            req = req.header("Last-Event-ID", last);
        }
        async move { req.send().await.unwrap() }
    };
    let mut stream = open(None).await;
    assert_eq!(stream.status(), 200);

    // Eight submitters, batches of 25 alternating between the nodes.
    let mut submitters = Vec::new();
    for s in 0..SUBMITTERS {
        let (http, bases, admin) = (http.clone(), bases.clone(), admin.clone());
        submitters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for b in 0..TASKS / SUBMITTERS / BATCH {
                let tasks: Vec<Value> =
                    (0..BATCH).map(|_| json!({ "kind": "noop", "payload": {} })).collect();
                let base = &bases[(s + b) % 2];
                let r = http
                    .post(format!("{base}/api/v1/tasks/batch"))
                    .bearer_auth(&admin)
                    .json(&json!({ "tasks": tasks }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
                let v: Value = r.json().await.unwrap();
                let batch = v["tasks"].as_array().expect("the batch's tasks");
                ids.extend(batch.iter().map(|t| t["id"].as_i64().unwrap()));
            }
            ids
        }));
    }
    let mut ids = BTreeSet::new();
    for s in submitters {
        ids.extend(s.await.unwrap());
    }
    assert_eq!(ids.len(), TASKS);

    let events = read_events(&mut stream, |seen| complete(seen, &ids)).await;
    let seen = kinds_by_task(&events);
    let missing: Vec<&i64> = ids
        .iter()
        .filter(|id| {
            !seen.get(id).is_some_and(|k| k.contains("submitted") && k.contains("succeeded"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} tasks' events were skipped: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );

    // Resume in the middle: exactly what came after, in the same order.
    let k = events.len() / 2;
    let after: Vec<&Sse> = events[k + 1..].iter().collect();
    let mut again = open(Some(events[k].id.clone())).await;
    let replayed = read_events(&mut again, |got| got.len() >= after.len()).await;
    let tasks_of = |list: Vec<&Sse>| -> Vec<(String, Value)> {
        list.into_iter()
            .filter(|e| e.event == "task")
            .map(|e| (e.id.clone(), e.data.clone()))
            .collect()
    };
    let want = tasks_of(after.clone());
    let got = tasks_of(replayed.iter().collect());
    assert!(got.len() >= want.len(), "replayed {} task events of {}", got.len(), want.len());
    assert_eq!(&got[..want.len()], &want[..], "the replay differs from what came after");
    assert!(replayed.iter().all(|e| e.event != "reset"), "a fresh position was called too old");

    // A position the stream never gave is told so, then the stream goes on from the present.
    for unknown in ["yesterday", "t12"] {
        let mut old = open(Some(unknown.into())).await;
        assert_eq!(old.status(), 200);
        let first = read_events(&mut old, |got| !got.is_empty()).await;
        assert_eq!(first.first().map(|e| e.event.as_str()), Some("reset"), "{unknown}: {first:?}");
    }
    drop((stream, again));
    n1.shutdown().await.unwrap();
    n2.shutdown().await.unwrap();
    let drop_schema = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    let _ = std::process::Command::new("psql").args([&url, "-q", "-c", &drop_schema]).output();
}
