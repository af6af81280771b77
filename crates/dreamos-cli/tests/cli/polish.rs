//! What a person reads and types: tables, empty results, token states, paging, completions
//! and the starter configuration.

use std::process::Command;
use std::time::Duration;

use crate::UpProcess;
use crate::agents::{ok, wait_until};

/// Where each of `cells` starts in `line`, searching left to right.
fn starts(line: &str, cells: &[&str]) -> Vec<usize> {
    let mut at = 0;
    cells
        .iter()
        .map(|c| {
            at += line[at..].find(c).unwrap_or_else(|| panic!("`{c}` not in `{line}`"));
            let start = at;
            at += c.len();
            start
        })
        .collect()
}

#[test]
fn tables_empty_results_paging_and_token_states_read_well() {
    let dir = tempfile::tempdir().unwrap();
    let node = UpProcess::start(dir.path(), 0);

    // Empty results say so, rather than print nothing.
    assert_eq!(ok(node.cli(&["agent", "inbox"])).trim(), "no messages");
    let text = ok(node.cli(&["audit", "search", "--actor", "nobody-at-all"]));
    assert_eq!(text.trim(), "no audit entries match");

    // A long name widens its column; every row stays under its header.
    let long = "build-farm-agent-with-a-really-long-descriptive-name-eu-west";
    ok(node.cli(&["agent", "create", long, "--capability", "noop"]));
    ok(node.cli(&["agent", "create", "b", "--capability", "exec"]));
    let text = ok(node.cli(&["agent", "list"]));
    let lines: Vec<&str> = text.lines().collect();
    let header = starts(lines[0], &["ID", "NAME", "STATE", "LOAD", "SEEN"]);
    let row = lines.iter().find(|l| l.contains(long)).unwrap();
    let id = row.split_whitespace().next().unwrap();
    assert_eq!(starts(row, &[id, long, "starting"]), header[..3], "{text}");
    let short = lines.iter().find(|l| l.contains(" b ")).unwrap();
    let id = short.split_whitespace().next().unwrap();
    assert_eq!(starts(short, &[id, "b", "starting"]), header[..3], "{text}");

    // `--actor` matches part of an actor: the admin's own entries, by `admin`.
    let text = ok(node.cli(&["audit", "search", "--actor", "admin"]));
    assert!(text.starts_with("ID"), "a header row: {text}");
    assert!(text.lines().skip(1).count() >= 2 && text.contains("admin:"), "{text}");
    let tail = ok(node.cli(&["audit", "tail", "-n", "1"]));
    assert_eq!(tail.lines().count(), 2, "a header and one entry: {tail}");

    // An expired token shows as expired, and its holder is told so.
    let made = ok(node.cli(&["--json", "token", "create", "--role", "viewer", "--expires", "1ms"]));
    let made: serde_json::Value = serde_json::from_str(&made).unwrap();
    let token = made["token"].as_str().unwrap().to_string();
    let mut said = String::new();
    assert!(wait_until(Duration::from_secs(10), || {
        let out = node.cli(&["--token", &token, "status"]);
        said = String::from_utf8_lossy(&out.stderr).into_owned();
        !out.status.success()
    }));
    assert!(said.contains("expired") && said.lines().count() == 1, "{said}");
    let list = ok(node.cli(&["token", "list"]));
    let line = list.lines().find(|l| l.contains(made["id"].as_str().unwrap())).unwrap();
    assert!(line.contains("expired"), "{list}");
    assert!(list.lines().next().unwrap().contains("STATE"), "{list}");

    // Paging: a page, then the next page's command, pasted into a shell as printed, and a
    // delayed task's run-at.
    for run_at in ["1h", "0s", "0s"] {
        ok(node.cli(&["task", "submit", "noop", "--run-at", run_at]));
    }
    let page = ok(node.cli(&["task", "list", "--limit", "2", "--kind", "noop"]));
    assert_eq!(page.lines().filter(|l| l.contains(" noop ")).count(), 2, "{page}");
    let next = page.lines().last().unwrap();
    let Some(command) = next.strip_prefix("more: dreamos ") else { panic!("{page}") };
    assert!(command.contains("--kind=noop") && command.ends_with("--limit=2"), "{page}");
    let pasted = format!("'{}' {command}", crate::BIN);
    let rest = ok(Command::new("sh").arg("-c").arg(pasted).output().unwrap());
    let rows: Vec<&str> = rest.lines().filter(|l| l.contains(" noop ")).collect();
    assert_eq!(rows.len(), 1, "{rest}");
    assert!(rows[0].contains("in 59m") || rows[0].contains("in 1h"), "the delayed task: {rest}");
    assert!(!rest.contains("more:"), "the last page: {rest}");

    // The kinds, with who may submit them.
    let kinds = ok(node.cli(&["kinds"]));
    let mut lines = kinds.lines().skip_while(|l| !l.starts_with("exec "));
    let exec = lines.next().expect("exec is listed");
    assert!(exec.contains("admin") && exec.contains("runs a program"), "{kinds}");
    let payload = lines.next().unwrap().trim();
    assert!(payload.starts_with("payload: program, "), "required fields first: {kinds}");
    node.terminate();
}

