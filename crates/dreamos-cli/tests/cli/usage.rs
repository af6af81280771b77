//! A new user's first steps: `dreamos up`, then commands from a second process.

use serde_json::Value;

use crate::UpProcess;

#[test]
fn up_then_submit_and_wait_from_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    let node = UpProcess::start(dir.path(), 2);

    let out = node.cli(&["task", "submit", "noop", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("succeeded"), "{text}");

    let out = node.cli(&[
        "--json",
        "task",
        "submit",
        "exec",
        "--payload",
        r#"{"program":"echo","args":["hi"]}"#,
        "--wait",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let task: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (task["state"].as_str(), task["result"]["stdout"].as_str()),
        (Some("succeeded"), Some("hi\n"))
    );

    // A failing task: --wait exits 2.
    let out = node.cli(&[
        "task",
        "submit",
        "exec",
        "--payload",
        r#"{"program":"false"}"#,
        "--max-attempts",
        "1",
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(2));

    // Lists for scripts: one object per line with the promised fields.
    let out = node.cli(&["--json", "task", "list"]);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for t in &lines {
        for field in ["id", "kind", "state", "priority", "attempts"] {
            assert!(!t[field].is_null(), "{field} missing in {t}");
        }
    }

    // Errors: one clear line, non-zero exit.
    for (args, needle) in [
        (vec!["task", "show", "4242"], "not found"),
        (vec!["task", "submit", "nope"], "unknown task kind"),
        (vec!["task", "submit", "noop", "--payload", "{oops"], "--payload is not valid JSON"),
        (vec!["task", "submit", "noop", "--priority", "urgent"], "invalid priority"),
        (vec!["--token", "dros_x_y", "task", "list"], "invalid credentials"),
    ] {
        let out = node.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    node.terminate();
}

#[test]
fn a_client_without_a_node_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), "dros_a_b").unwrap();
    let out = std::process::Command::new(crate::BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--server", "http://127.0.0.1:9", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `dreamos up` running?"));
}

#[test]
fn config_show_layers_file_environment_and_hides_passwords() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dreamos.toml"),
        "agents = 3\nstore = \"postgres://u:hunter2@db/x\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["config", "show"])
        .env("DREAMOS_LEASE_MS", "4000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2"), "{text}");
    let shown: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((shown["agents"].as_u64(), shown["lease_ms"].as_i64()), (Some(3), Some(4000)));
    assert_eq!(shown["store"], "postgres://u:***@db/x");
}

/// With a node running, `config show` prints that node's configuration (what it runs with),
/// not the client's: here a lease the node got from its own environment. Only an unscoped
/// admin may read it.
#[test]
fn config_show_asks_the_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = crate::UpProcess::start_with_env(dir.path(), 0, &[("DREAMOS_LEASE_MS", "7777")]);
    let out = std::process::Command::new(crate::BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["lease_ms"], 7777, "{shown}");
    for args in [["--role", "viewer", "", ""], ["--role", "admin", "--workspace", "alpha"]] {
        let mut create = vec!["--json", "token", "create"];
        create.extend(args.iter().filter(|a| !a.is_empty()));
        let made = node.cli(&create);
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let made: Value = serde_json::from_slice(&made.stdout).unwrap();
        let token = made["token"].as_str().expect("a token");
        let out = node.cli(&["--token", token, "config", "show"]);
        assert!(!out.status.success(), "{args:?} read the configuration");
        assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"), "{args:?}");
    }
    node.terminate();
}
