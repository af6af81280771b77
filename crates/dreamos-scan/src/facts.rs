//! Per-file facts of a workspace in SQLite: each file's content hash (what makes updates
//! incremental), its line counts, and its definitions (with their metrics) and imports.
//!
//! A file's definitions and imports are one compact record (JSON arrays, LZ4-compressed):
//! they are always read a file at a time, and rows per definition made this store larger
//! than the source it describes. Listings, metrics and graphs read from here; ranked
//! search reads the tantivy index.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::model::{
    FileFacts, FunctionMetrics, Import, ImportKind, LineCounts, Symbol, SymbolKind,
};
use crate::walk::FileClass;
use crate::{Lang, ScanError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    hash BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    lang TEXT,
    class TEXT NOT NULL,
    code INTEGER NOT NULL,
    comment INTEGER NOT NULL,
    blank INTEGER NOT NULL,
    syntax_errors INTEGER NOT NULL,
    facts BLOB
);
";

/// What the facts remember of a file between updates.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    pub id: i64,
    pub hash: [u8; 16],
    pub size: u64,
    pub mtime_ns: i64,
}

/// A file as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRow {
    pub path: String,
    pub lang: Option<Lang>,
    pub class: FileClass,
    pub size: u64,
    pub lines: LineCounts,
    pub syntax_errors: u32,
}

/// A definition as stored, with the file it is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolRow {
    pub path: String,
    pub lang: Option<Lang>,
    #[serde(flatten)]
    pub symbol: Symbol,
}

/// The stored form of a definition: positional, to keep records small. Fields: name,
/// scope, kind (index in `SymbolKind::ALL`), [line, end line, name line, column],
/// signature (empty when it says no more than the name: a plain `#define NAME`), metrics,
/// parent. Doc comments are searchable in the index but not kept here.
#[derive(Serialize, Deserialize)]
struct StoredSymbol(String, String, u8, [u32; 4], String, Option<[u32; 7]>, Option<u32>);

#[derive(Serialize, Deserialize)]
struct StoredImport(String, Vec<String>, ImportKind, u32);

#[derive(Serialize, Deserialize, Default)]
struct Record(Vec<StoredSymbol>, Vec<StoredImport>);

fn encode(facts: &FileFacts) -> Vec<u8> {
    let sep = facts.lang.separator();
    let symbols = facts
        .symbols
        .iter()
        .map(|s| {
            // Only what the parent's qualified name and the name do not already say: the
            // scope written into the name itself (`Widget::` in `Widget::draw`).
            let prefix = s
                .parent
                .map(|p| format!("{}{sep}", facts.symbols[p].qualified_name))
                .unwrap_or_default();
            let rest = s.qualified_name.strip_prefix(&prefix).unwrap_or(&s.qualified_name);
            let scope = rest.strip_suffix(&s.name).unwrap_or(rest).trim_end_matches(sep);
            let plain_macro = s.kind == SymbolKind::Macro
                && s.signature.trim_start_matches("#define").trim() == s.name;
            StoredSymbol(
                s.name.clone(),
                scope.to_string(),
                SymbolKind::ALL.iter().position(|k| *k == s.kind).unwrap_or(0) as u8,
                [s.line, s.end_line, s.name_line, s.column],
                if plain_macro { String::new() } else { s.signature.clone() },
                s.metrics.map(|m| {
                    [
                        m.cyclomatic,
                        m.cognitive,
                        m.max_nesting,
                        m.params,
                        m.lines.code,
                        m.lines.comment,
                        m.lines.blank,
                    ]
                }),
                s.parent.map(|p| p as u32),
            )
        })
        .collect();
    let imports = facts
        .imports
        .iter()
        .map(|i| StoredImport(i.target.clone(), i.names.clone(), i.kind, i.line))
        .collect();
    let json = serde_json::to_vec(&Record(symbols, imports)).unwrap_or_default();
    lz4_flex::compress_prepend_size(&json)
}

