//! Starting and stopping a node: store, recovery, admin token, maintenance, local agents and
//! the HTTP API, in that order; stopping runs it backwards without losing accepted work.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dreamos_core::{SystemClock, error_class};
use dreamos_queue::{KindRegistry, Queue, QueueConfig, SubmitRequest, spawn_maintenance};
use dreamos_store::{Store, StoreConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agents::{AgentContext, local_prefix, spawn_local_agents};
use crate::api::{AppState, router};
use crate::auth::{self, Role};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::orchestrator::Orchestrator;
use crate::workspaces::Workspaces;

/// A running node.
pub struct Node {
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    pub node_id: String,
    /// Where the admin token is kept (mode 0600).
    pub admin_token_path: PathBuf,
    /// True when this start created the admin token.
    pub admin_token_created: bool,
    pub store: Arc<dyn Store>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
    /// The data dir's lock, held while the node runs.
    _lock: std::fs::File,
}

impl Node {
    /// Starts everything and returns once the API is listening.
    pub async fn start(config: Config) -> Result<Node> {
        // Everything the node creates (the store, its WAL, indexes, tokens) is its user's alone:
        // files 0600 and directories 0700; the data dir is made (or made again) 0700 and marked
        // so that the code scanner never indexes it.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        dreamos_scan::walk::mark_data_dir(&config.data_dir)
            .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
        // Before anything else touches the data dir: one node per data dir.
        let lock = lock_data_dir(&config.data_dir)?;
        if config.agents > 0
            && !config.exec_programs.is_empty()
            && !crate::sandbox::process_cap_available()
        {
            tracing::warn!(
                "exec_max_processes cannot be enforced here (no pids cgroup can be created): exec programs may start any number of processes"
            );
        }
        let node_id = node_id(&config.data_dir)?;
        let key_path =
            config.audit_key_file.clone().unwrap_or_else(|| config.data_dir.join("audit.key"));
        let (audit_key, new_key) = crate::audit::load_or_make_key(&key_path)?;
        let store_config = StoreConfig {
            audit_key: Some(audit_key.clone()),
            aging_ms: config.aging_ms,
            sqlite_full_sync: config.sqlite_full_sync,
            pg_schema: config.store_schema.clone(),
            fair_spacing_ms: config.fair_spacing_ms,
            ..StoreConfig::default()
        };
        let store = dreamos_store::open(&config.store, store_config, Arc::new(SystemClock))
            .await
            .with_context(|| {
            format!("cannot open the store {}", crate::config::redact_url(&config.store))
        })?;
        if let Some(secret) = new_key {
            crate::audit::record_legacy_head(&key_path, &audit_key, &secret, &store).await?;
        }

        // The previous run of this node may have died holding tasks: they go back through the
        // retry policy now rather than when their leases lapse.
        let recovered =
            store.fail_holders(&local_prefix(&node_id), error_class::AGENT_LOST).await?;
        if !recovered.is_empty() {
            tracing::warn!(
                count = recovered.len(),
                "retrying tasks held by this node's previous run"
            );
        }
        let (admin_token_path, admin_token_created) =
            ensure_admin_token(&config.data_dir, &store).await?;

        let queue_config = QueueConfig {
            max_payload_bytes: config.max_payload_bytes,
            archive_after_ms: config.archive_after_ms,
            ..QueueConfig::default()
        };
        let mut kinds = KindRegistry::builtin();
        crate::code::register(&mut kinds);
        let queue = Queue::new(store.clone(), kinds, queue_config);
        // Code workspaces: those indexed before are watched again; those named with
        // `--workspace` are registered and indexed (by an `index` task, with progress).
        let workspaces = Arc::new(Workspaces::new(&config.data_dir));
        {
            let workspaces = workspaces.clone();
            tokio::task::spawn_blocking(move || workspaces.watch_all());
        }
        for path in &config.workspaces {
            // Named on the node's own command line or file by its owner: allowed where it is
            // (the data dir and its insides still never are).
            let own = [path.canonicalize().unwrap_or_else(|_| path.clone())];
            let ws = workspaces
                .add(None, path, &own, true)
                .with_context(|| format!("cannot add the workspace {}", path.display()))?;
            let request = SubmitRequest::new("index", serde_json::json!({ "workspace": ws.name }));
            let task = queue.submit("admin:up", vec![request]).await?.remove(0);
            tracing::info!(workspace = %ws.name, root = %ws.root.display(), task = %task.id, "indexing workspace");
        }
        let metrics = Arc::new(Metrics::default());
        let config = Arc::new(config);
        let (stop, stop_rx) = watch::channel(false);
        let (hard_stop, hard_stop_rx) = watch::channel(false);
        let (maintenance_stop, maintenance_stop_rx) = watch::channel(false);
        let maintenance = spawn_maintenance(queue.clone(), maintenance_stop_rx.clone());
        let orchestrator = Orchestrator::new(store.clone(), config.clone(), &node_id);
        let orchestration = orchestrator.spawn(stop_rx.clone(), maintenance_stop_rx);
        let agents = spawn_local_agents(
            AgentContext {
                queue: queue.clone(),
                metrics: metrics.clone(),
                config: config.clone(),
                stop_claiming: stop_rx.clone(),
                hard_stop: hard_stop_rx,
                workspaces: workspaces.clone(),
                orchestrator: orchestrator.clone(),
            },
            &node_id,
            config.agents,
        );
        let (http_stop, http_stop_rx) = watch::channel(false);
        let discord = match &config.discord {
            Some(d) => {
                if d.public_key.is_none() {
                    tracing::warn!(
                        "Discord: no public key configured, so no interactions endpoint; set \
                         discord_public_key (DREAMOS_DISCORD_PUBLIC_KEY)"
                    );
                }
                Some(crate::discord::Discord::start(d.clone(), &store, &node_id).await?)
            }
            None => None,
        };
        if let Some(bot) = &discord {
            bot.spawn_gateway(http_stop_rx.clone());
            bot.spawn_watch(http_stop_rx.clone());
        }
        let state = AppState {
            discord,
            queue: queue.clone(),
            metrics,
            config: config.clone(),
            node_id: node_id.clone(),
            started: Instant::now(),
            workspaces: workspaces.clone(),
            orchestrator,
            limits: Default::default(),
            tokens: Default::default(),
            audit_coalescer: Default::default(),
            closing: http_stop_rx.clone(),
            draining: stop_rx.clone(),
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let tls_on = config.tls_cert.is_some();
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
            _ => None,
        };
        let app = router(state);
        let limits = crate::serve::ServeLimits {
            max_connections: config.max_connections,
            per_address: config.max_connections_per_address,
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        };
        let http = match tls {
            Some(acceptor) => {
                let listener = crate::tls::TlsListener::new(listener, acceptor)?;
                tokio::spawn(crate::serve::serve(listener, app, limits, http_stop_rx))
            }
            None => tokio::spawn(crate::serve::serve(listener, app, limits, http_stop_rx)),
        };
        let scheme = if tls_on { "https" } else { "http" };
        let node_file = write_node_file(&config.data_dir, scheme, addr, &node_id)?;
        let grace = Duration::from_millis(config.grace_ms);
        let task_store = store.clone();
        let mut stop_wait = stop_rx;
        let task = tokio::spawn(async move {
            let _ = stop_wait.wait_for(|s| *s).await;
            tracing::info!("stopping: no new claims; running tasks have {grace:?} to finish");
            let mut agents = futures_join(agents);
            if tokio::time::timeout(grace, &mut agents).await.is_err() {
                tracing::warn!("grace period over: releasing tasks still running");
                let _ = hard_stop.send(true);
                agents.await;
            }
            let _ = http_stop.send(true);
            let _ = http.await;
            let _ = maintenance_stop.send(true);
            let _ = maintenance.await;
            futures_join(orchestration).await;
            workspaces.stop_watching();
            task_store.close().await;
            let _ = std::fs::remove_file(&node_file);
            tracing::info!("stopped");
            Ok(())
        });
        Ok(Node {
            addr,
            scheme,
            node_id,
            admin_token_path,
            admin_token_created,
            store,
            stop,
            task,
            _lock: lock,
        })
    }

    /// Stops claiming, lets running tasks finish within the grace period, releases the rest,
    /// then closes the API and the store.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task.await?
    }
}

