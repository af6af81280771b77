//! The cards the commands answer with: a task, an analysis, a file's dependents.

use super::*;

pub(super) fn finished(task: &Value) -> bool {
    matches!(task["state"].as_str(), Some("succeeded" | "failed" | "cancelled"))
}

pub(super) fn task_reply(task: &Value, title: Option<&str>) -> Reply {
    let mut card = commands::task_card(task);
    if let Some(t) = title {
        card.title = format!("{t} · task #{}", task["id"]);
    }
    Reply::card(card)
}

pub(super) fn analysis_card(workspace: &str, results: &[Value]) -> Reply {
    let metrics = &results[0]["result"];
    let cycles = &results.get(1).map(|r| r["result"].clone()).unwrap_or_default();
    let hotspots: Vec<String> = metrics["hotspots"]
        .as_array()
        .into_iter()
        .flatten()
        .take(10)
        .map(|h| {
            format!(
                "`{}` {}:{} complexity {}",
                h["name"].as_str().or(h["symbol"].as_str()).unwrap_or("?"),
                h["path"].as_str().unwrap_or("?"),
                h["line"],
                h["complexity"]
            )
        })
        .collect();
    let cycle_lines: Vec<String> = cycles["cycles"]
        .as_array()
        .into_iter()
        .flatten()
        .take(10)
        .map(|c| {
            c.as_array()
                .map(|files| files.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" → "))
                .unwrap_or_default()
        })
        .collect();
    if let Some(e) = results.iter().find_map(|r| r["error"]["message"].as_str()) {
        return Reply::private(format!("The analysis failed: {e}"));
    }
    Reply::card(Card {
        title: format!("Analysis of {workspace}"),
        description: format!(
            "{} files · {} functions · {} lines",
            metrics["files"], metrics["functions"], metrics["lines"]
        ),
        fields: vec![
            (
                "Complexity hotspots".into(),
                if hotspots.is_empty() { "none".into() } else { hotspots.join("\n") },
            ),
            (
                format!("Dependency cycles ({})", cycles["total"].as_u64().unwrap_or(0)),
                if cycle_lines.is_empty() { "none".into() } else { cycle_lines.join("\n") },
            ),
        ],
        footer: None,
        color: Some(render::BLUE),
    })
}

pub(super) fn dependents_card(target: &str, results: &[Value]) -> Reply {
    let task = &results[0];
    if let Some(e) = task["error"]["message"].as_str() {
        return Reply::private(format!("Cannot list dependents: {e}"));
    }
    let deps: Vec<String> = task["result"]["dependents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            d.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| d["path"].as_str().unwrap_or("?").to_string())
        })
        .collect();
    Reply::card(Card {
        title: render::clip(&format!("What depends on {target}"), 256),
        description: if deps.is_empty() {
            "Nothing.".into()
        } else {
            deps.iter().map(|d| format!("• `{d}`")).collect::<Vec<_>>().join("\n")
        },
        footer: Some(format!("{} dependents", deps.len())),
        color: Some(render::BLUE),
        ..Card::default()
    })
}
