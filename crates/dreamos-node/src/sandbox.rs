//! Where an `exec` program runs and how all of it is stopped: its own process group (so a
//! terminal's Ctrl-C to the node never reaches it, and a kill reaches every process it
//! started), a pids cgroup that caps how many processes it may have at once (where the node
//! may create one), and a fresh working directory unless the payload names one under
//! `exec_cwd_roots`.
//!
//! [`Run`] owns all three; dropping it (at the end of the run, on timeout, cancel, hard stop
//! or a lost lease) kills every process of the run and removes what it made.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::{Child, Command};

use crate::config::Config;

/// The resources of one `exec` run.
pub struct Run {
    /// The process group (the first process's pid), once started.
    pgid: Option<i32>,
    /// Whether the program waits for the go-ahead of [`Run::start`].
    gated: bool,
    cgroup: Option<PathBuf>,
    /// A directory made for this run, removed with it.
    scratch: Option<PathBuf>,
    pub cwd: PathBuf,
}

/// How many times a run's process is started when a signal ends it before its program runs.
const START_TRIES: usize = 5;

static RUNS: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed))
}

impl Run {
    /// Prepares a run: the working directory (`requested`, if it lies under
    /// `exec_cwd_roots`, else a fresh one under the data dir) and, where possible, a pids
    /// cgroup limited to `exec_max_processes`.
    pub fn prepare(config: &Config, requested: Option<&str>) -> Result<Self, String> {
        let (cwd, scratch) = match requested {
            Some(dir) => (confined_cwd(&config.exec_cwd_roots, dir)?, None),
            None => {
                let dir = config.data_dir.join("exec").join(unique("run"));
                make_private_dir(&dir)
                    .map_err(|e| format!("cannot make a working directory: {e}"))?;
                (dir.clone(), Some(dir))
            }
        };
        let cgroup = pids_cgroup(config.exec_max_processes);
        Ok(Self { pgid: None, gated: false, cgroup, scratch, cwd })
    }

    /// The command that runs `argv` in this run, in its own process group. Where `sh` is
    /// found, a fixed shell line first waits for [`Run::start`]'s go-ahead and then becomes
    /// the program, so the program runs only once the process is out of the node's group
    /// and inside the run's cgroup (nothing it starts can escape the process cap).
    pub fn command(&mut self, argv: &[OsString]) -> Command {
        let sh = crate::config::find_program("sh");
        self.gated = sh.is_some();
        let mut command = match sh {
            Some(sh) => {
                let mut c = Command::new(sh);
                c.arg("-c").arg("read -r _ && exec \"$@\" </dev/null").arg("dreamos-exec");
                c.args(argv).stdin(Stdio::piped());
                c
            }
            None => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]).stdin(Stdio::null());
                c
            }
        };
        // Its own process group: a terminal's Ctrl-C to the node does not reach it, and the
        // whole group is killed when the run ends.
        command.process_group(0);
        command
    }

    /// Starts `command` (made by [`Run::command`]): moves it into the run's cgroup, then
    /// lets it run the program.
    ///
    /// A signal sent to the node's whole process group (a terminal's Ctrl-C) in the instant
    /// between the start of the process and its move to a group of its own is still
    /// delivered to it, and ends it before it runs anything. The program has not run then,
    /// so it is simply started again.
    pub async fn start(&mut self, command: &mut Command) -> Result<Child, String> {
        for _ in 0..START_TRIES {
            let mut child = command.spawn().map_err(|e| e.to_string())?;
            self.pgid = child.id().and_then(|p| i32::try_from(p).ok());
            if !self.gated {
                return Ok(child);
            }
            match self.release(&mut child).await {
                Ok(()) => return Ok(child),
                Err(e) => {
                    let gone = tokio::time::timeout(Duration::from_millis(500), child.wait())
                        .await
                        .is_ok();
                    if !gone {
                        self.kill_all();
                        return Err(format!("cannot confine it: {e}"));
                    }
                    // It started nothing, and its pid (the group's id) is free again.
                    self.pgid = None;
                    tracing::debug!(
                        "an exec run ended before its program started; starting it again"
                    );
                }
            }
        }
        Err(format!("it was ended by a signal before it could run, {START_TRIES} times"))
    }

    /// Moves the gated process into the run's cgroup and lets it run the program.
    async fn release(&self, child: &mut Child) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        let pid = child.id().ok_or("the process is gone")?;
        if let Some(cgroup) = &self.cgroup {
            std::fs::write(cgroup.join("cgroup.procs"), pid.to_string())
                .map_err(|e| e.to_string())?;
        }
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin.write_all(b"go\n").await.map_err(|e| e.to_string())
    }

    /// Kills every process of the run: its process group, and everything in its cgroup
    /// (which also holds those that left the group).
    pub fn kill_all(&self) {
        if let Some(pgid) = self.pgid.and_then(Pid::from_raw) {
            let _ = kill_process_group(pgid, Signal::KILL);
        }
        if let Some(cgroup) = &self.cgroup {
            for _ in 0..3 {
                let Ok(procs) = std::fs::read_to_string(cgroup.join("cgroup.procs")) else {
                    break;
                };
                let pids: Vec<i32> = procs.lines().filter_map(|l| l.trim().parse().ok()).collect();
                if pids.is_empty() {
                    break;
                }
                for pid in pids.into_iter().filter_map(Pid::from_raw) {
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                }
            }
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.kill_all();
        if let Some(cgroup) = self.cgroup.take() {
            // A cgroup can be removed once its killed processes are reaped, which may take a
            // moment: a short-lived thread keeps trying, so none is left behind.
            if std::fs::remove_dir(&cgroup).is_err() {
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        if std::fs::remove_dir(&cgroup).is_ok() || !cgroup.exists() {
                            return;
                        }
                    }
                    tracing::warn!(cgroup = %cgroup.display(), "an exec run's cgroup could not be removed");
                });
            }
        }
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// `dir`, resolved, if it lies under one of `roots` (after resolving `..` and symlinks).
fn confined_cwd(roots: &[PathBuf], dir: &str) -> Result<PathBuf, String> {
    let refused = || {
        if roots.is_empty() {
            format!(
                "cwd `{dir}` is not allowed: this node gives every run a fresh directory (set exec_cwd_roots to allow others)"
            )
        } else {
            format!("cwd `{dir}` is not under exec_cwd_roots")
        }
    };
    let real = Path::new(dir).canonicalize().map_err(|_| refused())?;
    if real.is_dir() && roots.iter().any(|r| real.starts_with(r)) {
        Ok(real)
    } else {
        Err(refused())
    }
}

