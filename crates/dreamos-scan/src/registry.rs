//! The workspaces of a data dir: named roots, each with its own index under
//! `DATA_DIR/workspaces/NAME/`. The CLI and the node share this list
//! (`DATA_DIR/workspaces.json`, replaced atomically on every change).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::walk::ScanConfig;
use crate::{Index, ScanError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub name: String,
    /// Canonical absolute path.
    pub root: PathBuf,
    pub added_at_ms: i64,
    #[serde(default)]
    pub config: Option<ScanConfigEntry>,
}

/// Per-workspace overrides of the scan configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanConfigEntry {
    pub max_file_bytes: Option<u64>,
    pub include_vendored: Option<bool>,
    pub include_generated: Option<bool>,
    pub exclude_globs: Option<Vec<String>>,
}

impl Workspace {
    pub fn scan_config(&self) -> ScanConfig {
        let mut c = ScanConfig::default();
        if let Some(e) = &self.config {
            if let Some(n) = e.max_file_bytes {
                c.max_file_bytes = n;
            }
            if let Some(v) = e.include_vendored {
                c.skip_vendored = !v;
            }
            if let Some(g) = e.include_generated {
                c.skip_generated = !g;
            }
            if let Some(x) = &e.exclude_globs {
                c.exclude_globs = x.clone();
            }
        }
        c
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    workspaces: Vec<Workspace>,
}

#[derive(Debug, Clone)]
pub struct Registry {
    data_dir: PathBuf,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Registry {
    pub fn new(data_dir: &Path) -> Self {
        Self { data_dir: data_dir.to_path_buf() }
    }

    fn file(&self) -> PathBuf {
        self.data_dir.join("workspaces.json")
    }

    fn load(&self) -> Result<File, ScanError> {
        match std::fs::read_to_string(self.file()) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                ScanError::Config(format!("{} is corrupt: {e}", self.file().display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
            Err(e) => Err(ScanError::io(&self.file(), e)),
        }
    }

    fn save(&self, file: &File) -> Result<(), ScanError> {
        crate::walk::mark_data_dir(&self.data_dir).map_err(|e| ScanError::io(&self.data_dir, e))?;
        let tmp = self.data_dir.join(format!("workspaces.json.{}.tmp", std::process::id()));
        let text =
            serde_json::to_string_pretty(file).map_err(|e| ScanError::Config(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| ScanError::io(&tmp, e))?;
        std::fs::rename(&tmp, self.file()).map_err(|e| ScanError::io(&self.file(), e))
    }

    pub fn list(&self) -> Result<Vec<Workspace>, ScanError> {
        Ok(self.load()?.workspaces)
    }

    pub fn get(&self, name: &str) -> Result<Workspace, ScanError> {
        self.list()?
            .into_iter()
            .find(|w| w.name == name)
            .ok_or_else(|| ScanError::UnknownWorkspace(name.to_string()))
    }

    /// Registers `root` under `name` (default: the directory's name, made unique). Adding the
    /// same root again returns the existing workspace.
    pub fn add(&self, name: Option<&str>, root: &Path) -> Result<Workspace, ScanError> {
        let root = root.canonicalize().map_err(|e| {
            ScanError::Config(format!("cannot use {} as a workspace: {e}", root.display()))
        })?;
        if !root.is_dir() {
            return Err(ScanError::Config(format!("{} is not a directory", root.display())));
        }
        let mut file = self.load()?;
        if let Some(existing) = file.workspaces.iter().find(|w| w.root == root) {
            if name.is_none_or(|n| n == existing.name) {
                return Ok(existing.clone());
            }
            return Err(ScanError::Conflict(format!(
                "{} is already registered as workspace `{}`",
                root.display(),
                existing.name
            )));
        }
        let name = match name {
            Some(n) => {
                if !valid_name(n) {
                    return Err(ScanError::Config(format!(
                        "workspace name `{n}`: use 1-64 letters, digits, `-`, `_` or `.`"
                    )));
                }
                if file.workspaces.iter().any(|w| w.name == n) {
                    return Err(ScanError::Conflict(format!("a workspace named `{n}` exists")));
                }
                n.to_string()
            }
            None => {
                let base: String =
                    root.file_name()
                        .and_then(|s| s.to_str())
                        .unwrap_or("workspace")
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                                c
                            } else {
                                '-'
                            }
                        })
                        .collect();
                let base = if valid_name(&base) { base } else { "workspace".to_string() };
                let mut candidate = base.clone();
                let mut n = 2;
                while file.workspaces.iter().any(|w| w.name == candidate) {
                    candidate = format!("{base}-{n}");
                    n += 1;
                }
                candidate
            }
        };
        let added_at_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let ws = Workspace { name, root, added_at_ms, config: None };
        file.workspaces.push(ws.clone());
        self.save(&file)?;
        Ok(ws)
    }

