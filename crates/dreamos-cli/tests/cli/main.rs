//! The `dreamos` binary as a user runs it: real processes, real signals.

mod agents;
mod code;
mod crash;
mod discord;
mod polish;
mod restart;
mod signals;
mod usage;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_dreamos");

/// A `dreamos up` process on a free loopback port.
pub struct UpProcess {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
}

impl UpProcess {
    pub fn start(data_dir: &Path, agents: usize) -> Self {
        Self::start_with_env(data_dir, agents, &[])
    }

    /// Starts a node with extra `DREAMOS_*` settings in its environment.
    pub fn start_with_env(data_dir: &Path, agents: usize, env: &[(&str, &str)]) -> Self {
        Self::spawn(data_dir, agents, env, false, "127.0.0.1:0")
    }

    /// Starts a node listening on `listen` (a node restarted where its agents expect it).
    pub fn start_on(data_dir: &Path, listen: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(data_dir, 0, env, false, listen)
    }

    /// Starts a node leading a process group of its own, as a shell starts a foreground job:
    /// a terminal's Ctrl-C goes to the whole group.
    pub fn start_in_group(data_dir: &Path, agents: usize, env: &[(&str, &str)]) -> Self {
        Self::spawn(data_dir, agents, env, true, "127.0.0.1:0")
    }

    fn spawn(
        data_dir: &Path,
        agents: usize,
        env: &[(&str, &str)],
        group: bool,
        listen: &str,
    ) -> Self {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(BIN);
        if group {
            command.process_group(0);
        }
        let mut child = command
            .args(["--data-dir"])
            .arg(data_dir)
            .args(["up", "--listen", listen, "--agents", &agents.to_string()])
            .env("DREAMOS_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dreamos up");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines.next().expect("dreamos up exited before listening").unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, url, data_dir: data_dir.to_path_buf() }
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token")).unwrap().trim().to_string()
    }

    /// Runs a CLI command against this node.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--server", &self.url])
            .args(args)
            .output()
            .unwrap()
    }

    /// Waits up to 30 s for the process to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("dreamos up did not exit within 30 s");
    }

    pub fn terminate(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("dreamos up did not stop within 30 s of SIGTERM");
    }
}

impl Drop for UpProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
