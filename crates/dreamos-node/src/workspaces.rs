//! The node's workspaces: named source trees registered in the data dir, their indexes
//! (opened once and shared), and the watches that keep them fresh while the node runs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use dreamos_scan::{Index, Registry, ScanError, SearchOptions, Watch, Workspace};
use serde::Serialize;
use serde_json::{Value, json};

/// A workspace as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceView {
    pub name: String,
    pub root: String,
    pub files: usize,
    pub watching: bool,
}

/// Why a workspace was not added: the policy refused it, or the scanner could not.
#[derive(Debug)]
pub enum AddError {
    Refused(dreamos_service::ServiceError),
    Scan(ScanError),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::Refused(e) => e.fmt(f),
            AddError::Scan(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AddError {}

pub struct Workspaces {
    registry: Registry,
    data_dir: std::path::PathBuf,
    open: Mutex<HashMap<String, Arc<Index>>>,
    watches: Mutex<HashMap<String, Watch>>,
}

impl std::fmt::Debug for Workspaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Workspaces")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Workspaces {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            registry: Registry::new(data_dir),
            data_dir: data_dir.to_path_buf(),
            open: Mutex::new(HashMap::new()),
            watches: Mutex::new(HashMap::new()),
        }
    }

    pub fn list(&self) -> Result<Vec<WorkspaceView>, ScanError> {
        let mut out = Vec::new();
        for ws in self.registry.list()? {
            let files = self.index(&ws.name).and_then(|i| i.files()).map_or(0, |f| f.len());
            out.push(WorkspaceView {
                watching: lock(&self.watches).contains_key(&ws.name),
                root: ws.root.display().to_string(),
                name: ws.name,
                files,
            });
        }
        Ok(out)
    }

    /// Registers a workspace at `path` if the policy allows it there: under one of `roots`,
    /// outside the node's data dir, not a sensitive system tree (see
    /// [`dreamos_service::workspaces`]).
    pub fn add(
        &self,
        name: Option<&str>,
        path: &Path,
        roots: &[std::path::PathBuf],
        explicit: bool,
    ) -> Result<Workspace, AddError> {
        let root = path.canonicalize().map_err(|e| {
            AddError::Scan(ScanError::Config(format!(
                "cannot use {} as a workspace: {e}",
                path.display()
            )))
        })?;
        dreamos_service::workspaces::may_register(&root, roots, explicit, &self.data_dir)
            .map_err(AddError::Refused)?;
        self.registry.add(name, &root).map_err(AddError::Scan)
    }

    /// Stops watching a workspace and forgets it (its index is deleted, its files kept).
    pub fn remove(&self, name: &str) -> Result<Workspace, ScanError> {
        self.registry.get(name)?;
        lock(&self.watches).remove(name);
        lock(&self.open).remove(name);
        self.registry.remove(name)
    }

    pub fn get(&self, name: &str) -> Result<Workspace, ScanError> {
        self.registry.get(name)
    }

    /// The workspace's index, opened once and shared.
    pub fn index(&self, name: &str) -> Result<Arc<Index>, ScanError> {
        if let Some(index) = lock(&self.open).get(name) {
            return Ok(index.clone());
        }
        let ws = self.registry.get(name)?;
        let index = Arc::new(self.registry.open_index(&ws)?);
        Ok(lock(&self.open).entry(name.to_string()).or_insert(index).clone())
    }

    /// Keeps a workspace's index fresh until the node stops (or it is removed).
    pub fn watch(&self, name: &str) -> Result<(), ScanError> {
        if lock(&self.watches).contains_key(name) {
            return Ok(());
        }
        let index = self.index(name)?;
        let label = name.to_string();
        let watch = dreamos_scan::watch(index, move |result| match result {
            Ok(s) => tracing::info!(
                workspace = %label,
                added = s.added,
                changed = s.changed,
                deleted = s.deleted,
                ms = s.seconds * 1e3,
                "workspace updated"
            ),
            Err(e) => tracing::warn!(workspace = %label, error = %e, "workspace update failed"),
        })?;
        lock(&self.watches).insert(name.to_string(), watch);
        Ok(())
    }

    /// Watches every registered workspace that has been indexed.
    pub fn watch_all(&self) {
        for ws in self.registry.list().unwrap_or_default() {
            let indexed = self.index(&ws.name).and_then(|i| i.files()).is_ok_and(|f| !f.is_empty());
            if indexed && let Err(e) = self.watch(&ws.name) {
                tracing::warn!(workspace = %ws.name, error = %e, "cannot watch the workspace");
            }
        }
    }

    pub fn stop_watching(&self) {
        lock(&self.watches).clear();
    }

    /// Searches one workspace, or all of them (results merged by score, or in path order
    /// for grep-like queries).
    pub fn search(
        &self,
        query: &str,
        workspace: Option<&str>,
        options: &SearchOptions,
    ) -> Result<Value, ScanError> {
        let names: Vec<String> = match workspace {
            Some(w) => vec![self.registry.get(w)?.name],
            None => self.registry.list()?.into_iter().map(|w| w.name).collect(),
        };
        let parsed = dreamos_scan::query::parse(query)?;
        let wide =
            SearchOptions { limit: options.offset + options.limit, offset: 0, ..options.clone() };
        let mut hits: Vec<(String, dreamos_scan::Hit)> = Vec::new();
        let (mut more, mut mode) = (false, "ranked".to_string());
        for name in &names {
            let results = self.index(name)?.search_query(&parsed, &wide)?;
            more |= results.more;
            mode = results.mode;
            hits.extend(results.hits.into_iter().map(|h| (name.clone(), h)));
        }
        if mode == "ranked" {
            hits.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
        }
        more |= hits.len() > options.offset + options.limit;
        let page: Vec<Value> = hits
            .into_iter()
            .skip(options.offset)
            .take(options.limit)
            .map(|(ws, h)| {
                let mut v = serde_json::to_value(&h).unwrap_or(Value::Null);
                v["workspace"] = Value::String(ws);
                v
            })
            .collect();
        Ok(json!({ "mode": mode, "hits": page, "offset": options.offset, "more": more }))
    }
}
