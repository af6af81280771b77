//! The `exec` task: runs one allowed program with arguments (no shell), a clean environment
//! built from an allowlist, and limits: wall time, CPU time (an rlimit set by `prlimit`, so
//! the kernel stops the program), memory (its resident set, sampled every 10 ms) and output
//! size. A program past a limit is killed and the attempt fails with the reason: `timeout`,
//! `cpu_limit`, `memory_limit` or `output_limit`.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dreamos_core::{Outcome, TaskError};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};
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
    max_memory_bytes: Option<u64>,
    max_cpu_ms: Option<u64>,
}

fn fail(class: &str, message: impl Into<String>, retryable: bool) -> Outcome {
    Outcome::Failed { error: TaskError { class: class.into(), message: message.into() }, retryable }
}

/// Runs an `exec` payload under `config`'s allowlists and limits (and the task's own time
/// limit, if any); `cancel` becoming true kills the program.
pub async fn run(
    config: &Config,
    payload: &serde_json::Value,
    task_timeout_ms: Option<i64>,
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    let payload: ExecPayload = match serde_json::from_value(payload.clone()) {
        Ok(p) => p,
        Err(e) => return fail("invalid_payload", e.to_string(), false),
    };
    // The program is the file resolved from the node's own PATH when the configuration was
    // loaded: nothing in the payload chooses which file runs.
    let program = config.exec_programs.get(&payload.program).cloned().or_else(|| {
        config.exec_programs.values().find(|p| p.as_os_str() == payload.program.as_str()).cloned()
    });
    let Some(program) = program else {
        return fail(
            "program_not_allowed",
            format!(
                "`{}` is not in exec_allow ({})",
                payload.program,
                config.exec_programs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            false,
        );
    };
    if let Some(key) = payload.env.keys().find(|k| crate::config::env_never_allowed(k)) {
        return fail(
            "env_not_allowed",
            format!(
                "environment variable `{key}` chooses which program or library runs: payloads may never set it"
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
    let Some(prlimit) = crate::config::find_program("prlimit") else {
        return fail("spawn_failed", "prlimit (util-linux) is not installed on this node", false);
    };
    let mut run = match crate::sandbox::Run::prepare(config, payload.cwd.as_deref()) {
        Ok(r) => r,
        Err(message) => return fail("cwd_not_allowed", message, false),
    };
    let timeout_ms = [
        Some(config.exec_timeout_ms),
        payload.timeout_ms,
        task_timeout_ms.map(|t| t.max(1) as u64),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(config.exec_timeout_ms);
    let cap = payload
        .max_output_bytes
        .unwrap_or(config.exec_max_output_bytes)
        .min(config.exec_max_output_bytes);

    let max_memory = payload
        .max_memory_bytes
        .unwrap_or(config.exec_max_memory_bytes)
        .min(config.exec_max_memory_bytes);
    let max_cpu_ms =
        payload.max_cpu_ms.unwrap_or(config.exec_max_cpu_ms).min(config.exec_max_cpu_ms);
    let cpu_s = max_cpu_ms.div_ceil(1000).max(1);
    // The kernel enforces the CPU limit: SIGXCPU at the soft limit, SIGKILL a second later.
    let mut argv: Vec<std::ffi::OsString> = vec![
        prlimit.into(),
        format!("--cpu={cpu_s}:{}", cpu_s + 1).into(),
        // The data segment limit is inherited by the program's children, which the resident
        // set sampling does not see.
        format!("--data={max_memory}").into(),
        "--".into(),
        program.into(),
    ];
    argv.extend(payload.args.iter().map(Into::into));
    let mut command = run.command(&argv);
    command
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir(&run.cwd)
        .kill_on_drop(true);
    // The node's own PATH (never the payload's) and the node's values of the allowed names;
    // then what the payload sets of those.
    command.env(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    for key in &config.exec_env_allow {
        if let Ok(value) = std::env::var(key) {
            command.env(key, value);
        }
    }
    command.envs(&payload.env);
    let mut child = match run.start(&mut command).await {
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

    let pid = child.id();
    let ended = tokio::select! {
        status = child.wait() => Ok(status),
        rss = over_memory(pid, max_memory) => Err(fail("memory_limit", format!("killed using {rss} bytes of memory (limit {max_memory})"), false)),
        _ = tokio::time::sleep(Duration::from_millis(timeout_ms)) => Err(fail("timeout", format!("killed after {timeout_ms} ms"), true)),
        _ = over_cap.notified() => Err(fail("output_limit", format!("killed after writing more than {cap} bytes of output"), false)),
        _ = cancel.wait_for(|c| *c) => Err(Outcome::Cancelled),
    };
    // The run is over, however it ended: every process it started goes with it, so nothing
    // outlives the timeout and nothing holds the output pipes open.
    run.kill_all();
    let status = match ended {
        Ok(status) => status,
        Err(outcome) => {
            let _ = child.kill().await;
            return outcome;
        }
    };
    // Reading what is left is bounded too: a process that escaped the group and the cgroup
    // could hold a pipe open, but not the task.
    let drain = Duration::from_millis(500);
    let out =
        tokio::time::timeout(drain, stdout).await.ok().and_then(Result::ok).unwrap_or_default();
    let err =
        tokio::time::timeout(drain, stderr).await.ok().and_then(Result::ok).unwrap_or_default();
    if over.load(Ordering::SeqCst) {
        return fail("output_limit", format!("wrote more than {cap} bytes of output"), false);
    }
    let status = match status {
        Ok(s) => s,
        Err(e) => return fail("wait_failed", e.to_string(), true),
    };
    {
        use std::os::unix::process::ExitStatusExt;
        // At the soft limit the kernel sends SIGXCPU, whose default action ends the program.
        if status.signal() == Some(24) {
            return fail(
                "cpu_limit",
                format!("killed after using its {cpu_s} s of CPU time"),
                false,
            );
        }
    }
    if !status.success() && ran_out_of_memory(&err) {
        return fail(
            "memory_limit",
            format!("`{}` could not allocate within its {max_memory} bytes", payload.program),
            false,
        );
    }
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

/// Whether a failed program's last words say an allocation failed (what a program sees when
/// the data-segment rlimit refuses it memory).
fn ran_out_of_memory(stderr: &[u8]) -> bool {
    let tail =
        String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(2_000)..]).to_lowercase();
    ["cannot allocate memory", "out of memory", "memoryerror", "memory exhausted", "bad_alloc"]
        .iter()
        .any(|needle| tail.contains(needle))
}

/// Resolves when the process's resident set passes `limit` bytes (sampled every 10 ms), with
/// the size seen; never resolves for a process that stays under it.
async fn over_memory(pid: Option<u32>, limit: u64) -> u64 {
    let Some(pid) = pid else { return std::future::pending().await };
    let path = format!("/proc/{pid}/status");
    loop {
        if let Ok(text) = tokio::fs::read_to_string(&path).await
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            && kb * 1024 > limit
        {
            return kb * 1024;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
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
