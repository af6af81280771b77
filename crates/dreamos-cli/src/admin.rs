//! `dreamos token ...` and `dreamos audit ...`: API tokens and the audit log (admin).

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Client;

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
        #[arg(long)]
        expires: Option<String>,
        /// Limit it to this workspace (repeatable; default: all workspaces).
        #[arg(long = "workspace")]
        workspaces: Vec<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The newest entries.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
    /// Entries by actor, action or time.
    Search {
        #[arg(long)]
        actor: Option<String>,
        /// Text the action contains, e.g. `auth.failed` or `tokens`.
        #[arg(long)]
        action: Option<String>,
        /// Only entries this recent, e.g. 1h.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Follow the hash chain: exits 1 and names the entry if one was edited or deleted.
    Verify,
}

fn when(ms: Option<i64>) -> String {
    ms.map(|ms| {
        humantime::format_rfc3339_millis(
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
            } else {
                println!(
                    "{:<14} {:<9} {:<24} {:<26} {:<10} WORKSPACES",
                    "ID", "ROLE", "LABEL", "EXPIRES", "STATUS"
                );
                for t in &list {
                    let status = if t["revoked_at_ms"].is_null() { "active" } else { "revoked" };
                    let ws = t["workspaces"].as_array().map_or("all".to_string(), |w| {
                        w.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
                    });
                    println!(
                        "{:<14} {:<9} {:<24} {:<26} {:<10} {ws}",
                        t["id"].as_str().unwrap_or_default(),
                        t["role"].as_str().unwrap_or_default(),
                        t["label"].as_str().unwrap_or_default(),
                        when(t["expires_at_ms"].as_i64()),
                        status
                    );
                }
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

fn print_entries(v: &Value, as_json: bool) {
    for e in v["entries"].as_array().into_iter().flatten() {
        if as_json {
            println!("{e}");
        } else {
            println!(
                "{:>6}  {}  {:<24} {:<40} {:>4}  {}{}",
                e["id"],
                when(e["at_ms"].as_i64()),
                e["actor"].as_str().unwrap_or_default(),
                e["action"].as_str().unwrap_or_default(),
                e["outcome"].as_str().unwrap_or_default(),
                e["target"].as_str().unwrap_or_default(),
                e["detail"].as_str().map(|d| format!(" ({d})")).unwrap_or_default()
            );
        }
    }
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

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
