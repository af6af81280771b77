//! The node's one typed configuration: built-in defaults < `dreamos.toml` (in the data dir, or
//! `--config`) < environment (`DREAMOS_*`) < command-line flags. Each option is documented
//! here once (and in `starter.toml`, which a test keeps in step); `dreamos config show` prints
//! the effective values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Options as they may appear in `dreamos.toml` or in `DREAMOS_<NAME>` variables.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address of the HTTP API. Default `127.0.0.1:7700` (loopback only).
    pub listen: Option<String>,
    /// Built-in local agents. Default: the number of cores.
    pub agents: Option<usize>,
    /// Store URL: `sqlite://PATH` or `postgres://...`. Default: SQLite in the data dir.
    pub store: Option<String>,
    /// PostgreSQL: keep the tables in this schema (created if missing), so several
    /// independent deployments can share one database. Default: the connection's default.
    pub store_schema: Option<String>,
    /// Lease of a claimed task, in ms; holders heartbeat at a third of it. Default 30000.
    pub lease_ms: Option<i64>,
    /// On SIGINT/SIGTERM, how long running tasks may finish before they are released, in ms.
    /// Default 10000.
    pub grace_ms: Option<u64>,
    /// Waiting time worth one priority level, in ms. Default 60000.
    pub aging_ms: Option<i64>,
    /// Fairness across submitters: one submitter's consecutive tasks are placed at least this
    /// far apart in the claim order, so another's new work lands among a large backlog rather
    /// than behind it. 0 turns fairness off. Default 10.
    pub fair_spacing_ms: Option<i64>,
    /// Finished tasks move to the archive this long after finishing, in ms. Default 7 days.
    pub archive_after_ms: Option<i64>,
    /// Largest task payload, in bytes. Default 262144.
    pub max_payload_bytes: Option<usize>,
    /// SQLite: sync the WAL on every commit (survives power loss, slower). Default false
    /// (commits survive a crash of the process).
    pub sqlite_full_sync: Option<bool>,
    /// Programs `exec` tasks may run: names, resolved to absolute paths in the node's own
    /// `PATH` when the configuration is loaded (never in a caller's), or absolute paths.
    pub exec_allow: Option<Vec<String>>,
    /// Environment variables a payload may set for `exec` programs (the node's own values
    /// are passed otherwise). `PATH`, `LD_*` and other loader or interpreter hooks are never
    /// allowed. Default: HOME, LANG, TZ.
    pub exec_env_allow: Option<Vec<String>>,
    /// Directories under which an `exec` payload may name its `cwd`; without one, every run
    /// gets a fresh empty directory of its own. Default: none.
    pub exec_cwd_roots: Option<Vec<PathBuf>>,
    /// Most processes an `exec` program may have at once, its children included, enforced by
    /// a pids cgroup per run where the node may create one (elsewhere the node warns that
    /// it cannot). Default 64.
    pub exec_max_processes: Option<u64>,
    /// Directories under which workspaces may be registered. Default: the home directory of
    /// the node's user and the directory the node started in. `/`, `/etc`, `/proc`, `/sys`,
    /// `/dev`, `/boot`, `/root` and `/var` themselves are refused unless listed here exactly.
    pub workspace_roots: Option<Vec<PathBuf>>,
    /// The file holding the key of the audit chain (HMAC-SHA256), outside the store. Nodes
    /// sharing a store must share it. Default `DATA_DIR/audit.key`, made on first start.
    pub audit_key_file: Option<PathBuf>,
    /// Testing only: lets `noop {"crash": true}` crash the local agent running it (to
    /// exercise supervision). Default false: the switch is ignored.
    pub test_crash_switch: Option<bool>,
    /// Default wall-time limit of an `exec` task, in ms. Default 60000.
    pub exec_timeout_ms: Option<u64>,
    /// Most bytes of stdout plus stderr an `exec` task may produce. Default 1048576.
    pub exec_max_output_bytes: Option<usize>,
    /// Source trees to register as code workspaces and index at start.
    pub workspaces: Option<Vec<PathBuf>>,
    /// Most memory (resident set) an `exec` program may use, in bytes. Default 512 MiB.
    pub exec_max_memory_bytes: Option<u64>,
    /// Most CPU time an `exec` program may use, in ms (an rlimit). Default 60000.
    pub exec_max_cpu_ms: Option<u64>,
    /// How often agents heartbeat, in ms (told to remote agents when they register).
    /// Default 5000.
    pub agent_heartbeat_ms: Option<i64>,
    /// An agent silent for this many heartbeat intervals is `lost`: its tasks are retried.
    /// Default 3.
    pub agent_missed_heartbeats: Option<i64>,
    /// The orchestrator's leader lease among nodes sharing a store, in ms; a dead leader is
    /// replaced after at most this long. Default 10000.
    pub leader_ttl_ms: Option<i64>,
    /// Requests per second one client address may make (bursts of twice that). 0: no limit.
    /// Default 20000.
    pub rate_limit_per_address: Option<f64>,
    /// Requests per second one token may make (bursts of twice that). 0: no limit.
    /// Default 5000.
    pub rate_limit_per_token: Option<f64>,
    /// Tasks per minute one operator token may submit (admins are not limited). 0: no limit.
    /// Default 600000.
    pub submit_quota_per_minute: Option<f64>,
    /// Longest a request may take to be answered (a stream's answer starts at once), in ms.
    /// Long-polls wait at most 60 s. Default 90000.
    pub request_timeout_ms: Option<u64>,
    /// Most connections open at once; past it, a few more are served `/healthz` only, then
    /// new ones wait. Default 10000.
    pub max_connections: Option<usize>,
    /// Most connections one client address may hold open; more are closed at once.
    /// Default 1024.
    pub max_connections_per_address: Option<usize>,
    /// A request's head must arrive within this many ms, and a connection idle between
    /// requests for this long is closed. Default 15000.
    pub header_read_timeout_ms: Option<u64>,
    /// How far back the event stream replays for a reader resuming with `Last-Event-ID`, in
    /// ms. Default 3600000.
    pub feed_retention_ms: Option<i64>,
    /// TLS: a PEM certificate chain; with `tls_key`, the API is served over HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// TLS: the PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Most tasks of a kind running at once across all agents, e.g. `{ exec = 4 }`.
    pub kind_limits: Option<std::collections::BTreeMap<String, usize>>,
    /// Discord: the bot's token (keep it in `DREAMOS_DISCORD_TOKEN`, not in a file). Never
    /// logged or shown.
    pub discord_token: Option<String>,
    /// Discord: the application id. With it and the public key, the node serves
    /// `POST /discord/interactions`.
    pub discord_application_id: Option<u64>,
    /// Discord: the application's public key (hex), to verify interaction signatures.
    pub discord_public_key: Option<String>,
    /// Discord: guilds to register the commands in (instant); none: globally.
    pub discord_guilds: Option<Vec<u64>>,
    /// Discord: the channel notifications go to.
    pub discord_channel: Option<u64>,
    /// Discord: role ids and the Dream.OS role they give, e.g. `{ "1234" = "operator" }`
    /// (env: `1234=operator,5678=admin`). A member with none of them may do nothing.
    pub discord_roles: Option<std::collections::BTreeMap<String, String>>,
    /// Discord: REST API at `HOST:PORT` over plain HTTP instead of discord.com (the tests'
    /// simulator).
    pub discord_api: Option<String>,
    /// Discord: the gateway's websocket URL instead of Discord's (the tests' simulator).
    pub discord_gateway: Option<String>,
    /// Discord: how often alerts (lost agents, dead letters, queue depth, error rate) are
    /// checked for the notification channel, in ms. Default 5000.
    pub discord_watch_ms: Option<u64>,
    /// Discord: alert when this many tasks are queued. Default 1000.
    pub alert_queue_depth: Option<u64>,
    /// Discord: alert when this percentage of finished tasks failed (once ten have
    /// finished). Default 20.
    pub alert_error_rate: Option<f64>,
}

