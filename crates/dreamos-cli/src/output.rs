//! How the CLI prints: tables sized to their content and the terminal, and relative times,
//! for people; JSON for scripts.

use std::io::IsTerminal;

use serde_json::Value;

/// A JSON value as a table cell: strings bare, null as `-`.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn s(v: &Value) -> String {
    text(v)
}

/// The terminal's width, when standard output is one.
fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size().map(|(w, _)| usize::from(w.0))
}

/// Prints a table: a header row, then one row per line, each column as wide as its widest
/// cell; numeric columns are right-aligned. On a terminal, the last column is cut to fit.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render_table(headers, rows, terminal_width()));
}

/// [`table`] as text, fitted to `width` columns when given.
pub fn render_table(headers: &[&str], rows: &[Vec<String>], width: Option<usize>) -> String {
    let n = headers.len();
    if n == 0 {
        return String::new();
    }
    // A cell is one line: a line break inside one would break every column after it.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| c.replace(['\n', '\r', '\t'], " ")).collect())
        .collect();
    let len = |c: &str| c.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| len(h)).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(n) {
            widths[i] = widths[i].max(len(cell));
        }
    }
    let numeric: Vec<bool> = (0..n)
        .map(|i| {
            rows.iter().any(|r| r.get(i).is_some_and(|c| c != "-"))
                && rows
                    .iter()
                    .all(|r| r.get(i).is_none_or(|c| c == "-" || is_number(c) || is_ratio(c)))
        })
        .collect();
    // What the last column may take: what is left of the terminal, but never under 12.
    let before_last: usize = widths[..n - 1].iter().map(|w| w + 2).sum();
    let last_room = width.map(|w| w.saturating_sub(before_last).max(12));
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut parts = Vec::with_capacity(n);
        for (i, cell) in cells.iter().enumerate().take(n) {
            if i == n - 1 && numeric[i] {
                parts.push(format!("{cell:>w$}", w = widths[i]));
            } else if i == n - 1 {
                parts.push(match last_room {
                    Some(room) if len(cell) > room => {
                        let cut: String = cell.chars().take(room - 1).collect();
                        format!("{cut}…")
                    }
                    _ => cell.clone(),
                });
            } else if numeric[i] {
                parts.push(format!("{cell:>w$}", w = widths[i]));
            } else {
                parts.push(format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in &rows {
        line(row);
    }
    out
}

/// Plain decimal numbers (not `inf`, `nan` or `1e3`, which are words here).
fn is_number(c: &str) -> bool {
    let digits = c.strip_prefix('-').unwrap_or(c);
    !digits.is_empty()
        && digits.chars().all(|ch| ch.is_ascii_digit() || ch == '.')
        && digits.chars().filter(|ch| *ch == '.').count() <= 1
        && digits.chars().any(|ch| ch.is_ascii_digit())
}

/// `3/5`-style cells (attempts, load) align as numbers do.
fn is_ratio(c: &str) -> bool {
    c.split_once('/').is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok())
}

/// A duration in words a person reads at a glance: `42s`, `5m 36s`, `2h 3m`, `3d 4h`.
pub fn span(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// A moment relative to `now_ms`: `12s ago`, `in 5m 0s`, `just now`.
pub fn relative(at_ms: i64, now_ms: i64) -> String {
    let delta = (at_ms - now_ms) / 1000;
    match delta {
        0 => "just now".into(),
        d if d < 0 => format!("{} ago", span(d.unsigned_abs())),
        d => format!("in {}", span(d as u64)),
    }
}

/// An RFC 3339 time from the API, relative to now (as given when it cannot be read).
pub fn ago(v: &Value) -> String {
    match v.as_str().map(humantime::parse_rfc3339_weak) {
        Some(Ok(at)) => {
            let ms = at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default();
            relative(ms, crate::now_ms())
        }
        _ => text(v),
    }
}

/// `1 agent`, `2 agents`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
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
                run_at(t),
                ago(&t["updated_at"]),
            ]
        })
        .collect();
    table(&["ID", "KIND", "STATE", "PRIORITY", "ATTEMPTS", "RUN AT", "UPDATED"], &rows);
}