#[test]
fn config_init_writes_a_file_a_node_starts_with() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("starter.toml");
    let dreamos = || {
        let mut c = Command::new(crate::BIN);
        c.arg("--data-dir").arg(dir.path().join("data"));
        c
    };
    let out = dreamos().args(["config", "init", "--output"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# listen = \"127.0.0.1:7700\""), "{text}");
    // It does not overwrite a file by accident.
    let again = dreamos().args(["config", "init", "--output"]).arg(&file).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "it may come to hold a store password");
    // A symlink where the file goes is replaced with --force, never written through, even
    // when it dangles.
    let victim = dir.path().join("victim");
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let refused = dreamos().args(["config", "init", "--output"]).arg(&link).output().unwrap();
    assert!(!refused.status.success());
    let forced = dreamos().args(["config", "init", "--force", "-o"]).arg(&link).output().unwrap();
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert!(!victim.exists(), "written through the link");
    assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

    // As written, `up --config` accepts it.
    let config = file.to_str().unwrap();
    let env = [("DREAMOS_CONFIG", config), ("DREAMOS_LEASE_MS", "4321")];
    let node = UpProcess::start_with_env(&dir.path().join("data"), 0, &env);
    assert!(ok(node.cli(&["status"])).contains("tasks"));
    // And `config show --toml` writes the running node's configuration as a file that a
    // node (here on another data dir) reads as it is.
    let shown = ok(node.cli(&["config", "show", "--toml"]));
    assert!(shown.contains("\nlease_ms = 4321\n"), "{shown}");
    node.terminate();
    std::fs::write(&file, &shown).unwrap();
    let out = Command::new(crate::BIN)
        .arg("--data-dir")
        .arg(dir.path().join("other"))
        .args(["--config", config, "config", "show"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{shown}\n{}", String::from_utf8_lossy(&out.stderr));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["lease_ms"], 4321, "the file was read");
}

/// The completion script of every shell is generated, and each parses in its shell where
/// that shell is installed (bash always: CI installs zsh and fish too).
#[test]
fn completions_for_every_shell_parse_and_bash_completes_commands() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = Command::new(crate::BIN).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = dir.path().join(format!("dreamos.{shell}"));
        std::fs::write(&script, &out.stdout).unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("dreamos"), "{shell}");
        let check: &[&str] = match shell {
            "bash" => &["bash", "-n"],
            "zsh" => &["zsh", "-n"],
            "fish" => &["fish", "--no-execute"],
            // No package of this machine's distribution has a parser for these two.
            _ => {
                eprintln!("skipped: no {shell} here to parse its completions");
                continue;
            }
        };
        match Command::new(check[0]).args(&check[1..]).arg(&script).output() {
            Ok(out) => assert!(
                out.status.success(),
                "{shell} cannot parse its completions: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(_) if check[0] == "bash" => panic!("bash is needed"),
            Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("{} is not installed (.ci/run installs it)", check[0])
            }
            Err(_) => eprintln!("skipped: {} is not installed to parse its completions", check[0]),
        }
    }
    // Bash completes a command's name from its start.
    let script = dir.path().join("dreamos.bash");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(dreamos ta); COMP_CWORD=1; COMP_LINE='dreamos ta'; \
             COMP_POINT=10; _dreamos dreamos ta dreamos; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    let offered = String::from_utf8_lossy(&out.stdout);
    assert!(offered.split_whitespace().any(|w| w == "task"), "{offered:?}");
}

#[test]
fn the_manual_page_names_every_command() {
    let out = Command::new(crate::BIN).arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{}", &page[..80.min(page.len())]);
    for command in ["up", "task", "kinds", "search", "completions", "config", "man"] {
        let entry = format!("dreamos\\-{command}(1)");
        assert!(page.contains(&entry), "{entry} missing from the page");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(crate::BIN).args(["man", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for page in ["dreamos.1", "dreamos-task-submit.1", "dreamos-config-init.1"] {
        assert!(dir.path().join(page).exists(), "{page} was not written");
    }
}