/// Flags given on the command line (already merged with their `DREAMOS_*` variables by clap).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub agents: Option<usize>,
    pub store: Option<String>,
    /// `--workspace PATH`, repeatable; added to those of the file.
    pub workspaces: Vec<PathBuf>,
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub agents: usize,
    pub store: String,
    pub store_schema: Option<String>,
    pub lease_ms: i64,
    pub grace_ms: u64,
    pub aging_ms: i64,
    pub fair_spacing_ms: i64,
    pub archive_after_ms: i64,
    pub max_payload_bytes: usize,
    pub sqlite_full_sync: bool,
    pub exec_allow: Vec<String>,
    /// `exec_allow`, resolved: each allowed name and the absolute path it runs.
    pub exec_programs: std::collections::BTreeMap<String, PathBuf>,
    pub exec_env_allow: Vec<String>,
    pub exec_cwd_roots: Vec<PathBuf>,
    pub exec_max_processes: u64,
    pub workspace_roots: Vec<PathBuf>,
    /// Whether `workspace_roots` was configured (not the defaults): then a sensitive tree
    /// listed in it exactly may be a workspace.
    pub workspace_roots_configured: bool,
    pub test_crash_switch: bool,
    pub audit_key_file: Option<PathBuf>,
    pub exec_timeout_ms: u64,
    pub exec_max_output_bytes: usize,
    pub workspaces: Vec<PathBuf>,
    pub exec_max_memory_bytes: u64,
    pub exec_max_cpu_ms: u64,
    pub agent_heartbeat_ms: i64,
    pub agent_missed_heartbeats: i64,
    pub leader_ttl_ms: i64,
    pub rate_limit_per_address: f64,
    pub rate_limit_per_token: f64,
    pub submit_quota_per_minute: f64,
    pub request_timeout_ms: u64,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub header_read_timeout_ms: u64,
    /// How far back the event stream replays for a reader resuming with `Last-Event-ID`.
    pub feed_retention_ms: i64,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub kind_limits: std::collections::BTreeMap<String, usize>,
    /// Present when Discord is configured (an application id, and a token or a public key).
    pub discord: Option<DiscordConfig>,
}

