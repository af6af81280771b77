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
