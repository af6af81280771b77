//! `dreamos task ...`, `dreamos kinds` and `dreamos workspace ...`: the node's tasks and
//! code workspaces, over its API.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::cli::{Cli, ListArgs, TaskCommand, WorkspaceCommand};
use crate::client::{Client, urlencode};
use crate::{client, output, parse_id, parse_time};

/// `dreamos kinds`: what each task kind does, who may submit it and its payload schema.
pub async fn kinds(cli: &Cli) -> Result<i32> {
    let v = client(cli)?.get("/api/v1/kinds").await?;
    let kinds = v["kinds"].as_array().cloned().unwrap_or_default();
    if cli.json {
        kinds.iter().for_each(|k| println!("{k}"));
        return Ok(0);
    }
    if kinds.is_empty() {
        println!("this node accepts no task kinds");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = kinds
        .iter()
        .map(|k| {
            let who = if k["admin_only"] == true {
                "admin"
            } else if k["read_only"] == true {
                "viewer"
            } else {
                "operator"
            };
            vec![output::text(&k["name"]), who.to_string(), output::text(&k["description"])]
        })
        .collect();
    // Each kind's payload fields go on a line of their own, under its description.
    let text = output::render_table(&["KIND", "SUBMIT", "DESCRIPTION"], &rows, None);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let indent = header.find("DESCRIPTION").unwrap_or_default();
    println!("{header}");
    for (line, kind) in lines.zip(&kinds) {
        println!("{line}");
        println!("{:indent$}payload: {}", "", payload_fields(&kind["schema"]));
    }
    println!("\nfull payload schemas: dreamos kinds --json");
    Ok(0)
}

/// A payload schema's fields in brief: required ones first, optional ones with `?`.
fn payload_fields(schema: &Value) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let names: Vec<&String> =
        schema["properties"].as_object().map(|p| p.keys().collect()).unwrap_or_default();
    let (mut fields, optional): (Vec<&String>, Vec<&String>) =
        names.into_iter().partition(|k| required.contains(&k.as_str()));
    let mut fields: Vec<String> = fields.drain(..).cloned().collect();
    fields.extend(optional.into_iter().map(|k| format!("{k}?")));
    if fields.is_empty() { "none".into() } else { fields.join(", ") }
}

/// `dreamos task list`: one page, and the command for the next.
async fn list(cli: &Cli, client: &Client, args: &ListArgs) -> Result<i32> {
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(s) = &args.state {
        query.push(format!("state={}", urlencode(s)));
    }
    if let Some(k) = &args.kind {
        query.push(format!("kind={}", urlencode(k)));
    }
    if args.archived {
        query.push("archived=true".into());
    }
    if let Some(b) = &args.before {
        query.push(format!("before={}", parse_id(b)?));
    }
    let v = client.get(&format!("/api/v1/tasks?{}", query.join("&"))).await?;
    output::task_list(&v["tasks"], cli.json);
    if !cli.json
        && let Some(next) = v["next_before"].as_i64()
    {
        println!("more: {}", next_page(cli, args, next));
    }
    Ok(0)
}

/// The command line for the page after `next`: the same node, data dir and filters, quoted
/// for a POSIX shell so that it can be pasted as it is.
fn next_page(cli: &Cli, args: &ListArgs, next: i64) -> String {
    let mut words = vec!["dreamos".to_string()];
    if cli.data_dir != std::path::Path::new("./.dreamos") {
        words.push(format!("--data-dir={}", shell_word(&cli.data_dir.to_string_lossy())));
    }
    if let Some(config) = &cli.config {
        words.push(format!("--config={}", shell_word(&config.to_string_lossy())));
    }
    if !cli.server.is_empty() {
        words.push(format!("--server={}", shell_word(&cli.server.join(","))));
    }
    words.extend(["task", "list", "--before"].map(String::from));
    words.push(next.to_string());
    if let Some(s) = &args.state {
        words.push(format!("--state={}", shell_word(s)));
    }
    if let Some(k) = &args.kind {
        words.push(format!("--kind={}", shell_word(k)));
    }
    if args.archived {
        words.push("--archived".into());
    }
    if args.limit != 50 {
        words.push(format!("--limit={}", args.limit));
    }
    words.join(" ")
}

/// `text` as one POSIX shell word: bare when it is plainly safe, else single-quoted.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@%+,-".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

pub async fn task(cli: &Cli, command: &TaskCommand) -> Result<i32> {
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
        TaskCommand::List(args) => list(cli, &client, args).await,
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

pub async fn workspace(cli: &Cli, command: &WorkspaceCommand) -> Result<i32> {
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
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|w| {
                        vec![
                            output::text(&w["name"]),
                            output::text(&w["files"]),
                            if w["watching"] == true { "yes" } else { "no" }.into(),
                            output::text(&w["root"]),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "FILES", "WATCHED", "ROOT"], &rows);
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
                    // Done: the same one-line summary as a local `dreamos index`.
                    let summary = serde_json::from_value::<dreamos_scan::UpdateSummary>(
                        t["result"]["summary"].clone(),
                    );
                    match summary {
                        Ok(s) if state == "succeeded" && !cli.json => {
                            println!("{}", crate::scan::summary_line(name, &s));
                        }
                        _ => output::task_detail(&t, cli.json),
                    }
                    return Ok(if state == "succeeded" { 0 } else { 2 });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn a_pasted_word_stays_one_word_and_runs_nothing() {
        assert_eq!(shell_word("exec"), "exec");
        assert_eq!(shell_word("http://a:1,http://b:2"), "http://a:1,http://b:2");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_word("it's $(x) `y` \\ \"z\"")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $(x) `y` \\ \"z\"");
    }
}