/// Discord, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct DiscordConfig {
    pub token: Option<Secret>,
    pub application_id: u64,
    pub public_key: Option<String>,
    pub guilds: Vec<u64>,
    pub channel: Option<u64>,
    /// Discord role id -> `viewer`, `operator` or `admin`.
    pub roles: std::collections::BTreeMap<u64, crate::auth::Role>,
    pub api: Option<String>,
    pub gateway: Option<String>,
    pub watch_ms: u64,
    pub alert_queue_depth: u64,
    pub alert_error_rate: f64,
}

/// A secret: shown and logged as `***`.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

fn resolve_discord(c: &FileConfig) -> Result<Option<DiscordConfig>, ConfigError> {
    let Some(application_id) = c.discord_application_id else {
        if c.discord_token.is_some() || c.discord_public_key.is_some() {
            return Err(ConfigError(
                "discord_application_id is needed with a Discord token or public key".into(),
            ));
        }
        return Ok(None);
    };
    if let Some(key) = &c.discord_public_key
        && (key.len() != 64 || hex::decode(key).is_err())
    {
        return Err(ConfigError(
            "discord_public_key must be the application's public key: 64 hex digits".into(),
        ));
    }
    let mut roles = std::collections::BTreeMap::new();
    for (id, role) in c.discord_roles.clone().unwrap_or_default() {
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("discord_roles: `{id}` is not a Discord role id")))?;
        let role: crate::auth::Role = role
            .parse()
            .map_err(|e: String| ConfigError(format!("discord_roles: role id {id}: {e}")))?;
        if role == crate::auth::Role::Agent {
            return Err(ConfigError("discord_roles: Discord members cannot be agents".into()));
        }
        roles.insert(id, role);
    }
    Ok(Some(DiscordConfig {
        token: c.discord_token.clone().map(Secret),
        application_id,
        public_key: c.discord_public_key.clone(),
        guilds: c.discord_guilds.clone().unwrap_or_default(),
        channel: c.discord_channel,
        roles,
        api: c.discord_api.clone(),
        gateway: c.discord_gateway.clone(),
        watch_ms: c.discord_watch_ms.unwrap_or(5_000).max(10),
        alert_queue_depth: c.alert_queue_depth.unwrap_or(1_000).max(1),
        alert_error_rate: c.alert_error_rate.unwrap_or(20.0).clamp(0.0, 100.0),
    }))
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads the configuration for `data_dir`, reading `config_path` (or
    /// `DATA_DIR/dreamos.toml` if it exists) and the environment, then applying `flags`.
    pub fn load(
        data_dir: &Path,
        config_path: Option<&Path>,
        flags: Overrides,
    ) -> Result<Self, ConfigError> {
        let default_path = data_dir.join("dreamos.toml");
        let file = match config_path {
            Some(p) => Some(read_file(p)?),
            None if default_path.exists() => Some(read_file(&default_path)?),
            None => None,
        };
        let mut c = file.unwrap_or_default();
        apply_env(&mut c, |k| std::env::var(k).ok())?;
        if flags.listen.is_some() {
            c.listen = flags.listen;
        }
        if flags.agents.is_some() {
            c.agents = flags.agents;
        }
        if flags.store.is_some() {
            c.store = flags.store;
        }
        if !flags.workspaces.is_empty() {
            c.workspaces.get_or_insert_default().extend(flags.workspaces);
        }
        Self::resolve(data_dir, c)
    }

    pub(crate) fn resolve(data_dir: &Path, c: FileConfig) -> Result<Self, ConfigError> {
        let discord = resolve_discord(&c)?;
        let listen_text = c.listen.unwrap_or_else(|| "127.0.0.1:7700".into());
        let listen = listen_text
            .parse()
            .map_err(|_| ConfigError(format!("listen address `{listen_text}` is not HOST:PORT")))?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let store = c
            .store
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("dreamos.db").display()));
        let lease_ms = c.lease_ms.unwrap_or(30_000);
        if lease_ms < 100 {
            return Err(ConfigError("lease_ms must be at least 100".into()));
        }
        if c.tls_cert.is_some() != c.tls_key.is_some() {
            return Err(ConfigError(
                "tls_cert and tls_key go together: give both or neither".into(),
            ));
        }
        Ok(Self {
            discord,
            data_dir: data_dir.to_path_buf(),
            listen,
            agents: c.agents.unwrap_or(cores),
            store,
            store_schema: c.store_schema,
            lease_ms,
            grace_ms: c.grace_ms.unwrap_or(10_000),
            aging_ms: c.aging_ms.unwrap_or(60_000).max(1),
            fair_spacing_ms: c.fair_spacing_ms.unwrap_or(10).max(0),
            archive_after_ms: c.archive_after_ms.unwrap_or(7 * 24 * 3600 * 1000),
            max_payload_bytes: c.max_payload_bytes.unwrap_or(256 * 1024),
            sqlite_full_sync: c.sqlite_full_sync.unwrap_or(false),
            exec_programs: resolve_programs(c.exec_allow.as_deref()),
            exec_allow: c.exec_allow.unwrap_or_else(|| {
                ["echo", "true", "false", "sleep", "uname", "date", "printf"]
                    .map(String::from)
                    .to_vec()
            }),
            exec_env_allow: checked_env_allow(
                c.exec_env_allow
                    .clone()
                    .unwrap_or_else(|| ["HOME", "LANG", "TZ"].map(String::from).to_vec()),
            )?,
            exec_cwd_roots: absolute_dirs(
                "exec_cwd_roots",
                c.exec_cwd_roots.clone().unwrap_or_default(),
            )?,
            exec_max_processes: c.exec_max_processes.unwrap_or(64).max(1),
            workspace_roots: match c.workspace_roots.clone() {
                Some(roots) => absolute_dirs("workspace_roots", roots)?,
                None => default_workspace_roots(),
            },
            workspace_roots_configured: c.workspace_roots.is_some(),
            test_crash_switch: c.test_crash_switch.unwrap_or(false),
            audit_key_file: c.audit_key_file.clone(),
            exec_timeout_ms: c.exec_timeout_ms.unwrap_or(60_000),
            exec_max_output_bytes: c.exec_max_output_bytes.unwrap_or(1024 * 1024),
            workspaces: c.workspaces.unwrap_or_default(),
            exec_max_memory_bytes: c.exec_max_memory_bytes.unwrap_or(512 * 1024 * 1024),
            exec_max_cpu_ms: c.exec_max_cpu_ms.unwrap_or(60_000).max(1),
            agent_heartbeat_ms: c.agent_heartbeat_ms.unwrap_or(5_000).max(10),
            agent_missed_heartbeats: c.agent_missed_heartbeats.unwrap_or(3).max(1),
            leader_ttl_ms: c.leader_ttl_ms.unwrap_or(10_000).max(30),
            rate_limit_per_address: c.rate_limit_per_address.unwrap_or(20_000.0).max(0.0),
            rate_limit_per_token: c.rate_limit_per_token.unwrap_or(5_000.0).max(0.0),
            submit_quota_per_minute: c.submit_quota_per_minute.unwrap_or(600_000.0).max(0.0),
            request_timeout_ms: c.request_timeout_ms.unwrap_or(90_000).max(1),
            max_connections: c.max_connections.unwrap_or(10_000).max(1),
            max_connections_per_address: c.max_connections_per_address.unwrap_or(1_024).max(1),
            header_read_timeout_ms: c.header_read_timeout_ms.unwrap_or(15_000).max(1),
            feed_retention_ms: c.feed_retention_ms.unwrap_or(3_600_000).max(1),
            tls_cert: c.tls_cert,
            tls_key: c.tls_key,
            kind_limits: c.kind_limits.unwrap_or_default(),
        })
    }

    /// Allows `exec` to run these programs, resolved now in the node's own `PATH`.
    pub fn set_exec_allow(&mut self, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.exec_programs = resolve_programs(Some(&names));
        self.exec_allow = names;
    }

    /// The configuration as `dreamos config show` prints it. Store URLs lose any password.
    pub fn redacted(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["store"] = serde_json::Value::String(redact_url(&self.store));
        v
    }
}

