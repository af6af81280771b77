//! The local code commands as a user runs them: `index`, `search`, `symbols`, `metrics` and
//! `graph` against a data dir with no node running, and `search` against a node (`--server`).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::BIN;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dreamos-scan/tests/fixtures/tree");

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn dreamos(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("DREAMOS_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A copy of the fixture tree with a vendored directory in it.
fn project() -> (tempfile::TempDir, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let tree = tempfile::tempdir().unwrap();
    copy_tree(Path::new(FIXTURE), tree.path());
    std::fs::create_dir_all(tree.path().join("vendor/lib")).unwrap();
    std::fs::write(tree.path().join("vendor/lib/helpers.py"), "def vendored_helper():\n    pass\n")
        .unwrap();
    (data, tree)
}

fn found(data: &Path, query: &str) -> Vec<Value> {
    json_lines(&ok(dreamos(data, &["--json", "search", query])))
}

#[test]
fn index_then_search_symbols_metrics_and_graph() {
    let (data, tree) = project();
    let root = tree.path().to_str().unwrap();
    let summary: Value = serde_json::from_str(&ok(dreamos(
        data.path(),
        &["--json", "index", root, "--name", "fixture"],
    )))
    .unwrap();
    assert_eq!(summary["workspace"], "fixture");
    assert!(summary["summary"]["files"].as_u64().unwrap() >= 15, "{summary}");

    let hits = json_lines(&ok(dreamos(
        data.path(),
        &["--json", "search", "--limit", "10", "parse_config"],
    )));
    assert!(!hits.is_empty() && hits.len() <= 10);
    let top = &hits[0];
    assert_eq!(top["path"], "pkg/core.py", "{top}");
    assert_eq!(top["symbol"], "parse_config");
    assert_eq!(top["kind"], "function");
    assert_eq!(top["line"], 5);
    assert!(top["end_line"].as_u64().unwrap() >= 7);
    assert!(top["score"].as_f64().unwrap() > 0.0);
    assert!(top["snippet"].as_str().unwrap().contains("def parse_config(path):"), "{top}");

    let syms = json_lines(&ok(dreamos(data.path(), &["--json", "symbols", "--name", "read_text"])));
    assert_eq!(syms.len(), 1, "{syms:?}");
    assert_eq!(syms[0]["path"], "pkg/util.py");
    assert_eq!(syms[0]["line"], 5);
    assert_eq!(syms[0]["kind"], "function");
    assert_eq!(syms[0]["qualified_name"], "read_text");

    let methods = json_lines(&ok(dreamos(
        data.path(),
        &["--json", "symbols", "--name", "post", "--kind", "method"],
    )));
    assert_eq!(methods.len(), 1, "{methods:?}");
    assert_eq!(methods[0]["path"], "crate/src/accounts.rs");
    assert_eq!(methods[0]["line"], 12);
    assert_eq!(methods[0]["qualified_name"], "Account::post");

    let metrics: Value =
        serde_json::from_str(&ok(dreamos(data.path(), &["--json", "metrics", root]))).unwrap();
    assert_eq!(metrics["files"], summary["summary"]["files"], "{metrics}");
    let langs: Vec<&str> = metrics["languages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["lang"].as_str())
        .collect();
    for lang in ["python", "rust", "go", "c", "java", "typescript", "javascript"] {
        assert!(langs.contains(&lang), "{lang} missing from {langs:?}");
    }
    assert!(metrics["functions"].as_u64().unwrap() > 10);

    let dot = ok(dreamos(data.path(), &["graph", root, "--format", "dot"]));
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("\"app.py\" -> \"pkg/core.py\";"), "{dot}");
}

#[test]
fn scan_options_are_remembered_per_workspace() {
    let (data, tree) = project();
    let root = tree.path().to_str().unwrap();
    ok(dreamos(data.path(), &["index", root]));
    assert!(
        found(data.path(), "vendored_helper").is_empty(),
        "vendored code is skipped by default"
    );

    ok(dreamos(data.path(), &["index", root, "--include-vendored"]));
    let hits = found(data.path(), "vendored_helper");
    assert_eq!(hits[0]["path"], "vendor/lib/helpers.py", "{hits:?}");

    // A plain re-index keeps the workspace's options.
    ok(dreamos(data.path(), &["index", root]));
    assert_eq!(found(data.path(), "vendored_helper").len(), 1);

    // Excluding a path drops its files from the index.
    ok(dreamos(data.path(), &["index", root, "--exclude", "vendor/**", "--exclude", "java/**"]));
    assert!(found(data.path(), "vendored_helper").is_empty());
    assert!(found(data.path(), "lang:java class").is_empty());
    assert!(!found(data.path(), "parse_config").is_empty());

    // A bad glob is refused with a clear message and changes nothing.
    let bad = dreamos(data.path(), &["index", root, "--exclude", "src/[a"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("exclude glob `src/[a`"), "{err}");
    assert!(found(data.path(), "vendored_helper").is_empty());
}

#[test]
fn bad_input_gets_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let none = dreamos(data.path(), &["search", "anything"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("dreamos index PATH"));

    let (data, tree) = project();
    ok(dreamos(data.path(), &["index", tree.path().to_str().unwrap()]));
    let limit = dreamos(data.path(), &["search", "--limit", "0", "parse_config"]);
    assert!(!limit.status.success());
    assert!(String::from_utf8_lossy(&limit.stderr).contains("--limit must be between"));
    let regex = dreamos(data.path(), &["search", "/a(b/"]);
    assert!(!regex.status.success());
    assert!(!String::from_utf8_lossy(&regex.stderr).trim().is_empty());
    let missing = dreamos(data.path(), &["index", "/no/such/dir"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/dir"));
}

/// A reader that stops early (`dreamos symbols | head -3`) ends the command quietly: no
/// "Broken pipe" error, the status a closed pipe gives.
#[test]
fn a_closed_pipe_ends_output_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let (data, tree) = project();
    // Far more output than a pipe holds, so the command meets the closed pipe.
    let many: String =
        (0..4_000).map(|i| format!("def generated_function_{i}(x):\n    return x\n\n")).collect();
    std::fs::write(tree.path().join("many.py"), many).unwrap();
    ok(dreamos(data.path(), &["index", tree.path().to_str().unwrap()]));
    for args in [vec!["symbols"], vec!["search", "generated_function", "--limit", "1000"]] {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(data.path())
            .args(&args)
            .env("DREAMOS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        // The pipe's reader is gone now.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("Broken pipe") && !stderr.contains("error"), "{args:?}: {stderr}");
        assert!(matches!(out.status.code(), Some(0 | 141)), "{args:?}: {:?}", out.status);
    }
}

/// `search --server` asks that node, with the caller's token and its scope, instead of this
/// machine's data dir; symbols, metrics and graph, which a node does not serve, say so rather
/// than answer from the local index.
#[test]
fn search_with_server_asks_the_node() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("shop");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("billing.py"), "def refund_order(order):\n    return order.total\n")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let roots = root.path().canonicalize().unwrap();
    let node = crate::UpProcess::start_with_env(
        dir.path(),
        1,
        &[("DREAMOS_WORKSPACE_ROOTS", roots.to_str().unwrap())],
    );
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    ok(node.cli(&["workspace", "add", "shop", src.to_str().unwrap()]));
    // The node's index task ends with the same one-line summary as a local `index`.
    let done = ok(node.cli(&["workspace", "index", "shop", "--wait"]));
    assert!(done.trim().starts_with("shop: "), "{done}");
    assert!(done.contains("files indexed") || done.contains("unchanged ("), "{done}");
    // Another data dir, with no index at all: only the node can answer.
    let elsewhere = tempfile::tempdir().unwrap();
    let remote = |token: &str, args: &[&str]| {
        Command::new(crate::BIN)
            .arg("--data-dir")
            .arg(elsewhere.path())
            .args(["--server", &node.url, "--token", token])
            .args(args)
            .output()
            .unwrap()
    };
    let found = ok(remote(&node.token(), &["--json", "search", "refund"]));
    let hit: Value = serde_json::from_str(found.lines().next().expect("a hit")).unwrap();
    assert_eq!(
        (hit["workspace"].as_str(), hit["path"].as_str()),
        (Some("shop"), Some("billing.py"))
    );
    // A token limited to another workspace finds nothing of this one.
    let made =
        ok(node.cli(&["--json", "token", "create", "--role", "viewer", "--workspace", "other"]));
    let scoped: Value = serde_json::from_str(&made).unwrap();
    let out =
        remote(scoped["token"].as_str().unwrap(), &["search", "refund", "--workspace", "shop"]);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    for command in ["symbols", "metrics", "graph"] {
        let out = remote(&node.token(), &[command]);
        assert!(!out.status.success(), "{command} answered from the local index");
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not serve"), "{command}");
    }
    node.terminate();
}

/// `metrics` and `graph` with no PATH use the data dir's workspace, or ask for a path: they
/// never index the current directory unasked. A second `index` of an unchanged tree says so.
#[test]
fn no_path_means_the_workspace_never_the_current_directory() {
    let (data, tree) = project();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("stray.py"), "def stray():\n    pass\n").unwrap();
    let here = |args: &[&str]| {
        Command::new(BIN)
            .current_dir(elsewhere.path())
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .output()
            .unwrap()
    };
    // No workspace yet: asked for a path; nothing was indexed.
    for command in ["metrics", "graph"] {
        let out = here(&[command]);
        assert!(!out.status.success(), "{command} indexed the current directory");
        assert!(String::from_utf8_lossy(&out.stderr).contains("give a PATH"), "{command}");
    }
    let search = dreamos(data.path(), &["search", "stray"]);
    assert!(String::from_utf8_lossy(&search.stderr).contains("no workspace indexed yet"));

    let root = tree.path().to_str().unwrap();
    let first = ok(dreamos(data.path(), &["index", root, "--name", "fixture"]));
    assert!(first.contains("files indexed") && first.contains("definitions"), "{first}");
    let again = ok(dreamos(data.path(), &["index", root, "--name", "fixture"]));
    assert!(again.starts_with("fixture: unchanged ("), "{again}");

    // One workspace: that one is shown, and the stray tree stays unindexed.
    let metrics: Value = serde_json::from_str(&ok(here(&["--json", "metrics"]))).unwrap();
    let whole: Value =
        serde_json::from_str(&ok(dreamos(data.path(), &["--json", "metrics", root]))).unwrap();
    assert_eq!(metrics["files"], whole["files"]);
    assert!(found(data.path(), "stray").is_empty(), "the current directory was indexed");
}