fn decode(
    blob: Option<Vec<u8>>,
    lang: Option<Lang>,
) -> Result<(Vec<Symbol>, Vec<Import>), ScanError> {
    let Some(blob) = blob else { return Ok((Vec::new(), Vec::new())) };
    let corrupt =
        |e: String| ScanError::Config(format!("the facts database is corrupt ({e}); index again"));
    let json = lz4_flex::decompress_size_prepended(&blob).map_err(|e| corrupt(e.to_string()))?;
    let Record(stored, imports) =
        serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
    let sep = lang.map_or(".", |l| l.separator());
    let mut symbols: Vec<Symbol> = Vec::with_capacity(stored.len());
    for StoredSymbol(name, scope, kind, at, signature, m, parent) in stored {
        let kind = SymbolKind::ALL.get(kind as usize).copied().unwrap_or(SymbolKind::Function);
        let signature = if signature.is_empty() { format!("#define {name}") } else { signature };
        let parent = parent.map(|p| p as usize);
        let mut parts: Vec<&str> = Vec::new();
        if let Some(p) = parent.and_then(|p| symbols.get(p)) {
            parts.push(&p.qualified_name);
        }
        if !scope.is_empty() {
            parts.push(&scope);
        }
        parts.push(&name);
        let qualified_name = parts.join(sep);
        symbols.push(Symbol {
            name,
            qualified_name,
            kind,
            line: at[0],
            end_line: at[1],
            name_line: at[2],
            column: at[3],
            signature,
            doc: None,
            metrics: m.map(|m| FunctionMetrics {
                cyclomatic: m[0],
                cognitive: m[1],
                max_nesting: m[2],
                params: m[3],
                lines: LineCounts { code: m[4], comment: m[5], blank: m[6] },
            }),
            parent,
        });
    }
    let imports = imports
        .into_iter()
        .map(|StoredImport(target, names, kind, line)| Import { target, names, kind, line })
        .collect();
    Ok((symbols, imports))
}

pub(crate) struct Facts {
    conn: Connection,
}

impl Facts {
    pub(crate) fn open(path: &Path) -> Result<Self, ScanError> {
        let conn = Connection::open(path)?;
        // Records are a few KiB: small pages waste less at the end of each one's chain.
        conn.execute_batch("PRAGMA page_size = 512;")?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;",
        )?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    pub(crate) fn known(&self) -> Result<HashMap<String, Known>, ScanError> {
        let mut stmt = self.conn.prepare("SELECT id, path, hash, size, mtime_ns FROM files")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                Known {
                    id: r.get(0)?,
                    hash: r.get::<_, Vec<u8>>(2)?.try_into().unwrap_or([0; 16]),
                    size: r.get::<_, i64>(3)? as u64,
                    mtime_ns: r.get(4)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn begin(&mut self) -> Result<rusqlite::Transaction<'_>, ScanError> {
        Ok(self.conn.transaction()?)
    }

    pub(crate) fn count(&self) -> Result<usize, ScanError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM files", [], |r| r.get::<_, i64>(0))? as usize)
    }
}

pub(crate) fn delete_file(tx: &rusqlite::Transaction<'_>, id: i64) -> Result<(), ScanError> {
    tx.execute("DELETE FROM files WHERE id = ?1", [id])?;
    Ok(())
}

pub(crate) fn touch_file(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    size: u64,
    mtime_ns: i64,
) -> Result<(), ScanError> {
    tx.execute(
        "UPDATE files SET size = ?2, mtime_ns = ?3 WHERE id = ?1",
        params![id, size as i64, mtime_ns],
    )?;
    Ok(())
}

pub(crate) struct NewFile<'a> {
    pub path: &'a str,
    pub hash: [u8; 16],
    pub size: u64,
    pub mtime_ns: i64,
    pub class: FileClass,
    pub facts: Option<&'a FileFacts>,
    /// Lines of a file that is searched but not parsed.
    pub lines: LineCounts,
}

/// Replaces whatever was stored for the file; its new id.
pub(crate) fn put_file(
    tx: &rusqlite::Transaction<'_>,
    old: Option<i64>,
    file: &NewFile<'_>,
) -> Result<i64, ScanError> {
    if let Some(id) = old {
        delete_file(tx, id)?;
    }
    let lines = file.facts.map_or(file.lines, |f| f.lines);
    tx.prepare_cached(
        "INSERT INTO files (path, hash, size, mtime_ns, lang, class, code, comment, blank, \
         syntax_errors, facts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        file.path,
        &file.hash[..],
        file.size as i64,
        file.mtime_ns,
        file.facts.map(|f| f.lang.as_str()),
        file.class.as_str(),
        lines.code,
        lines.comment,
        lines.blank,
        file.facts.map_or(0, |f| f.syntax_errors),
        file.facts.map(encode),
    ])?;
    Ok(tx.last_insert_rowid())
}

