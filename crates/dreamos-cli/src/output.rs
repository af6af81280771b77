//! How the CLI prints: aligned tables for people, JSON for scripts.

use serde_json::Value;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> =
            cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

pub fn task_line(task: &Value, json: bool, existing: bool) {
    if json {
        println!("{task}");
        return;
    }
    let note = if existing { " (existing task for this idempotency key)" } else { "" };
    println!(
        "task {} {} [{} {}]{note}",
        s(&task["id"]),
        s(&task["state"]),
        s(&task["kind"]),
        s(&task["priority"])
    );
}

pub fn task_list(tasks: &Value, json: bool) {
    let empty = Vec::new();
    let tasks = tasks.as_array().unwrap_or(&empty);
    if json {
        for t in tasks {
            println!("{t}");
        }
        return;
    }
    if tasks.is_empty() {
        println!("no tasks");
        return;
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                s(&t["id"]),
                s(&t["kind"]),
                s(&t["state"]),
                s(&t["priority"]),
                format!("{}/{}", s(&t["attempts"]), s(&t["max_attempts"])),
                s(&t["updated_at"]),
            ]
        })
        .collect();
    table(&["ID", "KIND", "STATE", "PRIORITY", "ATTEMPTS", "UPDATED"], &rows);
}

pub fn task_detail(task: &Value, json: bool) {
    if json {
        println!("{task}");
        return;
    }
    let fields = [
        "id",
        "kind",
        "state",
        "priority",
        "attempts",
        "max_attempts",
        "submitter",
        "created_at",
        "run_at",
        "finished_at",
    ];
    for f in fields {
        println!("{f:<13} {}", s(&task[f]));
    }
    if !task["depends_on"].as_array().is_none_or(|a| a.is_empty()) {
        println!("{:<13} {}", "depends_on", task["depends_on"]);
    }
    if !task["lease"].is_null() {
        println!(
            "{:<13} {} (fence {}, until {})",
            "lease",
            s(&task["lease"]["holder"]),
            s(&task["lease"]["fence"]),
            s(&task["lease"]["expires_at"])
        );
    }
    if !task["progress"].is_null() {
        println!(
            "{:<13} {}% {}",
            "progress",
            s(&task["progress"]["percent"]),
            s(&task["progress"]["message"])
        );
    }
    println!("{:<13} {}", "payload", task["payload"]);
    if !task["result"].is_null() {
        println!("{:<13} {}", "result", task["result"]);
    }
    if !task["error"].is_null() {
        println!(
            "{:<13} {}: {}",
            "error",
            s(&task["error"]["class"]),
            s(&task["error"]["message"])
        );
    }
    if let Some(history) = task["history"].as_array() {
        println!();
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|e| {
                vec![s(&e["at"]), s(&e["event"]), s(&e["attempt"]), s(&e["actor"]), s(&e["detail"])]
            })
            .collect();
        table(&["AT", "EVENT", "ATTEMPT", "ACTOR", "DETAIL"], &rows);
    }
}

pub fn status(v: &Value, json: bool) {
    if json {
        println!("{v}");
        return;
    }
    println!(
        "node      {} ({} store, up {}s, {} local agents)",
        s(&v["node"]),
        s(&v["store"]),
        s(&v["uptime_s"]),
        s(&v["local_agents"])
    );
    let by_state = &v["tasks"];
    let states = ["pending", "queued", "running", "succeeded", "failed", "cancelled"];
    let parts: Vec<String> =
        states.iter().map(|st| format!("{st} {}", s(&by_state[*st]))).collect();
    println!("tasks     {}", parts.join(", "));
    let q = &v["queued_by_priority"];
    let parts: Vec<String> = ["critical", "high", "normal", "low"]
        .iter()
        .map(|p| format!("{p} {}", s(&q[*p])))
        .collect();
    println!("queued    {}", parts.join(", "));
}
