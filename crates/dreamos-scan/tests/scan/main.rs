//! The scanner's behaviour tests: extraction per language, the index and its updates,
//! search (against ripgrep), metrics and dependency graphs.

mod extract;
mod graph;
mod index;
mod metrics;
mod search;

use std::path::{Path, PathBuf};

use dreamos_scan::{Index, SearchOptions};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A copy of a fixture tree in a temporary directory (tests change their trees).
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy(&fixture(name), dir.path());
    dir
}

fn copy(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A tree and its index.
pub struct Indexed {
    pub tree: tempfile::TempDir,
    pub data: tempfile::TempDir,
    pub index: Index,
}

pub fn indexed(fixture_name: &str) -> Indexed {
    let tree = copy_fixture(fixture_name);
    let data = tempfile::tempdir().unwrap();
    let index = Index::open(data.path(), tree.path(), Default::default()).unwrap();
    index.update(&mut |_| {}).unwrap();
    Indexed { tree, data, index }
}

/// `path:line` of every hit of a query (all of them).
pub fn hits(index: &Index, query: &str) -> Vec<String> {
    let options = SearchOptions { limit: 10_000, ..SearchOptions::default() };
    index
        .search(query, &options)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .hits
        .into_iter()
        .map(|h| format!("{}:{}", h.path, h.line))
        .collect()
}

/// Whether ripgrep can be run; under CI its absence fails the tests that need it.
pub fn ripgrep_available() -> bool {
    let ok = std::process::Command::new("rg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "ripgrep (rg) is required under CI; .ci/run installs it"
        );
        eprintln!("skipped: ripgrep (rg) is not installed");
    }
    ok
}
