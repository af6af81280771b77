//! The command line's shape: every command, argument and help text. `main.rs` dispatches;
//! the help of every command is snapshot-tested below (`tests/snapshots/help.txt`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{admin, agent, scan};

/// The heading global options are listed under, apart from a command's own.
pub const GLOBAL: &str = "Global options";

#[derive(Parser)]
#[command(
    name = "dreamos",
    version,
    about = "Dream.OS: a distributed agent system that understands code",
    after_help = "Start here:\n  dreamos up                        run a node on ./.dreamos\n  dreamos task submit noop --wait   submit a task to it and wait for the result\n  dreamos index                     index this tree (no node needed)\n  dreamos search retry backoff      search it"
)]
pub struct Cli {
    /// Where the node keeps its store, tokens and configuration.
    #[arg(
        long,
        global = true,
        env = "DREAMOS_DATA_DIR",
        hide_env_values = true,
        default_value = "./.dreamos",
        value_name = "DIR",
        help_heading = GLOBAL
    )]
    pub data_dir: PathBuf,
    /// Configuration file (default: DATA_DIR/dreamos.toml if present).
    #[arg(long, global = true, env = "DREAMOS_CONFIG", hide_env_values = true, value_name = "FILE", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// Node to talk to (default: the node running on the data dir, as its node.json says,
    /// else the configured listen address). Repeat it, or separate URLs with commas, to name
    /// several nodes of a cluster: requests go to the first that can be reached.
    #[arg(
        long,
        global = true,
        env = "DREAMOS_URL",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "URL",
        help_heading = GLOBAL
    )]
    pub server: Vec<String>,
    /// A PEM certificate (a CA or the node's own) to trust for https:// nodes, besides the
    /// usual roots.
    #[arg(long, global = true, env = "DREAMOS_CA_CERT", hide_env_values = true, value_name = "FILE", help_heading = GLOBAL)]
    pub ca_cert: Option<PathBuf>,
    /// API token (default: DATA_DIR/admin.token).
    #[arg(long, global = true, env = "DREAMOS_TOKEN", hide_env_values = true, help_heading = GLOBAL)]
    pub token: Option<String>,
    /// Machine-readable output: one JSON object, or one per line for lists.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Colour in logs and output: auto (only on a terminal, and not when NO_COLOR is set),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto, value_name = "WHEN", help_heading = GLOBAL)]
    pub color: Color,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a node: the store, the HTTP API and the local agents.
    Up(UpArgs),
    /// Submit, list, inspect, cancel and retry tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// The task kinds a node accepts: what each does, who may submit it, its payload.
    Kinds,
    /// The node's status: tasks by state, queue depth, uptime.
    Status,
    /// Configuration: a starter file, and the effective values.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Code workspaces registered with the node: add, list, remove, index.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Index a source tree (it becomes a workspace of the data dir); no node needed.
    Index(scan::IndexArgs),
    /// Search the indexed workspaces: words, "phrases", /regexes/, sym:, lang:, path:, kind:.
    #[command(
        after_help = "Examples:\n  dreamos search retry backoff\n  dreamos search 'sym:Runtime' lang:rust\n  dreamos search '/fn \\w+_async/' -path:tests"
    )]
    Search(scan::SearchArgs),
    /// List definitions from the index.
    Symbols(scan::SymbolsArgs),
    /// Structure metrics: lines, complexity per language, file and function; hotspots.
    Metrics(scan::MetricsArgs),
    /// The import graph: export, cycles, and what depends on a file.
    Graph(scan::GraphArgs),
    /// Agents: create, list, show, drain, resume, stop, restart, message, broadcast, and
    /// `agent run` to run a remote agent against a node.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// API tokens: create (with a role, an expiry, workspace scopes), list, revoke (admin).
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// The hash-chained audit log: tail, search, verify (admin).
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// The Discord bot: `discord register` registers its slash commands.
    #[command(subcommand)]
    Discord(DiscordCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Install:\n  bash: dreamos completions bash > ~/.local/share/bash-completion/completions/dreamos\n  zsh:  dreamos completions zsh > \"${fpath[1]}/_dreamos\"\n  fish: dreamos completions fish > ~/.config/fish/completions/dreamos.fish\n  PowerShell: dreamos completions powershell >> $PROFILE"
    )]
    Completions {
        /// The shell: bash, zsh, fish, powershell or elvish.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into a directory.
    #[command(after_help = "Read it:  dreamos man | man -l -")]
    Man {
        /// Write dreamos.1, dreamos-task.1, dreamos-task-submit.1 ... here instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum DiscordCommand {
    /// Register the slash commands (a bulk overwrite): in these guilds (instant), or in the
    /// configured `discord_guilds`, or globally when there are none.
    Register {
        /// A guild id (repeatable).
        #[arg(long = "guild", value_name = "ID")]
        guilds: Vec<u64>,
    },
}

#[derive(Args)]
pub struct UpArgs {
    /// Address of the HTTP API.
    #[arg(long, env = "DREAMOS_LISTEN", hide_env_values = true, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Number of built-in local agents (default: number of cores).
    #[arg(long, env = "DREAMOS_AGENTS", hide_env_values = true, value_name = "N")]
    pub agents: Option<usize>,
    /// Store URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "DREAMOS_STORE", hide_env_values = true, value_name = "URL")]
    pub store: Option<String>,
    /// A source tree to register as a code workspace and index (repeatable).
    #[arg(long = "workspace", value_name = "PATH")]
    pub workspaces: Vec<PathBuf>,
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Submit a task.
    #[command(
        after_help = "Examples:\n  dreamos task submit noop --wait\n  dreamos task submit exec --payload '{\"program\":\"echo\",\"args\":[\"hi\"]}' --priority high\n  dreamos task submit index --payload '{\"workspace\":\"core\"}' --run-at 5m"
    )]
    Submit(SubmitArgs),
    /// List tasks, newest first, a page at a time.
    List(ListArgs),
    /// Show a task with its history.
    Show {
        /// The task's id.
        id: String,
    },
    /// Cancel a task (a running one stops at its holder's next heartbeat).
    Cancel {
        /// The task's id.
        id: String,
    },
    /// Retry a failed or cancelled task with a fresh attempt budget.
    Retry {
        /// The task's id.
        id: String,
    },
}

