//! The `exec` task: runs one allowed program with arguments (no shell), a clean environment
//! built from an allowlist, a wall-time limit and an output cap. A program past its limits is
//! killed and the attempt fails with the reason (`timeout` or `output_limit`).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dreamos_core::{Outcome, Task, TaskError};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::{Notify, watch};

use crate::config::Config;

#[derive(Debug, Deserialize)]
struct ExecPayload {
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    cwd: Option<String>,
    timeout_ms: Option<u64>,
    max_output_bytes: Option<usize>,
}

fn fail(class: &str, message: impl Into<String>, retryable: bool) -> Outcome {
    Outcome::Failed { error: TaskError { class: class.into(), message: message.into() }, retryable }
}

pub async fn run(config: &Config, task: &Task, mut cancel: watch::Receiver<bool>) -> Outcome {
    let payload: ExecPayload = match serde_json::from_value(task.payload.clone()) {
        Ok(p) => p,
        Err(e) => return fail("invalid_payload", e.to_string(), false),
    };
    if !config.exec_allow.iter().any(|allowed| allowed == &payload.program) {
        return fail(
            "program_not_allowed",
            format!(
                "`{}` is not in exec_allow ({})",
                payload.program,
                config.exec_allow.join(", ")
            ),
            false,
        );
    }
    if let Some(key) = payload.env.keys().find(|k| !config.exec_env_allow.contains(k)) {
        return fail(
            "env_not_allowed",
            format!("environment variable `{key}` is not in exec_env_allow"),
            false,
        );
    }
    let timeout_ms = [
        Some(config.exec_timeout_ms),
        payload.timeout_ms,
        task.timeout_ms.map(|t| t.max(1) as u64),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(config.exec_timeout_ms);
    let cap = payload
        .max_output_bytes
        .unwrap_or(config.exec_max_output_bytes)
        .min(config.exec_max_output_bytes);

    let mut command = Command::new(&payload.program);
    command
        .args(&payload.args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for key in &config.exec_env_allow {
        if let Ok(value) = std::env::var(key) {
            command.env(key, value);
        }
    }
    command.envs(&payload.env);
    if let Some(cwd) = &payload.cwd {
        command.current_dir(cwd);
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return fail("spawn_failed", format!("cannot start `{}`: {e}", payload.program), false);
        }
    };
    let total = Arc::new(AtomicUsize::new(0));
    let over = Arc::new(AtomicBool::new(false));
    let over_cap = Arc::new(Notify::new());
    let stdout = tokio::spawn(read_capped(
        child.stdout.take(),
        total.clone(),
        cap,
        over.clone(),
        over_cap.clone(),
    ));
    let stderr = tokio::spawn(read_capped(
        child.stderr.take(),
        total.clone(),
        cap,
        over.clone(),
        over_cap.clone(),
    ));

    let ended = tokio::select! {
        status = child.wait() => Ok(status),
        _ = tokio::time::sleep(Duration::from_millis(timeout_ms)) => Err(fail("timeout", format!("killed after {timeout_ms} ms"), true)),
        _ = over_cap.notified() => Err(fail("output_limit", format!("killed after writing more than {cap} bytes of output"), false)),
        _ = cancel.wait_for(|c| *c) => Err(Outcome::Cancelled),
    };
    let status = match ended {
        Ok(status) => status,
        Err(outcome) => {
            let _ = child.kill().await;
            return outcome;
        }
    };
    let out = stdout.await.unwrap_or_default();
    let err = stderr.await.unwrap_or_default();
    if over.load(Ordering::SeqCst) {
        return fail("output_limit", format!("wrote more than {cap} bytes of output"), false);
    }
    let status = match status {
        Ok(s) => s,
        Err(e) => return fail("wait_failed", e.to_string(), true),
    };
    let result = json!({
        "exit_code": status.code(),
        "stdout": String::from_utf8_lossy(&out),
        "stderr": String::from_utf8_lossy(&err),
    });
    if status.success() {
        Outcome::Succeeded { result }
    } else {
        let tail: String = String::from_utf8_lossy(&err)
            .chars()
            .rev()
            .take(500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        fail(
            "exit_status",
            format!("`{}` exited with {status}: {}", payload.program, tail.trim()),
            true,
        )
    }
}

/// Reads a stream to its end, keeping at most `cap` bytes across all streams sharing
/// `total`; signals `over_cap` once the cap is passed.
async fn read_capped(
    stream: Option<impl AsyncRead + Unpin>,
    total: Arc<AtomicUsize>,
    cap: usize,
    over: Arc<AtomicBool>,
    over_cap: Arc<Notify>,
) -> Vec<u8> {
    let Some(mut stream) = stream else { return Vec::new() };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => n,
        };
        let before = total.fetch_add(n, Ordering::SeqCst);
        if before + n > cap {
            kept.extend_from_slice(&buf[..cap.saturating_sub(before).min(n)]);
            over.store(true, Ordering::SeqCst);
            over_cap.notify_one();
            return kept;
        }
        kept.extend_from_slice(&buf[..n]);
    }
}
