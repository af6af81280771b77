//! The code tasks local agents run with the scanner: `index` (bring a workspace's index up
//! to date, reporting progress), `search` and `analyze` (metrics, cycles, dependents).

use std::sync::{Arc, Mutex};

use dreamos_core::{Outcome, Progress, Task, TaskError};
use dreamos_queue::{KindRegistry, KindSpec};
use dreamos_scan::SearchOptions;
use serde_json::{Value, json};

use crate::workspaces::Workspaces;

/// The capabilities these kinds need.
pub const CAPABILITIES: [&str; 3] = ["index", "search", "analyze"];

/// Most bytes of results a code task keeps (the rest is left out, and said so).
const MAX_RESULT_HITS: usize = 1_000;

/// Registers `index`, `search` and `analyze` with their payload schemas.
pub fn register(kinds: &mut KindRegistry) {
    let workspace = json!({ "type": "string", "minLength": 1, "maxLength": 64 });
    let specs = [
        (
            "index",
            "brings a workspace's code index up to date, reporting progress",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["workspace"],
                "properties": { "workspace": workspace }
            }),
        ),
        (
            "search",
            "searches the code of one workspace or all of them",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["query"],
                "properties": {
                    "query": { "type": "string", "minLength": 1, "maxLength": 2000 },
                    "workspace": workspace,
                    "limit": { "type": "integer", "minimum": 1, "maximum": MAX_RESULT_HITS },
                    "offset": { "type": "integer", "minimum": 0 }
                }
            }),
        ),
        (
            "analyze",
            "structure metrics, import cycles or the dependents of a file in a workspace",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["workspace"],
                "properties": {
                    "workspace": workspace,
                    "what": { "enum": ["metrics", "cycles", "dependents"] },
                    "path": { "type": "string", "maxLength": 1000 },
                    "target": { "type": "string", "minLength": 1, "maxLength": 1000 },
                    "top": { "type": "integer", "minimum": 1, "maximum": 1000 }
                }
            }),
        ),
    ];
    for (name, description, schema) in specs {
        let spec = KindSpec::new(name, description, schema, false).expect("code kind schema");
        // Searching and analysing read the index, as `GET /api/v1/search` does: viewers may.
        kinds.register(if name == "index" { spec } else { spec.reads_only() });
    }
}

fn fail(class: &str, message: impl Into<String>) -> Outcome {
    Outcome::Failed {
        error: TaskError { class: class.into(), message: message.into() },
        retryable: false,
    }
}

fn scan_failure(e: dreamos_scan::ScanError) -> Outcome {
    let retryable = e.code() == "internal" || e.code() == "conflict";
    Outcome::Failed {
        error: TaskError { class: e.code().into(), message: e.to_string() },
        retryable,
    }
}

/// Runs a code task to its end (on a blocking thread: parsing and indexing are CPU work).
/// `progress` receives the index's progress as it goes.
pub fn run(
    workspaces: &Workspaces,
    task: &Task,
    progress: &Arc<Mutex<Option<Progress>>>,
) -> Outcome {
    let p = &task.payload;
    let workspace = p.get("workspace").and_then(Value::as_str);
    match task.kind.as_str() {
        "index" => {
            let Some(name) = workspace else { return fail("invalid_payload", "no workspace") };
            let index = match workspaces.index(name) {
                Ok(i) => i,
                Err(e) => return scan_failure(e),
            };
            let summary = index.update(&mut |state| {
                let percent = if state.bytes_total == 0 {
                    100.0
                } else {
                    100.0 * state.bytes_done as f64 / state.bytes_total as f64
                };
                let message = format!("{}/{} files", state.files_done, state.files_total);
                *progress.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Progress { percent: (percent * 10.0).round() / 10.0, message });
            });
            match summary {
                Ok(mut s) => {
                    // Keep it fresh from now on.
                    if let Err(e) = workspaces.watch(name) {
                        tracing::warn!(workspace = name, error = %e, "cannot watch the workspace");
                    }
                    let skipped = s.skipped.len();
                    s.skipped.truncate(20);
                    Outcome::Succeeded {
                        result: json!({ "workspace": name, "summary": s, "skipped_total": skipped }),
                    }
                }
                Err(e) => scan_failure(e),
            }
        }
        "search" => {
            let query = p.get("query").and_then(Value::as_str).unwrap_or_default();
            let options = SearchOptions {
                limit: p.get("limit").and_then(Value::as_u64).unwrap_or(20) as usize,
                offset: p.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize,
                ..SearchOptions::default()
            };
            match workspaces.search(query, workspace, &options) {
                Ok(result) => Outcome::Succeeded { result },
                Err(e) => scan_failure(e),
            }
        }
        "analyze" => {
            let Some(name) = workspace else { return fail("invalid_payload", "no workspace") };
            let index = match workspaces.index(name) {
                Ok(i) => i,
                Err(e) => return scan_failure(e),
            };
            let what = p.get("what").and_then(Value::as_str).unwrap_or("metrics");
            let top = p.get("top").and_then(Value::as_u64).unwrap_or(20) as usize;
            let path = p.get("path").and_then(Value::as_str);
            let result = match what {
                "cycles" => index.graph().map(|g| {
                    let cycles = g.cycles();
                    json!({ "workspace": name, "cycles": cycles.iter().take(top).collect::<Vec<_>>(), "total": cycles.len() })
                }),
                "dependents" => {
                    let Some(target) = p.get("target").and_then(Value::as_str) else {
                        return fail("invalid_payload", "`dependents` needs a target (a file path)");
                    };
                    index.graph().map(|g| {
                        let deps = g.dependents(target, usize::MAX);
                        json!({ "workspace": name, "target": target, "dependents": deps })
                    })
                }
                _ => index.metrics(path, top).map(|m| {
                    // Per-file figures of a whole tree can be huge: the totals and hotspots
                    // are the answer; files only for a narrowed path.
                    let per_file = if path.is_some() { m.per_file.len().min(500) } else { 0 };
                    json!({
                        "workspace": name,
                        "files": m.files,
                        "functions": m.functions,
                        "lines": m.lines,
                        "languages": m.languages,
                        "hotspots": m.hotspots,
                        "per_file": &m.per_file[..per_file],
                    })
                }),
            };
            match result {
                Ok(result) => Outcome::Succeeded { result },
                Err(e) => scan_failure(e),
            }
        }
        other => fail("unsupported_kind", format!("`{other}` is not a code task")),
    }
}
