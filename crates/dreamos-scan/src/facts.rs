//! Per-file facts of a workspace in SQLite: each file's content hash (what makes updates
//! incremental), its definitions with their metrics, and its imports. Listings, metrics and
//! dependency graphs read from here; ranked search reads the tantivy index.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::model::{FileFacts, FunctionMetrics, Import, ImportKind, LineCounts, Symbol};
use crate::walk::FileClass;
use crate::{Lang, ScanError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    lang TEXT,
    class TEXT NOT NULL,
    code INTEGER NOT NULL DEFAULT 0,
    comment INTEGER NOT NULL DEFAULT 0,
    blank INTEGER NOT NULL DEFAULT 0,
    syntax_errors INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS symbols (
    file_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    qualified TEXT NOT NULL,
    kind TEXT NOT NULL,
    line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    name_line INTEGER NOT NULL,
    col INTEGER NOT NULL,
    signature TEXT NOT NULL,
    doc TEXT,
    parent INTEGER,
    cyclomatic INTEGER,
    cognitive INTEGER,
    nesting INTEGER,
    params INTEGER,
    code INTEGER,
    comment INTEGER,
    blank INTEGER,
    PRIMARY KEY (file_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS symbols_name ON symbols (name);
CREATE TABLE IF NOT EXISTS imports (
    file_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    target TEXT NOT NULL,
    names TEXT NOT NULL,
    kind TEXT NOT NULL,
    line INTEGER NOT NULL,
    PRIMARY KEY (file_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Docs are kept for listings; long ones are cut.
const DOC_CHARS: usize = 600;

/// What the facts remember of a file between updates.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    pub id: i64,
    pub hash: String,
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

pub(crate) struct Facts {
    conn: Connection,
}

fn kind_str(kind: ImportKind) -> &'static str {
    match kind {
        ImportKind::Import => "import",
        ImportKind::Include => "include",
        ImportKind::SystemInclude => "system_include",
        ImportKind::ModDecl => "mod",
    }
}

fn kind_parse(s: &str) -> ImportKind {
    match s {
        "include" => ImportKind::Include,
        "system_include" => ImportKind::SystemInclude,
        "mod" => ImportKind::ModDecl,
        _ => ImportKind::Import,
    }
}

impl Facts {
    pub(crate) fn open(path: &Path) -> Result<Self, ScanError> {
        let conn = Connection::open(path)?;
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
                    hash: r.get(2)?,
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

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Writes within one update's transaction.
pub(crate) fn set_meta(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    value: &str,
) -> Result<(), ScanError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
        params![key, value],
    )?;
    Ok(())
}

pub(crate) fn delete_file(tx: &rusqlite::Transaction<'_>, id: i64) -> Result<(), ScanError> {
    tx.execute("DELETE FROM symbols WHERE file_id = ?1", [id])?;
    tx.execute("DELETE FROM imports WHERE file_id = ?1", [id])?;
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
    pub hash: &'a str,
    pub size: u64,
    pub mtime_ns: i64,
    pub class: FileClass,
    pub facts: Option<&'a FileFacts>,
    /// Lines of a file that is searched but not parsed.
    pub lines: LineCounts,
}

/// Replaces whatever was stored for the file.
pub(crate) fn put_file(
    tx: &rusqlite::Transaction<'_>,
    old: Option<i64>,
    file: &NewFile<'_>,
) -> Result<(), ScanError> {
    if let Some(id) = old {
        delete_file(tx, id)?;
    }
    let lines = file.facts.map_or(file.lines, |f| f.lines);
    tx.prepare_cached(
        "INSERT INTO files (path, hash, size, mtime_ns, lang, class, code, comment, blank, syntax_errors) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        file.path,
        file.hash,
        file.size as i64,
        file.mtime_ns,
        file.facts.map(|f| f.lang.as_str()),
        file.class.as_str(),
        lines.code,
        lines.comment,
        lines.blank,
        file.facts.map_or(0, |f| f.syntax_errors),
    ])?;
    let id = tx.last_insert_rowid();
    let Some(facts) = file.facts else { return Ok(()) };
    let mut insert = tx.prepare_cached(
        "INSERT INTO symbols (file_id, idx, name, qualified, kind, line, end_line, name_line, col, \
         signature, doc, parent, cyclomatic, cognitive, nesting, params, code, comment, blank) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    )?;
    for (i, s) in facts.symbols.iter().enumerate() {
        let m = s.metrics;
        let doc = s.doc.as_deref().map(|d| d.chars().take(DOC_CHARS).collect::<String>());
        insert.execute(params![
            id,
            i as i64,
            s.name,
            s.qualified_name,
            s.kind.as_str(),
            s.line,
            s.end_line,
            s.name_line,
            s.column,
            s.signature,
            doc,
            s.parent.map(|p| p as i64),
            m.map(|m| m.cyclomatic),
            m.map(|m| m.cognitive),
            m.map(|m| m.max_nesting),
            m.map(|m| m.params),
            m.map(|m| m.lines.code),
            m.map(|m| m.lines.comment),
            m.map(|m| m.lines.blank),
        ])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO imports (file_id, idx, target, names, kind, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (i, imp) in facts.imports.iter().enumerate() {
        insert.execute(params![
            id,
            i as i64,
            imp.target,
            imp.names.join(","),
            kind_str(imp.kind),
            imp.line
        ])?;
    }
    Ok(())
}

fn symbol_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SymbolRow> {
    let kind: String = r.get("kind")?;
    let metrics = match r.get::<_, Option<u32>>("cyclomatic")? {
        Some(cyclomatic) => Some(FunctionMetrics {
            cyclomatic,
            cognitive: r.get("cognitive")?,
            max_nesting: r.get("nesting")?,
            params: r.get("params")?,
            lines: LineCounts {
                code: r.get("code")?,
                comment: r.get("comment")?,
                blank: r.get("blank")?,
            },
        }),
        None => None,
    };
    let lang: Option<String> = r.get("lang")?;
    Ok(SymbolRow {
        path: r.get("path")?,
        lang: lang.and_then(|l| l.parse().ok()),
        symbol: Symbol {
            name: r.get("name")?,
            qualified_name: r.get("qualified")?,
            kind: kind.parse().unwrap_or(crate::SymbolKind::Function),
            line: r.get("line")?,
            end_line: r.get("end_line")?,
            name_line: r.get("name_line")?,
            column: r.get("col")?,
            signature: r.get("signature")?,
            doc: r.get("doc")?,
            metrics,
            parent: r.get::<_, Option<i64>>("parent")?.map(|p| p as usize),
        },
    })
}

const SYMBOL_SELECT: &str =
    "SELECT f.path, f.lang, s.* FROM symbols s JOIN files f ON f.id = s.file_id";

impl Facts {
    /// Definitions, optionally only those with this exact name or kind, in path order.
    pub(crate) fn symbols(
        &self,
        name: Option<&str>,
        kind: Option<&str>,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Result<Vec<SymbolRow>, ScanError> {
        let sql = format!(
            "{SYMBOL_SELECT} WHERE (?1 IS NULL OR s.name = ?1) AND (?2 IS NULL OR s.kind = ?2) \
             ORDER BY f.path, s.idx"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params![name, kind])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let path: String = row.get(0)?;
            if keep(&path) {
                out.push(symbol_from_row(row)?);
            }
        }
        Ok(out)
    }

    /// The innermost definition around a line of a file.
    pub(crate) fn enclosing(&self, path: &str, line: u32) -> Result<Option<SymbolRow>, ScanError> {
        let sql = format!(
            "{SYMBOL_SELECT} WHERE f.path = ?1 AND s.line <= ?2 AND s.end_line >= ?2 \
             ORDER BY (s.end_line - s.line), s.idx DESC LIMIT 1"
        );
        Ok(self.conn.query_row(&sql, params![path, line], symbol_from_row).optional()?)
    }

    pub(crate) fn files(&self) -> Result<Vec<FileRow>, ScanError> {
        let mut stmt = self.conn.prepare(
            "SELECT path, lang, class, size, code, comment, blank, syntax_errors FROM files ORDER BY path",
        )?;
        let rows = stmt.query_map([], |r| {
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
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every import, with the path of the file that makes it.
    pub(crate) fn imports(&self) -> Result<Vec<(String, Option<Lang>, Import)>, ScanError> {
        let mut stmt = self.conn.prepare(
            "SELECT f.path, f.lang, i.target, i.names, i.kind, i.line FROM imports i \
             JOIN files f ON f.id = i.file_id ORDER BY f.path, i.idx",
        )?;
        let rows = stmt.query_map([], |r| {
            let lang: Option<String> = r.get(1)?;
            let names: String = r.get(3)?;
            let kind: String = r.get(4)?;
            Ok((
                r.get::<_, String>(0)?,
                lang.and_then(|l| l.parse().ok()),
                Import {
                    target: r.get(2)?,
                    names: names.split(',').filter(|n| !n.is_empty()).map(String::from).collect(),
                    kind: kind_parse(&kind),
                    line: r.get(5)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
