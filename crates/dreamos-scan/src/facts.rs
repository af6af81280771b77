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

/// A file's record: its definitions and imports in a compact binary form (variable-length
/// integers, lengths before strings, line numbers as differences), LZ4-compressed. Doc
/// comments are searchable in the index but not kept here; a plain `#define NAME` keeps no
/// signature (it says no more than the name).
fn encode(facts: &FileFacts) -> Vec<u8> {
    let sep = facts.lang.separator();
    let mut w = Vec::with_capacity(facts.symbols.len() * 48 + 64);
    put(&mut w, facts.symbols.len() as u64);
    let mut previous_line = 0u32;
    for s in &facts.symbols {
        // Only what the parent's qualified name and the name do not already say: the scope
        // written into the name itself (`Widget::` in `Widget::draw`).
        let prefix = s
            .parent
            .map(|p| format!("{}{sep}", facts.symbols[p].qualified_name))
            .unwrap_or_default();
        let rest = s.qualified_name.strip_prefix(&prefix).unwrap_or(&s.qualified_name);
        let scope = rest.strip_suffix(&s.name).unwrap_or(rest).trim_end_matches(sep);
        let plain_macro = s.kind == SymbolKind::Macro
            && s.signature.trim_start_matches("#define").trim() == s.name;
        put_str(&mut w, &s.name);
        put_str(&mut w, scope);
        put(&mut w, SymbolKind::ALL.iter().position(|k| *k == s.kind).unwrap_or(0) as u64);
        put(&mut w, zigzag(i64::from(s.line) - i64::from(previous_line)));
        previous_line = s.line;
        put(&mut w, u64::from(s.end_line.saturating_sub(s.line)));
        put(&mut w, u64::from(s.name_line.saturating_sub(s.line)));
        put(&mut w, u64::from(s.column));
        put_str(&mut w, if plain_macro { "" } else { &s.signature });
        match s.metrics {
            Some(m) => {
                put(&mut w, 1);
                for v in [
                    m.cyclomatic,
                    m.cognitive,
                    m.max_nesting,
                    m.params,
                    m.lines.code,
                    m.lines.comment,
                    m.lines.blank,
                ] {
                    put(&mut w, u64::from(v));
                }
            }
            None => put(&mut w, 0),
        }
        put(&mut w, s.parent.map_or(0, |p| p as u64 + 1));
    }
    put(&mut w, facts.imports.len() as u64);
    for i in &facts.imports {
        put_str(&mut w, &i.target);
        put(&mut w, i.names.len() as u64);
        for n in &i.names {
            put_str(&mut w, n);
        }
        put(&mut w, import_kind_code(i.kind));
        put(&mut w, u64::from(i.line));
    }
    lz4_flex::compress_prepend_size(&w)
}

fn import_kind_code(kind: ImportKind) -> u64 {
    match kind {
        ImportKind::Import => 0,
        ImportKind::Include => 1,
        ImportKind::SystemInclude => 2,
        ImportKind::ModDecl => 3,
    }
}

