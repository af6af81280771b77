//! Which files a workspace holds: `.gitignore` (in a git repository) and `.ignore` rules
//! (the `ignore` crate, as ripgrep uses them), no hidden files, a size cap, no binaries, and, unless asked, no
//! vendored or generated code. Nothing outside the workspace root is ever read: a symlink
//! whose target escapes it is refused.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::{Lang, ScanError};

/// What to index. The defaults suit source trees; every field can be set per workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanConfig {
    /// Files larger than this are skipped (generated tables, data dumps).
    pub max_file_bytes: u64,
    /// Skip third-party code (`vendored_globs`).
    pub skip_vendored: bool,
    /// Skip files that say they are generated (`@generated`, `Code generated ... DO NOT EDIT`,
    /// minified bundles).
    pub skip_generated: bool,
    /// Paths that hold third-party code.
    pub vendored_globs: Vec<String>,
    /// More paths to leave out, as globs relative to the root.
    pub exclude_globs: Vec<String>,
    /// Threads for parsing and indexing (0: one per core).
    pub threads: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 2 * 1024 * 1024,
            skip_vendored: true,
            skip_generated: true,
            vendored_globs: [
                "**/vendor/**",
                "**/node_modules/**",
                "**/third_party/**",
                "**/third-party/**",
                "**/thirdparty/**",
                "**/bower_components/**",
                "**/.venv/**",
                "**/site-packages/**",
            ]
            .map(String::from)
            .to_vec(),
            exclude_globs: Vec::new(),
            threads: 0,
        }
    }
}

impl ScanConfig {
    pub fn threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        }
    }
}

/// How a file's results rank: test, vendored and generated code are ranked down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileClass {
    Source,
    Test,
    Vendored,
    Generated,
}

impl FileClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FileClass::Source => "source",
            FileClass::Test => "test",
            FileClass::Vendored => "vendored",
            FileClass::Generated => "generated",
        }
    }

    pub fn parse(s: &str) -> FileClass {
        match s {
            "test" => FileClass::Test,
            "vendored" => FileClass::Vendored,
            "generated" => FileClass::Generated,
            _ => FileClass::Source,
        }
    }
}

/// A file found by the walk.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Relative to the root, with `/` separators.
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

/// Why a file was left out (reported in the index summary, not an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

pub(crate) struct Walker {
    root: PathBuf,
    config: ScanConfig,
    vendored: GlobSet,
    excluded: GlobSet,
}

fn globset(globs: &[String]) -> Result<GlobSet, ScanError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g).map_err(|e| ScanError::Config(format!("bad glob `{g}`: {e}")))?);
    }
    b.build().map_err(|e| ScanError::Config(e.to_string()))
}

impl Walker {
    /// `root` must already be canonical.
    pub(crate) fn new(root: &Path, config: &ScanConfig) -> Result<Self, ScanError> {
        Ok(Self {
            root: root.to_path_buf(),
            vendored: globset(&config.vendored_globs)?,
            excluded: globset(&config.exclude_globs)?,
            config: config.clone(),
        })
    }

    /// Every file to index, sorted by path, and those left out with why.
    pub(crate) fn walk(&self) -> (Vec<Candidate>, Vec<Skipped>) {
        self.walk_from(&self.root)
    }

    /// The files under one directory of the tree (the rules of the directories above it,
    /// up to the root, apply).
    pub(crate) fn walk_from(&self, dir: &Path) -> (Vec<Candidate>, Vec<Skipped>) {
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        let walker = ignore::WalkBuilder::new(dir)
            .hidden(true)
            .git_ignore(true)
            .git_global(false)
            .git_exclude(true)
            .ignore(true)
            .parents(dir != self.root)
            // As ripgrep: `.gitignore` applies inside a git repository (`.ignore` always).
            .require_git(true)
            .follow_links(false)
            // A Dream.OS data dir (tokens, the store, indexes) is never indexed, wherever it lies.
            .filter_entry(|e| !(e.file_type().is_some_and(|t| t.is_dir()) && is_data_dir(e.path())))
            .build();
        for entry in walker {
            let Ok(entry) = entry else { continue };
            let Some(file_type) = entry.file_type() else { continue };
            if file_type.is_dir() {
                continue;
            }
            let Some(rel) = self.relative(entry.path()) else { continue };
            match self.admit(entry.path(), &rel, file_type.is_symlink()) {
                Ok(Some(c)) => files.push(c),
                Ok(None) => {}
                Err(reason) => skipped.push(Skipped { path: rel, reason }),
            }
        }
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        (files, skipped)
    }

