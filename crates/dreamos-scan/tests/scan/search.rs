//! Search: grep mode returns what ripgrep returns; ranked mode puts definitions first; the
//! query language's filters and pages.

use std::collections::BTreeSet;
use std::process::Command;

use dreamos_scan::SearchOptions;

use crate::{hits, indexed, ripgrep_available};

/// ripgrep's (path, line, column) for a pattern, run in `root`.
fn ripgrep(
    root: &std::path::Path,
    pattern: &str,
    fixed: bool,
    ignore_case: bool,
) -> BTreeSet<(String, u32, u32)> {
    let mut cmd = Command::new("rg");
    cmd.args([
        "--no-config",
        "--no-heading",
        "--with-filename",
        "-n",
        "--column",
        "--color",
        "never",
    ]);
    if fixed {
        cmd.arg("-F");
    }
    if ignore_case {
        cmd.arg("-i");
    }
    let out = cmd.arg("-e").arg(pattern).arg(".").current_dir(root).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(4, ':');
            let path = p.next()?.trim_start_matches("./").to_string();
            Some((path, p.next()?.parse().ok()?, p.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn literal_and_regex_search_return_what_ripgrep_returns() {
    if !ripgrep_available() {
        return;
    }
    let t = indexed("tree");
    let cases: &[(&str, bool, bool)] = &[
        ("balance", true, false),
        ("entry.amount", true, false),
        ("ring_push(", true, false),
        ("return", true, false),
        ("=", true, false),
        (r"fn\s+\w+", false, false),
        (r"\bpub (fn|struct) [A-Z]\w*", false, false),
        (r"^import", false, false),
        (r"[a-z]+_[a-z]+\(", false, false),
        (r"(Store|Strings)\.\w+\(", false, false),
        (r"\d{2,}", false, false),
        (r"head\s*-\s*r->tail", false, false),
        (r"CONFIG|Config", false, true),
        ("total", true, true),
        (r"\w+;$", false, false),
        ("not anywhere in the tree", true, false),
    ];
    for &(pattern, fixed, ignore_case) in cases {
        let query = match (fixed, ignore_case) {
            (true, false) => format!("\"{pattern}\""),
            (true, true) => format!("/{}/i", regex::escape(pattern)),
            (false, true) => format!("/{pattern}/i"),
            (false, false) => format!("/{pattern}/"),
        };
        let options = SearchOptions { limit: 10_000, ..SearchOptions::default() };
        let ours: BTreeSet<(String, u32, u32)> = t
            .index
            .search(&query, &options)
            .unwrap()
            .hits
            .into_iter()
            .map(|h| (h.path, h.line, h.column))
            .collect();
        let theirs = ripgrep(t.tree.path(), pattern, fixed, ignore_case);
        assert_eq!(ours, theirs, "{query}");
    }
}

#[test]
fn grep_hits_name_their_definition() {
    let t = indexed("tree");
    let r = t.index.search("\"self.balance += entry.amount\"", &SearchOptions::default()).unwrap();
    assert_eq!(r.mode, "grep");
    let hit = &r.hits[0];
    assert_eq!((hit.path.as_str(), hit.line), ("crate/src/accounts.rs", 16));
    assert_eq!(hit.symbol.as_deref(), Some("Account::post"));
    assert_eq!(hit.kind.as_deref(), Some("method"));
    assert!(hit.snippet.iter().any(|l| l.line == 16 && l.text.contains("self.balance")));
}

#[test]
fn ranked_search_puts_the_definition_first() {
    let t = indexed("tree");
    let first = |q: &str| hits(&t.index, q).into_iter().next().unwrap_or_default();
    // Natural language about what the function does.
    assert_eq!(first("post an entry to the account balance"), "crate/src/accounts.rs:12");
    assert_eq!(first("parse the configuration file"), "pkg/core.py:5");
    // An identifier: its definition above the places that mention it, and tests below.
    let all = hits(&t.index, "parse_config");
    assert_eq!(all[0], "pkg/core.py:5");
    assert!(all.iter().any(|h| h.starts_with("app.py")), "mentions are found too: {all:?}");
    assert!(all.iter().any(|h| h.starts_with("tests/")), "{all:?}");
    // camelCase and snake_case parts.
    assert_eq!(first("render total"), "web/index.js:4");
    assert_eq!(first("ring push"), "csrc/src/ring.c:4");
}

#[test]
fn filters_negations_and_pages() {
    let t = indexed("tree");
    let q = |s: &str| hits(&t.index, s);
    assert!(q("balance lang:rust").iter().all(|h| h.starts_with("crate/")));
    assert!(q("balance -lang:rust").iter().all(|h| !h.starts_with("crate/")));
    assert!(q("return path:pkg").iter().all(|h| h.starts_with("pkg/")));
    assert!(q("return -path:pkg").iter().all(|h| !h.starts_with("pkg/")));
    assert!(q("return path:**/*.go").iter().all(|h| h.ends_with(".go") || h.contains(".go:")));
    assert_eq!(q("sym:Account kind:struct"), ["crate/src/accounts.rs:5"]);
    assert!(q("sym:Account -kind:struct").iter().all(|h| h != "crate/src/accounts.rs:5"));
    assert_eq!(q("sym:New kind:function lang:go"), ["store/store.go:7"]);
    assert!(!q("\"ring_push\" lang:c").is_empty());
    // Pages: the same order, cut.
    let all = q("return");
    let page = |offset: usize, limit: usize| {
        let options = SearchOptions { limit, offset, ..SearchOptions::default() };
        let r = t.index.search("return", &options).unwrap();
        (r.hits.into_iter().map(|h| format!("{}:{}", h.path, h.line)).collect::<Vec<_>>(), r.more)
    };
    let (first, more) = page(0, 3);
    assert_eq!((first.as_slice(), more), (&all[..3], true));
    let (rest, more) = page(3, 1_000);
    assert_eq!((rest.as_slice(), more), (&all[3..], false));
}

#[test]
fn bad_queries_get_clear_errors() {
    let t = indexed("tree");
    for (query, needle) in [
        ("", "nothing to search for"),
        ("/a(b/", "bad regex"),
        ("lang:cobol x", "unknown language"),
        ("kind:gizmo x", "unknown symbol kind"),
    ] {
        let err = t.index.search(query, &SearchOptions::default()).unwrap_err().to_string();
        assert!(err.contains(needle), "{query}: {err}");
    }
    let too_many = SearchOptions { limit: dreamos_scan::MAX_LIMIT + 1, ..SearchOptions::default() };
    assert!(t.index.search("x", &too_many).is_err());
}

/// A tree shaped like the ones where exact names used to rank low: tokio's `Runtime` among
/// dozens of names containing it, and the standard library's `HTTPConnection` among its own
/// methods and its subclasses.
fn exact_name_tree() -> crate::Indexed {
    let tree = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = tree.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "src/runtime/mod.rs",
        "/// The runtime.\npub struct Runtime {\n    handle: Handle,\n}\n\nimpl Runtime {\n    pub fn new() -> Runtime {\n        Runtime { handle: Handle }\n    }\n}\n\npub struct Handle;\n",
    );
    for (i, name) in
        ["Enter", "Local", "Current", "Blocking", "Scheduler", "Owned", "Shared", "Builder"]
            .iter()
            .enumerate()
    {
        let body = "    let rt: Runtime = Runtime::new(); // Runtime runtime Runtime\n".repeat(4);
        write(
            &format!("src/runtime/part{i}.rs"),
            &format!(
                "/// A {name} runtime: wraps a Runtime.\npub struct {name}Runtime {{\n    inner: Runtime,\n}}\n\n/// Makes a {name} runtime.\npub fn create_{lower}_runtime() -> {name}Runtime {{\n{body}    todo!()\n}}\n\npub fn enter_{lower}_runtime(rt: &Runtime) {{\n{body}}}\n",
                lower = name.to_lowercase()
            ),
        );
    }
    let mut methods = String::new();
    for m in [
        "connect",
        "close",
        "send",
        "putrequest",
        "putheader",
        "endheaders",
        "request",
        "getresponse",
        "set_debuglevel",
        "set_tunnel",
    ] {
        methods.push_str(&format!(
            "    def {m}(self):\n        \"\"\"{m} on this HTTPConnection.\"\"\"\n        return HTTPConnection.{m}(self)\n\n"
        ));
    }
    write(
        "lib/http/client.py",
        &format!(
            "class HTTPConnection:\n    \"\"\"A connection to an HTTP server.\"\"\"\n\n{methods}\nclass HTTPSConnection(HTTPConnection):\n    \"\"\"HTTPConnection over TLS.\"\"\"\n\n    def connect(self):\n        HTTPConnection.connect(self)\n"
        ),
    );
    // A run-together name the index also holds as the words its file uses (`get root`).
    write(
        "lib/xml/tree.py",
        "def get_root_node(tree):\n    \"\"\"Get the root node of a tree.\"\"\"\n    return tree.root\n\n\ndef getroot(tree):\n    \"\"\"Get the root.\"\"\"\n    return get_root_node(tree)\n",
    );
    let data = tempfile::tempdir().unwrap();
    let index = dreamos_scan::Index::open(data.path(), tree.path(), Default::default()).unwrap();
    index.update(&mut |_| {}).unwrap();
    crate::Indexed { tree, data, index }
}

#[test]
fn an_exact_name_outranks_names_that_contain_it() {
    let t = exact_name_tree();
    let first = |q: &str| {
        let r = t.index.search(q, &SearchOptions::default()).unwrap();
        let hit = r.hits.into_iter().next().unwrap_or_else(|| panic!("no hit for {q}"));
        (hit.symbol.unwrap_or_default(), hit.kind.unwrap_or_default())
    };
    let runtime = ("Runtime".to_string(), "struct".to_string());
    assert_eq!(first("sym:Runtime"), runtime);
    assert_eq!(first("Runtime"), runtime);
    assert_eq!(first("runtime"), runtime, "case does not decide what is exact");
    // A type outranks its own members, and the classes built on it, for its own name.
    let class = ("HTTPConnection".to_string(), "class".to_string());
    assert_eq!(first("HTTPConnection"), class);
    assert_eq!(first("sym:HTTPConnection"), class);
    // Exact, although the index holds that name with extra pieces: checked by its name.
    let r = t.index.search("getroot", &SearchOptions::default()).unwrap();
    assert_eq!(r.hits[0].symbol.as_deref(), Some("getroot"));
    assert!(r.hits[0].score > 1_000.0, "in the exact tier: {:?}", r.hits[0]);
    // Names containing the word still follow it.
    let all = hits(&t.index, "sym:Runtime");
    assert!(all.len() > 8, "{all:?}");
}