impl Facts {
    /// Calls `visit` with each file (in path order) that `keep` accepts, with its
    /// definitions and imports.
    pub(crate) fn each_file(
        &self,
        mut keep: impl FnMut(&str) -> bool,
        mut visit: impl FnMut(&str, Option<Lang>, Vec<Symbol>, Vec<Import>),
    ) -> Result<(), ScanError> {
        let mut stmt = self.conn.prepare("SELECT path, lang, facts FROM files ORDER BY path")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let path: String = row.get(0)?;
            if !keep(&path) {
                continue;
            }
            let lang: Option<Lang> = row.get::<_, Option<String>>(1)?.and_then(|l| l.parse().ok());
            let (symbols, imports) = decode(row.get(2)?, lang)?;
            visit(&path, lang, symbols, imports);
        }
        Ok(())
    }

    /// Definitions, optionally only those with this exact name or kind, in path order.
    pub(crate) fn symbols(
        &self,
        name: Option<&str>,
        kind: Option<SymbolKind>,
        keep: impl FnMut(&str) -> bool,
    ) -> Result<Vec<SymbolRow>, ScanError> {
        let mut out = Vec::new();
        self.each_file(keep, |path, lang, symbols, _| {
            for symbol in symbols {
                if name.is_none_or(|n| symbol.name == n) && kind.is_none_or(|k| symbol.kind == k) {
                    out.push(SymbolRow { path: path.to_string(), lang, symbol });
                }
            }
        })?;
        Ok(out)
    }

    /// A file by id, with its definitions.
    pub(crate) fn file_by_id(&self, id: i64) -> Result<Option<(FileRow, Vec<Symbol>)>, ScanError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, lang, class, size, code, comment, blank, syntax_errors, facts \
             FROM files WHERE id = ?1",
        )?;
        let row = stmt
            .query_row([id], |r| Ok((file_row(r)?, r.get::<_, Option<Vec<u8>>>(8)?)))
            .optional()?;
        match row {
            Some((file, blob)) => {
                let symbols = decode(blob, file.lang)?.0;
                Ok(Some((file, symbols)))
            }
            None => Ok(None),
        }
    }

    /// A file by id, without its definitions.
    pub(crate) fn file_row(&self, id: i64) -> Result<Option<FileRow>, ScanError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, lang, class, size, code, comment, blank, syntax_errors FROM files WHERE id = ?1",
        )?;
        Ok(stmt.query_row([id], file_row).optional()?)
    }

    /// The definitions of a file by path.
    pub(crate) fn file_symbols(&self, path: &str) -> Result<Vec<Symbol>, ScanError> {
        let mut stmt = self.conn.prepare_cached("SELECT lang, facts FROM files WHERE path = ?1")?;
        let row: Option<(Option<String>, Option<Vec<u8>>)> =
            stmt.query_row([path], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        let Some((lang, blob)) = row else { return Ok(Vec::new()) };
        Ok(decode(blob, lang.and_then(|l| l.parse().ok()))?.0)
    }

    /// The ids of the files whose path `keep` accepts.
    pub(crate) fn ids(&self, mut keep: impl FnMut(&str) -> bool) -> Result<Vec<i64>, ScanError> {
        let mut stmt = self.conn.prepare("SELECT id, path FROM files")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let path: String = r.get(1)?;
            if keep(&path) {
                out.push(r.get(0)?);
            }
        }
        Ok(out)
    }

    pub(crate) fn files(&self) -> Result<Vec<FileRow>, ScanError> {
        let mut stmt = self.conn.prepare(
            "SELECT path, lang, class, size, code, comment, blank, syntax_errors FROM files ORDER BY path",
        )?;
        let rows = stmt.query_map([], file_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every import, with the path and language of the file that makes it.
    pub(crate) fn imports(&self) -> Result<Vec<(String, Option<Lang>, Import)>, ScanError> {
        let mut out = Vec::new();
        self.each_file(
            |_| true,
            |path, lang, _, imports| {
                out.extend(imports.into_iter().map(|i| (path.to_string(), lang, i)));
            },
        )?;
        Ok(out)
    }
}

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRow> {
    let lang: Option<String> = r.get(1)?;
    let class: String = r.get(2)?;
    Ok(FileRow {
        path: r.get(0)?,
        lang: lang.and_then(|l| l.parse().ok()),
        class: FileClass::parse(&class),
        size: r.get::<_, i64>(3)? as u64,
        lines: LineCounts { code: r.get(4)?, comment: r.get(5)?, blank: r.get(6)? },
        syntax_errors: r.get(7)?,
    })
}

/// The innermost definition around a line.
pub(crate) fn innermost(symbols: &[Symbol], line: u32) -> Option<&Symbol> {
    symbols
        .iter()
        .filter(|s| s.line <= line && line <= s.end_line)
        .min_by_key(|s| s.end_line - s.line)
}