    /// The path relative to the root with `/` separators, if it lies under it.
    pub(crate) fn relative(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<&str> = rel
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect::<Option<_>>()?;
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// Checks one path named explicitly (a watch event, a single-file update): it must lie
    /// inside the root, also after following symlinks.
    pub(crate) fn confine(&self, path: &Path) -> Result<String, ScanError> {
        let outside = || ScanError::OutsideRoot {
            path: path.display().to_string(),
            root: self.root.display().to_string(),
        };
        let absolute = if path.is_absolute() { path.to_path_buf() } else { self.root.join(path) };
        // Normalise `..` lexically first, then resolve what exists.
        let mut normal = PathBuf::new();
        for c in absolute.components() {
            match c {
                Component::ParentDir => {
                    normal.pop();
                }
                Component::CurDir => {}
                other => normal.push(other),
            }
        }
        if !normal.starts_with(&self.root) {
            return Err(outside());
        }
        if normal.ancestors().take_while(|a| a.starts_with(&self.root)).any(is_data_dir) {
            return Err(ScanError::OutsideRoot {
                path: path.display().to_string(),
                root: format!("{} (a Dream.OS data dir is never indexed)", self.root.display()),
            });
        }
        if let Ok(real) = normal.canonicalize()
            && !real.starts_with(&self.root)
        {
            return Err(outside());
        }
        self.relative(&normal).ok_or_else(outside)
    }

    /// Whether a file is indexed: `Ok(None)` for files that are simply not ours (ignored
    /// kinds), `Err(reason)` for files deliberately left out.
    pub(crate) fn admit(
        &self,
        path: &Path,
        rel: &str,
        is_symlink: bool,
    ) -> Result<Option<Candidate>, String> {
        if self.excluded.is_match(rel) {
            return Ok(None);
        }
        if self.config.skip_vendored && self.vendored.is_match(rel) {
            return Err("vendored".into());
        }
        // Symlinks are not followed (as in ripgrep): one inside the tree points at a file
        // indexed where it is; one that leaves the tree is refused, and said so.
        if is_symlink {
            return match path.canonicalize() {
                Ok(real) if real.starts_with(&self.root) => Ok(None),
                Ok(real) => {
                    Err(format!("symlink to {} leaves the workspace root; refused", real.display()))
                }
                Err(_) => Ok(None),
            };
        }
        let real = path.to_path_buf();
        let meta = std::fs::metadata(&real).map_err(|e| format!("unreadable: {e}"))?;
        if !meta.is_file() {
            return Ok(None);
        }
        if meta.len() > self.config.max_file_bytes {
            return Err(format!(
                "{} bytes, over the {} byte cap",
                meta.len(),
                self.config.max_file_bytes
            ));
        }
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        Ok(Some(Candidate { rel: rel.to_string(), abs: real, size: meta.len(), mtime_ns }))
    }

    pub(crate) fn config(&self) -> &ScanConfig {
        &self.config
    }

    pub(crate) fn is_vendored(&self, rel: &str) -> bool {
        self.vendored.is_match(rel)
    }
}

/// Reads a file, refusing binaries (a NUL byte in the first 8 KiB, as ripgrep decides) and
/// text that is not UTF-8 is kept as is (it is searched byte-wise).
pub(crate) fn read_text(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let mut file = File::open(path).map_err(|e| format!("unreadable: {e}"))?;
    let mut bytes = Vec::new();
    file.by_ref().take(cap + 1).read_to_end(&mut bytes).map_err(|e| format!("unreadable: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!("over the {cap} byte cap"));
    }
    if is_binary(&bytes) {
        return Err("binary".into());
    }
    Ok(bytes)
}

pub(crate) fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

/// Files that say they are generated, in their first lines, or by their name.
pub(crate) fn is_generated(rel: &str, bytes: &[u8]) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.ends_with(".min.js")
        || name.ends_with(".min.css")
        || name.ends_with(".pb.go")
        || name.ends_with("_pb2.py")
        || name.ends_with(".pb.cc")
        || name.ends_with(".pb.h")
    {
        return true;
    }
    // Generators mark the first lines; a mention further down is just a mention.
    let head: Vec<u8> = bytes.split(|b| *b == b'\n').take(5).collect::<Vec<_>>().join(&b'\n');
    let head = String::from_utf8_lossy(&head[..head.len().min(1024)]).to_ascii_lowercase();
    head.contains("@generated")
        || (head.contains("do not edit") && head.contains("generated"))
        || head.contains("autogenerated")
        || head.contains("auto-generated")
        // A minified bundle: very long first line.
        || bytes.split(|b| *b == b'\n').next().is_some_and(|l| l.len() > 5_000)
}

/// Test code, by the conventions of each language.
pub(crate) fn is_test(rel: &str) -> bool {
    let lower = rel.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    lower.split('/').any(|part| matches!(part, "test" | "tests" | "testing" | "__tests__" | "spec"))
        || name.starts_with("test_")
        || name.ends_with("_test.go")
        || name.ends_with("_test.py")
        || name.ends_with("_tests.rs")
        || name.contains(".test.")
        || name.contains(".spec.")
        || (rel.ends_with("Test.java") || rel.ends_with("Tests.java"))
}

/// The language of a file; `None` for text we only search, never parse. A `.h` file is C
/// unless its content is C++ (see [`looks_like_cpp`]).
pub(crate) fn lang_of(rel: &str, bytes: &[u8]) -> Option<Lang> {
    match Lang::of_path(Path::new(rel)) {
        Some(Lang::C) if rel.ends_with(".h") && looks_like_cpp(bytes) => Some(Lang::Cpp),
        other => other,
    }
}

/// Whether a header's code (comments and strings aside) uses what only C++ has: a class, a
/// namespace, a template, an access specifier, a `::` scope, `std::`, `nullptr`,
/// `constexpr`. `extern "C"` blocks for C++ callers do not make a header C++.
pub(crate) fn looks_like_cpp(bytes: &[u8]) -> bool {
    static CODE_ONLY: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(r#"(?s)/\*.*?\*/|//[^\n]*|"(?:[^"\\\n]|\\.)*""#)
            .expect("valid regex")
    });
    static CPP: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(
            r"(?m)^\s*(?:template\s*<|namespace\s+\w*\s*\{|class\s+\w+|(?:public|private|protected)\s*:)|\w::~?\w|\b(?:nullptr|constexpr)\b",
        )
        .expect("valid regex")
    });
    // A header's first 256 KiB say what it is.
    let head = &bytes[..bytes.len().min(256 * 1024)];
    let code = CODE_ONLY.replace_all(head, &b" "[..]);
    CPP.is_match(&code)
}