/// Environment variables no payload may set, whatever `exec_env_allow` says: they choose which
/// program or library runs (`PATH`, the dynamic loader's and interpreters' hooks).
pub fn env_never_allowed(name: &str) -> bool {
    const NEVER: [&str; 14] = [
        "PATH",
        "IFS",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "PS4",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYOPT",
        "NODE_OPTIONS",
        "GCONV_PATH",
    ];
    let upper = name.to_ascii_uppercase();
    NEVER.contains(&upper.as_str())
        || upper.starts_with("LD_")
        || upper.starts_with("DYLD_")
        || upper.starts_with("MALLOC_")
        || upper.starts_with("GLIBC_")
}

fn checked_env_allow(names: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if let Some(bad) = names.iter().find(|n| env_never_allowed(n)) {
        return Err(ConfigError(format!(
            "exec_env_allow: `{bad}` chooses which program or library runs, so payloads may never set it"
        )));
    }
    Ok(names)
}

fn absolute_dirs(option: &str, dirs: Vec<PathBuf>) -> Result<Vec<PathBuf>, ConfigError> {
    dirs.into_iter()
        .map(|d| {
            if !d.is_absolute() {
                return Err(ConfigError(format!(
                    "{option}: `{}` is not an absolute path",
                    d.display()
                )));
            }
            Ok(d.canonicalize().unwrap_or(d))
        })
        .collect()
}

