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
        ConfigCommand::Init { output, force } => {
            let text = dreamos_node::starter::STARTER;
            let path = output.clone().unwrap_or_else(|| cli.data_dir.join("dreamos.toml"));
            if path == Path::new("-") {
                print!("{text}");
                return Ok(0);
            }
            if path.exists() && !force {
                bail!(
                    "{} exists: pass --force to replace it, or --output FILE to write elsewhere",
                    path.display()
                );
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let used = if output.is_none() {
                "a node on this data dir reads it at start".to_string()
            } else {
                format!("use it with: dreamos up --config {}", path.display())
            };
            println!(
                "wrote {}: every option, commented out, with its default; {used}",
                path.display()
            );
            Ok(0)
        }
    }
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
