//! Dream.OS semantic scanner: parses code with tree-sitter, extracts definitions,
//! references and imports, and indexes them for code search, structure metrics and
//! dependency graphs. It knows nothing of tasks, HTTP or Discord.
mod bm25f;
mod cmacro;
mod compound;
mod error;
mod expand;
mod extract;
mod facts;
pub mod graph;
mod index;
mod lang;
pub mod manifest;
mod metrics;
mod model;
pub mod query;
mod registry;
mod rules;
mod rustmacro;
mod search;
pub mod tokenize;
pub mod trigram;
pub mod walk;
mod watch;
pub use error::ScanError;
pub use extract::extract;
pub use facts::{FileRow, SymbolRow};
pub use index::{Index, Progress, UpdateSummary};
pub use lang::Lang;
pub use metrics::{FileMetrics, Hotspot, LanguageTotals, MetricsReport};
pub use model::*;
pub use registry::{Registry, ScanConfigEntry, Workspace};
pub use search::{Hit, MAX_LIMIT, SearchOptions, SearchResults, SnippetLine};
pub use watch::{Watch, watch};