/// Awaits all handles (a tiny join_all, to avoid a dependency for one call).
fn futures_join(
    handles: Vec<JoinHandle<()>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        for h in handles {
            let _ = h.await;
        }
    })
}

/// Writes `DATA_DIR/node.json`: where this node listens (a wildcard address as the loopback
/// one), whether it uses TLS, and its process id, so that clients on this machine find it
/// whatever `--listen` said. Removed when the node stops; a file left by a node that died
/// names a process that is gone.
fn write_node_file(
    data_dir: &Path,
    scheme: &str,
    mut addr: SocketAddr,
    node_id: &str,
) -> Result<PathBuf> {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let info = serde_json::json!({
        "url": format!("{scheme}://{addr}"),
        "tls": scheme == "https",
        "pid": std::process::id(),
        "node_id": node_id,
    });
    let path = data_dir.join(NODE_FILE);
    let tmp = data_dir.join(format!("{NODE_FILE}.tmp"));
    std::fs::write(&tmp, format!("{info:#}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The file in the data dir that says where the running node listens.
pub const NODE_FILE: &str = "node.json";

/// The URL of the node running on `data_dir`, from its `node.json`. The file is believed only
/// while a node holds the data dir's lock and if this user owns it (the CLI sends its token to
/// that URL: a `node.json` shipped in a cloned tree, or left by a node that is gone, is not).
pub fn running_node_url(data_dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let lock = std::fs::File::open(data_dir.join("lock")).ok()?;
    // Taking the lock succeeds only when no node holds it.
    let free = rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockShared).is_ok();
    if free {
        let _ = rustix::fs::flock(&lock, rustix::fs::FlockOperation::Unlock);
        return None;
    }
    let path = data_dir.join(NODE_FILE);
    let meta = std::fs::metadata(&path).ok()?;
    if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let info: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = info["pid"].as_u64()?;
    if !Path::new("/proc").join(pid.to_string()).exists() {
        return None;
    }
    info["url"].as_str().map(str::to_string)
}

/// Takes the data dir's exclusive lock (`DATA_DIR/lock`, an advisory `flock` the kernel drops
/// when the process ends, however it ends) and writes this process's id in it. A data dir
/// another process holds is refused, naming that process, before anything is changed.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File> {
    use rustix::fs::{FlockOperation, flock};
    let path = data_dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        let holder = holder.trim();
        anyhow::bail!(
            "the data dir {} is in use by another dreamos node{}; stop it first, or use another --data-dir",
            data_dir.display(),
            if holder.is_empty() { String::new() } else { format!(" (process {holder})") }
        );
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

fn node_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("node.id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let id = format!("n{:08x}", rand::random::<u32>());
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

/// Makes sure `DATA_DIR/admin.token` holds a valid admin token, creating one if needed.
async fn ensure_admin_token(data_dir: &Path, store: &Arc<dyn Store>) -> Result<(PathBuf, bool)> {
    let path = data_dir.join("admin.token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let now = store.clock().now_ms();
        if let Ok(Ok(principal)) = auth::authenticate(store.as_ref(), existing.trim(), now).await
            && principal.role == Role::Admin
        {
            return Ok((path, false));
        }
    }
    let issued = auth::issue(Role::Admin, "admin", store.clock().now_ms(), None);
    store.create_token(issued.record).await?;
    write_secret(&path, &issued.token)?;
    Ok((path, true))
}

/// Writes a secret to a file only its owner can read.
fn write_secret(path: &Path, secret: &str) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(file, "{secret}")?;
    Ok(())
}
