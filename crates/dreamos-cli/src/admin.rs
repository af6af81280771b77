//! `dreamos token ...` and `dreamos audit ...`: API tokens and the audit log (admin).

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{Client, urlencode};
use crate::output;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue an API token (printed once).
    Create {
        /// admin, operator or viewer.
        #[arg(long)]
        role: String,
        /// A name to recognise it by.
        #[arg(long)]
        label: Option<String>,
        /// Lifetime, e.g. 30d or 12h (default: no expiry).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Limit it to this workspace (repeatable; default: all workspaces).
        #[arg(long = "workspace", value_name = "NAME")]
        workspaces: Vec<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token's id (the first column of `token list`).
        id: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The newest entries.
    Tail {
        /// How many entries.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
    /// Entries by actor, action or time, newest first.
    #[command(
        after_help = "Examples:\n  dreamos audit search --actor admin --since 1h\n  dreamos audit search --action auth.failed"
    )]
    Search {
        /// Text the actor contains, ignoring case, e.g. `admin`, `operator:ci` or an agent's
        /// id.
        #[arg(long)]
        actor: Option<String>,
        /// Text the action contains, ignoring case, e.g. `auth.failed` or `tokens`.
        #[arg(long)]
        action: Option<String>,
        /// Only entries this recent, e.g. 1h.
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Most entries to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Follow the hash chain: exits 1 and names the entry if one was edited or deleted.
    Verify,
}

fn when(ms: Option<i64>) -> String {
    ms.map(|ms| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64),
        )
        .to_string()
    })
    .unwrap_or_else(|| "-".into())
}

pub async fn token(client: Client, command: &TokenCommand, as_json: bool) -> Result<i32> {
    match command {
        TokenCommand::Create { role, label, expires, workspaces } => {
            let mut body = json!({ "role": role });
            if let Some(l) = label {
                body["label"] = json!(l);
            }
            if let Some(e) = expires {
                let d = humantime::parse_duration(e)
                    .with_context(|| format!("--expires `{e}` is not a duration like 30d"))?;
                body["expires_in_ms"] = json!(d.as_millis() as i64);
            }
            if !workspaces.is_empty() {
                body["workspaces"] = json!(workspaces);
            }
            let v = client.post("/api/v1/tokens", &body).await?;
            if as_json {
                println!(
                    "{}",
                    json!({ "id": v["id"], "token": v["token"], "role": v["role"], "expires_at_ms": v["expires_at_ms"], "workspaces": v["workspaces"] })
                );
            } else {
                println!(
                    "token {} ({}) created",
                    v["id"].as_str().unwrap_or_default(),
                    v["role"].as_str().unwrap_or_default()
                );
                println!("token (shown once): {}", v["token"].as_str().unwrap_or_default());
            }
        }
        TokenCommand::List => {
            let v = client.get("/api/v1/tokens").await?;
            let list = v["tokens"].as_array().cloned().unwrap_or_default();
            if as_json {
                list.iter().for_each(|t| println!("{t}"));
            } else if list.is_empty() {
                println!("no tokens");
            } else {
                let now = crate::now_ms();
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|t| {
                        let ws = t["workspaces"].as_array().map_or("all".to_string(), |w| {
                            w.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
                        });
                        vec![
                            output::text(&t["id"]),
                            output::text(&t["role"]),
                            output::text(&t["label"]),
                            token_state(t, now).into(),
                            t["expires_at_ms"]
                                .as_i64()
                                .map_or("never".into(), |at| output::relative(at, now)),
                            ws,
                        ]
                    })
                    .collect();
                output::table(&["ID", "ROLE", "LABEL", "STATE", "EXPIRES", "WORKSPACES"], &rows);
            }
        }
        TokenCommand::Revoke { id } => {
            let v = client.post(&format!("/api/v1/tokens/{id}/revoke"), &json!({})).await?;
            if as_json {
                println!("{v}");
            } else {
                println!("token {id} revoked");
            }
        }
    }
    Ok(0)
}

/// A token's state as its holder meets it: `revoked`, `expired` or `active`.
fn token_state(t: &Value, now_ms: i64) -> &'static str {
    if !t["revoked_at_ms"].is_null() {
        "revoked"
    } else if t["expires_at_ms"].as_i64().is_some_and(|at| at <= now_ms) {
        "expired"
    } else {
        "active"
    }
}

fn print_entries(v: &Value, as_json: bool) {
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    if as_json {
        entries.iter().for_each(|e| println!("{e}"));
        return;
    }
    if entries.is_empty() {
        println!("no audit entries match");
        return;
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let detail = e["detail"].as_str().map(|d| format!(" ({d})")).unwrap_or_default();
            vec![
                output::text(&e["id"]),
                when(e["at_ms"].as_i64()),
                output::text(&e["actor"]),
                output::text(&e["action"]),
                output::text(&e["outcome"]),
                format!("{}{detail}", e["target"].as_str().unwrap_or_default()),
            ]
        })
        .collect();
    output::table(&["ID", "AT", "ACTOR", "ACTION", "OUTCOME", "TARGET"], &rows);
}

pub async fn audit(client: Client, command: &AuditCommand, as_json: bool) -> Result<i32> {
    match command {
        AuditCommand::Tail { lines } => {
            let v = client.get(&format!("/api/v1/audit?newest=true&limit={lines}")).await?;
            print_entries(&v, as_json);
        }
        AuditCommand::Search { actor, action, since, limit } => {
            let mut q = vec![format!("limit={limit}"), "newest=true".to_string()];
            if let Some(a) = actor {
                q.push(format!("actor={}", urlencode(a)));
            }
            if let Some(a) = action {
                q.push(format!("action={}", urlencode(a)));
            }
            if let Some(s) = since {
                let d = humantime::parse_duration(s)
                    .with_context(|| format!("--since `{s}` is not a duration like 1h"))?;
                q.push(format!("since_ms={}", crate::now_ms() - d.as_millis() as i64));
            }
            let v = client.get(&format!("/api/v1/audit?{}", q.join("&"))).await?;
            print_entries(&v, as_json);
        }
        AuditCommand::Verify => {
            let v = client.get("/api/v1/audit/verify").await?;
            if as_json {
                println!("{v}");
            } else if v["ok"] == true {
                println!(
                    "audit log intact: {} entries, head {}",
                    v["entries"],
                    v["head"].as_str().unwrap_or_default()
                );
            } else {
                println!(
                    "AUDIT LOG BROKEN at entry {}: {}",
                    v["broken_at"],
                    v["reason"].as_str().unwrap_or_default()
                );
            }
            return Ok(if v["ok"] == true { 0 } else { 1 });
        }
    }
    Ok(0)
}