    /// Forgets a workspace and deletes its index (never the files it indexed).
    pub fn remove(&self, name: &str) -> Result<Workspace, ScanError> {
        let mut file = self.load()?;
        let pos = file
            .workspaces
            .iter()
            .position(|w| w.name == name)
            .ok_or_else(|| ScanError::UnknownWorkspace(name.to_string()))?;
        let ws = file.workspaces.remove(pos);
        self.save(&file)?;
        let dir = self.index_dir(&ws.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| ScanError::io(&dir, e))?;
        }
        Ok(ws)
    }

    /// Merges `overrides` into the workspace's scan configuration (fields left `None` keep
    /// their current value) and returns the updated workspace. Exclude globs are checked
    /// before anything is saved.
    pub fn set_config(
        &self,
        name: &str,
        overrides: &ScanConfigEntry,
    ) -> Result<Workspace, ScanError> {
        for g in overrides.exclude_globs.iter().flatten() {
            globset::Glob::new(g)
                .map_err(|e| ScanError::Config(format!("exclude glob `{g}`: {e}")))?;
        }
        if overrides.max_file_bytes == Some(0) {
            return Err(ScanError::Config("max file size must be at least 1 byte".into()));
        }
        let mut file = self.load()?;
        let ws = file
            .workspaces
            .iter_mut()
            .find(|w| w.name == name)
            .ok_or_else(|| ScanError::UnknownWorkspace(name.to_string()))?;
        let mut entry = ws.config.clone().unwrap_or_default();
        if overrides.max_file_bytes.is_some() {
            entry.max_file_bytes = overrides.max_file_bytes;
        }
        if overrides.include_vendored.is_some() {
            entry.include_vendored = overrides.include_vendored;
        }
        if overrides.include_generated.is_some() {
            entry.include_generated = overrides.include_generated;
        }
        if overrides.exclude_globs.is_some() {
            entry.exclude_globs = overrides.exclude_globs.clone();
        }
        ws.config = Some(entry);
        let updated = ws.clone();
        self.save(&file)?;
        Ok(updated)
    }

    pub fn index_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join("workspaces").join(name)
    }

    pub fn open_index(&self, ws: &Workspace) -> Result<Index, ScanError> {
        Index::open(&self.index_dir(&ws.name), &ws.root, ws.scan_config())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_roots_registered_once() {
        let data = tempfile::tempdir().unwrap();
        let trees = tempfile::tempdir().unwrap();
        let a = trees.path().join("proj");
        let b = trees.path().join("other").join("proj");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let r = Registry::new(data.path());
        let wa = r.add(None, &a).unwrap();
        let wb = r.add(None, &b).unwrap();
        assert_eq!((wa.name.as_str(), wb.name.as_str()), ("proj", "proj-2"));
        assert_eq!(r.add(None, &a).unwrap(), wa, "same root, same workspace");
        assert!(r.add(Some("proj"), &trees.path().join("other")).is_err(), "name taken");
        assert!(r.add(Some("../x"), &a).is_err());
        assert_eq!(r.list().unwrap().len(), 2);
        r.remove("proj").unwrap();
        assert!(matches!(r.get("proj"), Err(ScanError::UnknownWorkspace(_))));
        assert!(a.exists(), "removing a workspace never touches its files");
    }

    #[test]
    fn config_overrides_merge_and_reach_the_scan() {
        let data = tempfile::tempdir().unwrap();
        let tree = tempfile::tempdir().unwrap();
        let r = Registry::new(data.path());
        let ws = r.add(Some("t"), tree.path()).unwrap();
        assert_eq!(ws.scan_config().max_file_bytes, ScanConfig::default().max_file_bytes);
        r.set_config(
            "t",
            &ScanConfigEntry {
                include_vendored: Some(true),
                exclude_globs: Some(vec!["*.min.js".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        let ws = r
            .set_config("t", &ScanConfigEntry { max_file_bytes: Some(4096), ..Default::default() })
            .unwrap();
        let c = r.get("t").unwrap().scan_config();
        assert_eq!(ws.scan_config().max_file_bytes, 4096);
        assert_eq!(c.max_file_bytes, 4096);
        assert!(!c.skip_vendored, "earlier override kept");
        assert_eq!(c.exclude_globs, vec!["*.min.js".to_string()]);
        assert_eq!(c.skip_generated, ScanConfig::default().skip_generated);
        let bad = ScanConfigEntry { exclude_globs: Some(vec!["a[".into()]), ..Default::default() };
        assert!(matches!(r.set_config("t", &bad), Err(ScanError::Config(_))));
        assert_eq!(r.get("t").unwrap().scan_config().exclude_globs, vec!["*.min.js".to_string()]);
        assert!(matches!(
            r.set_config("nope", &ScanConfigEntry::default()),
            Err(ScanError::UnknownWorkspace(_))
        ));
    }
}
