//! House rules that can be checked, checked (as rust-analyzer's tidy test does): the crate
//! layering written in ARCHITECTURE.md is the one the Cargo manifests have, and no source file
//! grows past 800 lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Each crate's allowed `dreamos-*` dependencies, from ARCHITECTURE.md's code map (the last
/// column: "nothing of ours", "everything", or short names such as "core, store").
fn allowed() -> Vec<(String, Option<BTreeSet<String>>)> {
    let text = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("| `dreamos-"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            let name = cells[0].trim_matches('`').to_string();
            let may = *cells.last().unwrap();
            let set = match may {
                "everything" => None,
                "nothing of ours" => Some(BTreeSet::new()),
                list => Some(list.split(',').map(|s| format!("dreamos-{}", s.trim())).collect()),
            };
            (name, set)
        })
        .collect()
}

/// The `dreamos-*` crates a manifest's `[dependencies]` names (not its dev-dependencies).
fn depends_on(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut section = String::new();
    let mut out = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
        } else if section == "[dependencies]"
            && let Some(name) = line.split(['=', '.', ' ']).next()
            && name.starts_with("dreamos-")
        {
            out.insert(name.to_string());
        }
    }
    out
}

#[test]
fn the_layering_in_architecture_md_is_the_manifests_layering() {
    let rules = allowed();
    let crates: BTreeSet<String> = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let documented: BTreeSet<String> = rules.iter().map(|(n, _)| n.clone()).collect();
    // The reader reads: the node's manifest names the store.
    let node = depends_on(&workspace().join("crates/dreamos-node/Cargo.toml"));
    assert!(node.contains("dreamos-store") && node.contains("dreamos-service"), "{node:?}");
    assert_eq!(crates, documented, "every crate has a row in ARCHITECTURE.md's code map");
    for (name, may) in &rules {
        let deps = depends_on(&workspace().join("crates").join(name).join("Cargo.toml"));
        assert!(!deps.contains(name.as_str()), "{name} depends on itself?");
        if let Some(may) = may {
            let extra: Vec<&String> = deps.difference(may).collect();
            assert!(
                extra.is_empty(),
                "{name} depends on {extra:?}, which ARCHITECTURE.md does not allow"
            );
        }
    }
}

#[test]
fn no_source_file_is_over_800_lines() {
    let mut long = Vec::new();
    let mut stack = vec![workspace().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > 800 {
                    long.push(format!("{} ({lines} lines)", path.display()));
                }
            }
        }
    }
    assert!(long.is_empty(), "split these by idea: {long:#?}");
}