#[derive(Args)]
pub struct ListArgs {
    /// Only tasks in this state (exact): pending, queued, running, succeeded, failed or
    /// cancelled.
    #[arg(long)]
    pub state: Option<String>,
    /// Only tasks of this kind (exact), e.g. exec.
    #[arg(long)]
    pub kind: Option<String>,
    /// List the archive instead of live tasks.
    #[arg(long)]
    pub archived: bool,
    /// Tasks per page (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// Only tasks older than this id: the next page starts where the last one ended (its
    /// last line says the id to pass).
    #[arg(long, value_name = "ID")]
    pub before: Option<String>,
}

#[derive(Args)]
pub struct SubmitArgs {
    /// The task kind, e.g. noop, exec, search, index (`dreamos kinds` lists them).
    pub kind: String,
    /// Payload as JSON (default `{}`); `dreamos kinds` shows each kind's schema.
    #[arg(long, value_name = "JSON")]
    pub payload: Option<String>,
    /// critical, high, normal or low.
    #[arg(long)]
    pub priority: Option<String>,
    /// Capability the agent needs besides the kind (repeatable).
    #[arg(long = "capability", value_name = "NAME")]
    pub capabilities: Vec<String>,
    /// Run only after this task succeeded (repeatable).
    #[arg(long = "after", value_name = "ID")]
    pub after: Vec<String>,
    /// Submitting again with the same key returns the first task instead of a new one
    /// (per submitter).
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// When to run: RFC 3339 (2026-01-01T10:00:00Z) or a delay (30s, 5m).
    #[arg(long, value_name = "WHEN")]
    pub run_at: Option<String>,
    /// Attempts before the task fails for good (default 3).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Time limit of one attempt (e.g. 30s).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Wait for the task to finish and show its result (exit status 2 if it did not
    /// succeed).
    #[arg(long)]
    pub wait: bool,
}

#[derive(Subcommand)]
pub enum WorkspaceCommand {
    /// Register a source tree of the node's machine and index it (admin).
    Add {
        /// The workspace's name.
        name: String,
        /// The tree's root directory.
        path: PathBuf,
    },
    /// List the workspaces.
    List,
    /// Forget a workspace and delete its index (its files are kept).
    Remove {
        /// The workspace's name.
        name: String,
    },
    /// Index a workspace again (an `index` task).
    Index {
        /// The workspace's name.
        name: String,
        /// Wait for the index to be up to date, showing progress.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (without secrets): the running node's, else what a
    /// node on this data dir would start with.
    Show {
        /// As a dreamos.toml file (every option set), rather than JSON.
        #[arg(long)]
        toml: bool,
    },
    /// Write a commented starter dreamos.toml: every option, with its default.
    Init {
        /// Where to write it (default: the --config file if given, else
        /// DATA_DIR/dreamos.toml); `-` prints it.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every command, depth first, with its full name (`dreamos task submit`).
    fn every_command() -> Vec<(String, clap::Command)> {
        fn walk(prefix: &str, command: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
            let name = format!("{prefix}{}", command.get_name());
            out.push((name.clone(), command.clone()));
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(&format!("{name} "), sub, out);
            }
        }
        let mut root = Cli::command();
        root.build();
        let mut out = Vec::new();
        walk("", &root, &mut out);
        out
    }

    #[test]
    fn every_argument_of_every_command_has_help() {
        let mut missing = Vec::new();
        for (name, command) in every_command() {
            if command.get_about().is_none() {
                missing.push(format!("{name}: the command itself"));
            }
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("{name}: {}", arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "arguments without help text:\n{}", missing.join("\n"));
    }

    /// The help of every command, as a person reads it at 100 columns. To accept a change:
    /// `UPDATE_EXPECT=1 cargo test -p dreamos-cli --bin dreamos help`.
    #[test]
    fn the_help_of_every_command() {
        let mut all = String::new();
        for (name, command) in every_command() {
            let mut command = command.term_width(100);
            all.push_str(&format!("==== {name} --help\n{}\n", command.render_help()));
        }
        expect_test::expect_file!["../tests/snapshots/help.txt"].assert_eq(&all);
    }

    #[test]
    fn global_options_are_listed_apart_from_a_commands_own() {
        let (_, submit) =
            every_command().into_iter().find(|(n, _)| n == "dreamos task submit").unwrap();
        let help = submit.term_width(100).render_help().to_string();
        let own = help.find("--payload").expect("its own options");
        let global = help.find("Global options:").expect("a heading for the global options");
        assert!(own < global, "{help}");
        assert!(help[global..].contains("--data-dir") && !help[..global].contains("--data-dir"));
    }
}
