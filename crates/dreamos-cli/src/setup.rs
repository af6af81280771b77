//! Setting up: `dreamos config show|init`, `dreamos completions SHELL` and `dreamos man`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use dreamos_node::{Config, Overrides};

use crate::cli::{Cli, ConfigCommand};

pub async fn config(cli: &Cli, command: &ConfigCommand) -> Result<i32> {
    match command {
        ConfigCommand::Show { toml } => show(cli, *toml).await,
        ConfigCommand::Init { output, force } => init(cli, output.as_deref(), *force),
    }
}

/// `dreamos config init`: the starter file, where the node will read it (the `--config`
/// file, else `DATA_DIR/dreamos.toml`) unless `--output` says otherwise. It may come to hold
/// a store password, so it is made readable by its owner only; an existing file (or a
/// symlink, dangling or not) is replaced only with `--force`, and then by a rename, never
/// by writing through a link.
fn init(cli: &Cli, output: Option<&Path>, force: bool) -> Result<i32> {
    use std::os::unix::fs::OpenOptionsExt;
    let text = dreamos_node::starter::STARTER;
    let path = match (output, &cli.config) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(config)) => config.clone(),
        (None, None) => cli.data_dir.join("dreamos.toml"),
    };
    if path == Path::new("-") {
        print!("{text}");
        return Ok(0);
    }
    let exists = std::fs::symlink_metadata(&path).is_ok();
    if exists && !force {
        bail!(
            "{} exists: pass --force to replace it, or --output FILE to write elsewhere",
            path.display()
        );
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // Written beside its place under a fresh name, then renamed over it: a reader never sees
    // half a file, and a symlink at the path is replaced, not followed.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
    let placed = written.and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    let used = match (output, &cli.config) {
        (None, Some(_)) => "the node reads it with this --config".to_string(),
        (None, None) => "a node on this data dir reads it at start".to_string(),
        (Some(_), _) => format!("use it with: dreamos up --config {}", path.display()),
    };
    println!("wrote {}: every option, commented out, with its default; {used}", path.display());
    Ok(0)
}

/// A running node's own configuration (what it actually runs with), else what a node on this
/// data dir would start with.
async fn show(cli: &Cli, as_toml: bool) -> Result<i32> {
    let running = !cli.server.is_empty() || dreamos_node::running_node_url(&cli.data_dir).is_some();
    let shown = if running {
        let client = crate::client(cli)?;
        let shown = client.get("/api/v1/config").await?;
        eprintln!("the configuration of the node at {}", client.base());
        shown
    } else {
        let config = Config::load(&cli.data_dir, cli.config.as_deref(), Overrides::default())?;
        eprintln!("no node is running on this data dir: the configuration one would start with");
        config.redacted()
    };
    if as_toml {
        print!("{}", dreamos_node::starter::as_toml(&shown)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&shown)?);
    }
    Ok(0)
}

pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "dreamos", &mut std::io::stdout().lock());
    Ok(0)
}

/// `dreamos man`: the top page on stdout, or every command's page into `dir`.
pub fn man(dir: Option<&Path>) -> Result<i32> {
    let command = Cli::command();
    match dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the pages into {}", dir.display()))?;
            println!(
                "wrote the manual pages into {} (read one: man -l {}/dreamos.1)",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(0)
}