/// The file that marks a directory as a Dream.OS data dir: such a directory and everything
/// under it is never walked, watched or read by the scanner.
pub const DATA_DIR_MARKER: &str = ".dreamos-data-dir";

/// Whether `dir` is a Dream.OS data dir (it holds [`DATA_DIR_MARKER`]).
pub fn is_data_dir(dir: &Path) -> bool {
    dir.join(DATA_DIR_MARKER).exists()
}

/// Marks `dir` as a data dir, creating it (mode 0700) if needed.
pub fn mark_data_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let marker = dir.join(DATA_DIR_MARKER);
    if !marker.exists() {
        std::fs::write(
            &marker,
            "This directory is a Dream.OS data dir: its code scanner never indexes it.\n",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_by_convention() {
        assert!(is_test("pkg/foo_test.go"));
        assert!(is_test("tests/integration.rs"));
        assert!(is_test("src/test_util.py"));
        assert!(is_test("web/app.spec.ts"));
        assert!(!is_test("src/contest.rs"));
        assert!(is_generated("x.pb.go", b"package x"));
        assert!(is_generated("a.rs", b"// @generated by build.rs\nfn x() {}"));
        assert!(is_generated("a.go", b"// Code generated by protoc. DO NOT EDIT.\n"));
        assert!(!is_generated("a.rs", b"fn main() {}\n"));
        let late = b"//! a\n//! b\n//! c\n//! d\n//! e\n//! skips `@generated` files\n";
        assert!(!is_generated("a.rs", late), "a mention below the header is not a marker");
        assert!(is_binary(b"abc\0def"));
    }
}
