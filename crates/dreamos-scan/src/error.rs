//! The scanner's error type; each variant has a stable code.

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path} is outside the workspace root {root}; refusing to read it")]
    OutsideRoot { path: String, root: String },
    #[error("{0}")]
    Config(String),
    #[error("invalid query: {0}")]
    Query(String),
    #[error("no workspace named `{0}`")]
    UnknownWorkspace(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("facts database: {0}")]
    Facts(#[from] rusqlite::Error),
}

impl ScanError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ScanError::OutsideRoot { .. } => "outside_root",
            ScanError::Config(_) => "bad_config",
            ScanError::Query(_) => "bad_query",
            ScanError::UnknownWorkspace(_) => "not_found",
            ScanError::Conflict(_) => "conflict",
            ScanError::Io { .. } | ScanError::Index(_) | ScanError::Facts(_) => "internal",
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ScanError::Io { path: path.display().to_string(), source }
    }
}