fn default_workspace_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute()) {
        roots.push(home.canonicalize().unwrap_or(home));
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd.canonicalize().unwrap_or(cwd));
    }
    roots
}

/// Resolves the allowed programs once, in the node's own `PATH`: a payload's environment can
/// never choose which file runs. A name found nowhere is left out (and runs nothing).
fn resolve_programs(allow: Option<&[String]>) -> std::collections::BTreeMap<String, PathBuf> {
    let default = ["echo", "true", "false", "sleep", "uname", "date", "printf"].map(String::from);
    let names = allow.unwrap_or(&default);
    names
        .iter()
        .filter_map(|name| {
            let found = find_program(name);
            if found.is_none() {
                tracing::warn!(program = %name, "exec_allow: not found in the node's PATH; `exec` cannot run it");
            }
            found.map(|p| (name.clone(), p))
        })
        .collect()
}

/// An executable file for `name`: itself if absolute, else the first in the node's `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = Path::new(name);
    if path.is_absolute() {
        return executable(path).then(|| path.to_path_buf());
    }
    if name.contains('/') || name.is_empty() {
        return None;
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&search)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
}

/// Applies `DREAMOS_<OPTION>` variables; lists are comma-separated.
fn apply_env(c: &mut FileConfig, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    fn parse<T: std::str::FromStr>(key: &str, v: String) -> Result<T, ConfigError> {
        v.trim().parse().map_err(|_| ConfigError(format!("{key}=`{v}` is not a valid value")))
    }
    let list =
        |v: String| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    macro_rules! env {
        ($field:ident, $key:literal, parse) => {
            if let Some(v) = get($key) {
                c.$field = Some(parse($key, v)?);
            }
        };
        ($field:ident, $key:literal, list) => {
            if let Some(v) = get($key) {
                c.$field = Some(list(v));
            }
        };
    }
    env!(listen, "DREAMOS_LISTEN", parse);
    env!(agents, "DREAMOS_AGENTS", parse);
    env!(store, "DREAMOS_STORE", parse);
    env!(store_schema, "DREAMOS_STORE_SCHEMA", parse);
    env!(lease_ms, "DREAMOS_LEASE_MS", parse);
    env!(grace_ms, "DREAMOS_GRACE_MS", parse);
    env!(aging_ms, "DREAMOS_AGING_MS", parse);
    env!(fair_spacing_ms, "DREAMOS_FAIR_SPACING_MS", parse);
    env!(archive_after_ms, "DREAMOS_ARCHIVE_AFTER_MS", parse);
    env!(max_payload_bytes, "DREAMOS_MAX_PAYLOAD_BYTES", parse);
    env!(sqlite_full_sync, "DREAMOS_SQLITE_FULL_SYNC", parse);
    env!(exec_allow, "DREAMOS_EXEC_ALLOW", list);
    env!(exec_env_allow, "DREAMOS_EXEC_ENV_ALLOW", list);
    env!(exec_max_processes, "DREAMOS_EXEC_MAX_PROCESSES", parse);
    env!(audit_key_file, "DREAMOS_AUDIT_KEY_FILE", parse);
    if let Some(v) = get("DREAMOS_EXEC_CWD_ROOTS") {
        c.exec_cwd_roots = Some(list(v).into_iter().map(PathBuf::from).collect::<Vec<_>>());
    }
    if let Some(v) = get("DREAMOS_WORKSPACE_ROOTS") {
        c.workspace_roots = Some(list(v).into_iter().map(PathBuf::from).collect::<Vec<_>>());
    }
    env!(exec_timeout_ms, "DREAMOS_EXEC_TIMEOUT_MS", parse);
    env!(exec_max_output_bytes, "DREAMOS_EXEC_MAX_OUTPUT_BYTES", parse);
    env!(exec_max_memory_bytes, "DREAMOS_EXEC_MAX_MEMORY_BYTES", parse);
    env!(exec_max_cpu_ms, "DREAMOS_EXEC_MAX_CPU_MS", parse);
    env!(agent_heartbeat_ms, "DREAMOS_AGENT_HEARTBEAT_MS", parse);
    env!(agent_missed_heartbeats, "DREAMOS_AGENT_MISSED_HEARTBEATS", parse);
    env!(leader_ttl_ms, "DREAMOS_LEADER_TTL_MS", parse);
    env!(rate_limit_per_address, "DREAMOS_RATE_LIMIT_PER_ADDRESS", parse);
    env!(rate_limit_per_token, "DREAMOS_RATE_LIMIT_PER_TOKEN", parse);
    env!(submit_quota_per_minute, "DREAMOS_SUBMIT_QUOTA_PER_MINUTE", parse);
    env!(request_timeout_ms, "DREAMOS_REQUEST_TIMEOUT_MS", parse);
    env!(max_connections, "DREAMOS_MAX_CONNECTIONS", parse);
    env!(max_connections_per_address, "DREAMOS_MAX_CONNECTIONS_PER_ADDRESS", parse);
    env!(header_read_timeout_ms, "DREAMOS_HEADER_READ_TIMEOUT_MS", parse);
    env!(feed_retention_ms, "DREAMOS_FEED_RETENTION_MS", parse);
    env!(tls_cert, "DREAMOS_TLS_CERT", parse);
    env!(tls_key, "DREAMOS_TLS_KEY", parse);
    env!(discord_token, "DREAMOS_DISCORD_TOKEN", parse);
    env!(discord_application_id, "DREAMOS_DISCORD_APPLICATION_ID", parse);
    env!(discord_public_key, "DREAMOS_DISCORD_PUBLIC_KEY", parse);
    env!(discord_channel, "DREAMOS_DISCORD_CHANNEL", parse);
    env!(discord_api, "DREAMOS_DISCORD_API", parse);
    env!(discord_gateway, "DREAMOS_DISCORD_GATEWAY", parse);
    env!(discord_watch_ms, "DREAMOS_DISCORD_WATCH_MS", parse);
    env!(alert_queue_depth, "DREAMOS_ALERT_QUEUE_DEPTH", parse);
    env!(alert_error_rate, "DREAMOS_ALERT_ERROR_RATE", parse);
    if let Some(v) = get("DREAMOS_DISCORD_GUILDS") {
        let ids: Vec<String> = list(v);
        c.discord_guilds = Some(
            ids.into_iter()
                .map(|id| parse("DREAMOS_DISCORD_GUILDS", id))
                .collect::<Result<_, _>>()?,
        );
    }
    if let Some(v) = get("DREAMOS_DISCORD_ROLES") {
        let mut roles = std::collections::BTreeMap::new();
        for pair in list(v) {
            let (id, role) = pair.split_once('=').ok_or_else(|| {
                ConfigError(format!("DREAMOS_DISCORD_ROLES: `{pair}` is not ROLE_ID=ROLE"))
            })?;
            roles.insert(id.trim().to_string(), role.trim().to_string());
        }
        c.discord_roles = Some(roles);
    }
    Ok(())
}