fn put(w: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        w.push((v as u8) | 0x80);
        v >>= 7;
    }
    w.push(v as u8);
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    put(w, s.len() as u64);
    w.extend_from_slice(s.as_bytes());
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct Bytes<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn int(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at)?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn small(&mut self) -> Option<u32> {
        self.int().and_then(|v| u32::try_from(v).ok())
    }

    fn str(&mut self) -> Option<String> {
        let n = usize::try_from(self.int()?).ok()?;
        let bytes = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

fn decode(
    blob: Option<Vec<u8>>,
    lang: Option<Lang>,
) -> Result<(Vec<Symbol>, Vec<Import>), ScanError> {
    let Some(blob) = blob else { return Ok((Vec::new(), Vec::new())) };
    let corrupt = || ScanError::Config("the facts database is corrupt; index again".into());
    let raw = lz4_flex::decompress_size_prepended(&blob).map_err(|_| corrupt())?;
    let mut r = Bytes { buf: &raw, at: 0 };
    read_record(&mut r, lang).ok_or_else(corrupt)
}

fn read_record(r: &mut Bytes<'_>, lang: Option<Lang>) -> Option<(Vec<Symbol>, Vec<Import>)> {
    let sep = lang.map_or(".", |l| l.separator());
    let count = r.int()? as usize;
    let mut symbols: Vec<Symbol> = Vec::with_capacity(count.min(1 << 20));
    let mut previous_line = 0i64;
    for _ in 0..count {
        let name = r.str()?;
        let scope = r.str()?;
        let kind = *SymbolKind::ALL.get(r.int()? as usize)?;
        let line = u32::try_from(previous_line + unzigzag(r.int()?)).ok()?;
        previous_line = i64::from(line);
        let end_line = line + r.small()?;
        let name_line = line + r.small()?;
        let column = r.small()?;
        let signature = r.str()?;
        let metrics = match r.int()? {
            0 => None,
            _ => Some(FunctionMetrics {
                cyclomatic: r.small()?,
                cognitive: r.small()?,
                max_nesting: r.small()?,
                params: r.small()?,
                lines: LineCounts { code: r.small()?, comment: r.small()?, blank: r.small()? },
            }),
        };
        let parent = r.int()?.checked_sub(1).map(|p| p as usize);
        let mut parts: Vec<&str> = Vec::new();
        if let Some(p) = parent.and_then(|p| symbols.get(p)) {
            parts.push(&p.qualified_name);
        }
        if !scope.is_empty() {
            parts.push(&scope);
        }
        parts.push(&name);
        let qualified_name = parts.join(sep);
        let signature = if signature.is_empty() { format!("#define {name}") } else { signature };
        symbols.push(Symbol {
            name,
            qualified_name,
            kind,
            line,
            end_line,
            name_line,
            column,
            signature,
            doc: None,
            metrics,
            parent,
        });
    }
    let count = r.int()? as usize;
    let mut imports = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let target = r.str()?;
        let names = (0..r.int()?).map(|_| r.str()).collect::<Option<Vec<_>>>()?;
        let kind = match r.int()? {
            1 => ImportKind::Include,
            2 => ImportKind::SystemInclude,
            3 => ImportKind::ModDecl,
            _ => ImportKind::Import,
        };
        imports.push(Import { target, names, kind, line: r.small()? });
    }
    Some((symbols, imports))
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

    /// What is known of these paths, and of every path under them.
    pub(crate) fn known_under(
        &self,
        paths: &[String],
    ) -> Result<HashMap<String, Known>, ScanError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, path, hash, size, mtime_ns FROM files WHERE path = ?1 \
             OR (path > ?2 AND path < ?3)",
        )?;
        let mut out = HashMap::new();
        for p in paths {
            // `p/` up to `p0` (the character after `/`) is everything under `p/`.
            let rows = stmt.query_map(params![p, format!("{p}/"), format!("{p}0")], |r| {
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
            for row in rows {
                let (path, known) = row?;
                out.insert(path, known);
            }
        }
        Ok(out)
    }

    pub(crate) fn begin(&mut self) -> Result<rusqlite::Transaction<'_>, ScanError> {
        Ok(self.conn.transaction()?)
    }

    /// Moves the write-ahead log into the database file and empties it (after a large
    /// update, so that the log does not hold a second copy of everything).
    pub(crate) fn checkpoint(&self) -> Result<(), ScanError> {
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
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

    /// Every file by id.
    pub(crate) fn files_by_id(&self) -> Result<HashMap<i64, FileRow>, ScanError> {
        let mut stmt = self.conn.prepare(
            "SELECT path, lang, class, size, code, comment, blank, syntax_errors, id FROM files",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(8)?, file_row(r)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let src = b"namespace ns {\nclass W {\n  int size() const { return n; }\n};\n}\n#define MAX 10\n#define SQ(x) ((x)*(x))\n#include <vector>\nint ns::W::f(int a) { if (a) return 1; return 0; }\n";
        let facts = crate::extract(Lang::Cpp, src).unwrap();
        let (symbols, imports) = decode(Some(encode(&facts)), Some(Lang::Cpp)).unwrap();
        let expected: Vec<Symbol> =
            facts.symbols.iter().cloned().map(|s| Symbol { doc: None, ..s }).collect();
        assert_eq!(symbols, expected);
        assert_eq!(imports, facts.imports);
        assert!(symbols.iter().any(|s| s.qualified_name == "ns::W::f"));
        assert!(decode(Some(vec![1, 2, 3]), None).is_err(), "garbage is an error, not a panic");
    }
}