/// When a task runs: for a waiting task its run-at (a delayed one shows `in 5m 0s`),
/// otherwise `-`.
fn run_at(t: &Value) -> String {
    match t["state"].as_str() {
        Some("pending" | "queued") => ago(&t["run_at"]),
        _ => "-".into(),
    }
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
        "node      {} ({} store, up {}, {})",
        s(&v["node"]),
        s(&v["store"]),
        span(v["uptime_s"].as_u64().unwrap_or_default()),
        count(v["local_agents"].as_u64().unwrap_or_default(), "local agent")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    /// Where each header starts on the first line must be where each cell starts below.
    fn starts(line: &str, cells: &[&str]) -> Vec<usize> {
        let mut at = 0;
        cells
            .iter()
            .map(|c| {
                at = line[at..].find(c).map(|i| i + at).expect(c);
                let start = at;
                at += c.len();
                start
            })
            .collect()
    }

    #[test]
    fn columns_size_to_their_longest_cell() {
        let long = "a-very-long-agent-name-from-a-build-farm-in-another-region";
        let text = render_table(
            &["ID", "NAME", "LOAD", "STATE"],
            &[row(&["a1", long, "0/1", "idle"]), row(&["a2", "x", "12/16", "busy\nagain"])],
            None,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "a line break in a cell stays in its row: {text}");
        let header = starts(lines[0], &["ID", "NAME", "LOAD", "STATE"]);
        assert_eq!(starts(lines[1], &["a1", long]), header[..2], "{text}");
        assert_eq!(starts(lines[2], &["a2", "x"]), header[..2], "{text}");
        assert_eq!(starts(lines[1], &["idle"])[0], header[3], "{text}");
        assert_eq!(starts(lines[2], &["busy again"])[0], header[3], "{text}");
        // Numbers (and 3/5 ratios) are right-aligned: they end where their header ends.
        let end = header[2] + "LOAD".len();
        assert!(lines[0][..end].ends_with(" LOAD"), "{text}");
        assert!(lines[1][..end].ends_with("  0/1"), "{text}");
        assert!(lines[2][..end].ends_with(" 12/16"), "{text}");
        assert!(lines.iter().all(|l| l.trim_end() == *l), "no trailing spaces: {text:?}");
        assert_eq!(render_table(&[], &[row(&["x"])], Some(10)), "");
    }

    #[test]
    fn on_a_narrow_terminal_the_last_column_is_cut() {
        let detail = "a long detail that goes on and on past the edge of the screen";
        let text = render_table(&["AT", "DETAIL"], &[row(&["12:00", detail])], Some(40));
        let line = text.lines().nth(1).unwrap();
        assert_eq!(line.chars().count(), 40, "{text}");
        assert!(line.ends_with('…'), "{text}");
        // Wide enough: nothing is cut.
        let text = render_table(&["AT", "DETAIL"], &[row(&["12:00", detail])], Some(200));
        assert!(text.contains(detail), "{text}");
    }

    #[test]
    fn times_read_as_a_person_says_them() {
        assert_eq!(span(42), "42s");
        assert_eq!(span(336), "5m 36s");
        assert_eq!(span(7_380), "2h 3m");
        assert_eq!(span(3 * 86_400 + 4 * 3_600), "3d 4h");
        assert_eq!(relative(1_000, 13_500), "12s ago");
        assert_eq!(relative(301_000, 1_000), "in 5m 0s");
        assert_eq!(relative(5_000, 5_400), "just now");
        assert_eq!(count(1, "local agent"), "1 local agent");
        assert_eq!(count(2, "local agent"), "2 local agents");
    }
}