/// `postgres://user:secret@host/db` becomes `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // The user information ends at the authority's last `@` (a password may hold one).
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

/// Hides the values of query parameters that carry secrets (`password`, `sslpassword`, ...).
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else { return tail.to_string() };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, format!("#{f}")),
        None => (query, String::new()),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if secret_param(key) => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}{fragment}", params.join("&"))
}

fn secret_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "sslkey"].iter().any(|s| key.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dreamos.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1111\"\nagents = 3\nlease_ms = 5000\n")
            .unwrap();
        let mut file = read_file(&path).unwrap();
        apply_env(&mut file, |k| match k {
            "DREAMOS_AGENTS" => Some("5".into()),
            "DREAMOS_EXEC_ALLOW" => Some("echo, ls".into()),
            _ => None,
        })
        .unwrap();
        let c = Config::resolve(dir.path(), file).unwrap();
        assert_eq!((c.listen.port(), c.agents, c.lease_ms), (1111, 5, 5000));
        assert_eq!(c.exec_allow, vec!["echo".to_string(), "ls".to_string()]);
        // Flags win over both.
        std::fs::write(&path, "agents = 3\n").unwrap();
        let c = Config::load(
            dir.path(),
            Some(&path),
            Overrides { agents: Some(9), ..Default::default() },
        )
        .unwrap();
        assert_eq!(c.agents, 9);
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Config::load(dir.path(), Some(&path), Overrides::default()).unwrap_err();
        assert!(err.0.contains("lisen"), "{}", err.0);
        let mut file = FileConfig::default();
        let err =
            apply_env(&mut file, |k| (k == "DREAMOS_AGENTS").then(|| "many".into())).unwrap_err();
        assert!(err.0.contains("DREAMOS_AGENTS"), "{}", err.0);
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact_url("postgres://u:hunter2@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