/// Whether this node can cap the processes of `exec` runs (it may create pids cgroups).
/// Also removes the cgroups of runs whose node process is gone (a node that exited while a
/// killed run's processes were still being reaped).
pub fn process_cap_available() -> bool {
    if let Some(base) = pids_base()
        && let Ok(entries) = std::fs::read_dir(&base)
    {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name.strip_prefix("dreamos-exec-").and_then(|r| r.split('-').next());
            if let Some(pid) = owner
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
    match pids_cgroup(1) {
        Some(dir) => std::fs::remove_dir(dir).is_ok(),
        None => false,
    }
}

/// Makes a pids cgroup for one run, limited to `max` processes; `None` where the node cannot
/// (no pids controller, or no right to create a cgroup).
fn pids_cgroup(max: u64) -> Option<PathBuf> {
    let base = pids_base()?;
    let dir = base.join(unique("dreamos-exec"));
    std::fs::create_dir(&dir).ok()?;
    if std::fs::write(dir.join("pids.max"), max.to_string()).is_err() {
        let _ = std::fs::remove_dir(&dir);
        return None;
    }
    Some(dir)
}

/// The node's own cgroup in the pids hierarchy (v1: `/sys/fs/cgroup/pids/...`; v2: the
/// unified hierarchy, where the pids controller is enabled for children).
fn pids_base() -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "pids") {
            let dir = Path::new("/sys/fs/cgroup/pids").join(rel);
            if dir.join("cgroup.procs").exists() {
                return Some(dir);
            }
        }
        if controllers.is_empty() {
            let dir = Path::new("/sys/fs/cgroup").join(rel);
            let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
                .is_ok_and(|c| c.split_whitespace().any(|x| x == "pids"));
            if enabled {
                return Some(dir);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cwd_must_lie_under_a_root_after_resolving() {
        let root = std::env::temp_dir().canonicalize().unwrap().join(unique("cwd-root"));
        std::fs::create_dir_all(root.join("inside")).unwrap();
        let roots = vec![root.clone()];
        assert!(confined_cwd(&roots, root.join("inside").to_str().unwrap()).is_ok());
        let escape = root.join("inside/../..");
        assert!(confined_cwd(&roots, escape.to_str().unwrap()).is_err());
        assert!(confined_cwd(&roots, "/etc").is_err());
        assert!(confined_cwd(&[], root.to_str().unwrap()).is_err(), "no roots: no cwd at all");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
