//! The SQLite writer's connection: rusqlite, used synchronously on the writer's own thread.
//!
//! sqlx runs every SQLite statement on a worker thread and streams rows back over a channel;
//! with a dozen statements per group commit, those thread hand-offs (futex wake-ups and
//! context switches) cost more CPU than SQLite itself. The writer already owns a thread, so it
//! talks to SQLite directly. It implements [`Conn`] like the sqlx connections, so the
//! transitions in `ops` and `batch` are the same code on every backend; its futures are ready
//! at their first poll, and [`run_ready`] drives them without a runtime.
//!
//! Both drivers link the same `libsqlite3-sys`, so reads (on sqlx's pool) and writes (here)
//! use one SQLite library.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Value;
use sqlx::SqlStr;

use crate::StoreError;
use crate::conn::{Arg, Conn, Dialect, RowLike};

/// Statements kept prepared. The set-based paths build statements whose text depends on the
/// number of rows, so there are more distinct texts than with fixed SQL.
const STATEMENT_CACHE: usize = 256;

pub(crate) struct WriterConn {
    conn: rusqlite::Connection,
}

impl WriterConn {
    pub(crate) fn open(path: &Path, full_sync: bool) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; \
             PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;",
            if full_sync { "FULL" } else { "NORMAL" }
        ))?;
        Ok(Self { conn })
    }

    /// A read-only connection for point reads (see [`PointReads`]).
    pub(crate) fn open_reader(path: &Path) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch("PRAGMA cache_size = -32768;")?;
        Ok(Self { conn })
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn prepare(
        &self,
        sql: &SqlStr,
        args: &[Arg],
    ) -> Result<rusqlite::CachedStatement<'_>, StoreError> {
        let mut statement = self.conn.prepare_cached(&numbered(sql.as_str()))?;
        for (i, arg) in args.iter().enumerate() {
            match arg {
                Arg::Int(v) => statement.raw_bind_parameter(i + 1, v)?,
                Arg::Real(v) => statement.raw_bind_parameter(i + 1, v)?,
                Arg::Text(v) => statement.raw_bind_parameter(i + 1, v.as_deref())?,
            }
        }
        Ok(statement)
    }

    fn rows(&self, sql: &SqlStr, args: &[Arg], limit: usize) -> Result<Vec<OwnedRow>, StoreError> {
        let mut statement = self.prepare(sql, args)?;
        let columns: Arc<[String]> =
            statement.column_names().into_iter().map(str::to_owned).collect();
        let width = columns.len();
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(row) = rows.next()? else { break };
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                let value = Value::try_from(row.get_ref(i)?)
                    .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))?;
                values.push(value);
            }
            out.push(OwnedRow { columns: columns.clone(), values });
        }
        // Statements with side effects (UPDATE ... RETURNING) must run to completion even when
        // only the first row is wanted.
        while rows.next()?.is_some() {}
        Ok(out)
    }
}

/// SQLite reads `?N` as the N-th argument (bound by index), whereas `$N` is a named parameter
/// that SQLite resolves by a linear scan of the statement's names.
fn numbered(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut start = 0;
    for i in 0..bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            out.push_str(&sql[start..i]);
            out.push('?');
            start = i + 1;
        }
    }
    out.push_str(&sql[start..]);
    out
}

/// A row copied out of its statement, so that it outlives it.
pub(crate) struct OwnedRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl OwnedRow {
    fn value(&self, col: &str) -> Result<&Value, StoreError> {
        self.columns
            .iter()
            .position(|c| c == col)
            .map(|i| &self.values[i])
            .ok_or_else(|| StoreError::Corrupt(format!("no column `{col}` in the result")))
    }
}

fn mismatch(col: &str, wanted: &str, got: &Value) -> StoreError {
    StoreError::Corrupt(format!("column `{col}`: expected {wanted}, found {:?}", got.data_type()))
}

impl RowLike for OwnedRow {
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        self.opt_int(col)?.ok_or_else(|| mismatch(col, "an integer", &Value::Null))
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Integer(v) => Ok(Some(*v)),
            other => Err(mismatch(col, "an integer", other)),
        }
    }

    fn opt_real(&self, col: &str) -> Result<Option<f64>, StoreError> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Real(v) => Ok(Some(*v)),
            Value::Integer(v) => Ok(Some(*v as f64)),
            other => Err(mismatch(col, "a number", other)),
        }
    }

    fn text(&self, col: &str) -> Result<String, StoreError> {
        self.opt_text(col)?.ok_or_else(|| mismatch(col, "text", &Value::Null))
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v.clone())),
            other => Err(mismatch(col, "text", other)),
        }
    }
}

impl Conn for WriterConn {
    type Row = OwnedRow;
    const DIALECT: Dialect = Dialect::Sqlite;

    fn execute(
        &mut self,
        sql: SqlStr,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let result = self.prepare(&sql, &args).and_then(|mut s| Ok(s.raw_execute()? as u64));
        std::future::ready(result)
    }

    fn fetch_all(
        &mut self,
        sql: SqlStr,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<Vec<OwnedRow>, StoreError>> + Send {
        std::future::ready(self.rows(&sql, &args, usize::MAX))
    }

    fn fetch_optional(
        &mut self,
        sql: SqlStr,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<Option<OwnedRow>, StoreError>> + Send {
        std::future::ready(self.rows(&sql, &args, 1).map(|rows| rows.into_iter().next()))
    }
}

/// Drives a future whose every await is ready at once (the writer's transitions over
/// [`WriterConn`]) to its end on the current thread.
pub(crate) fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // Unreachable with WriterConn; yielding keeps a future that does wait correct.
        std::thread::yield_now();
    }
}

/// Read connections for point reads (a task, a task with its history, a token), used
/// synchronously on the calling thread: such a read takes microseconds in WAL mode (readers
/// never wait for the writer), less than handing it to sqlx's connection thread and back.
/// Reads that may return many rows stay on sqlx's pool, off the async threads.
pub(crate) struct PointReads {
    conns: Vec<std::sync::Mutex<WriterConn>>,
    next: std::sync::atomic::AtomicUsize,
}

impl PointReads {
    pub(crate) fn open(path: &Path, count: usize) -> Result<Self, StoreError> {
        let conns = (0..count.max(1))
            .map(|_| WriterConn::open_reader(path).map(std::sync::Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self { conns, next: Default::default() })
    }

    /// Runs `read` on a free connection (one that is not, it waits for: a read holds it only
    /// for the read, never across an await).
    pub(crate) fn with<T>(&self, read: impl FnOnce(&mut WriterConn) -> T) -> T {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(mut c) = self.conns[(start + i) % n].try_lock() {
                return read(&mut c);
            }
        }
        let mut c = self.conns[start].lock().unwrap_or_else(|e| e.into_inner());
        read(&mut c)
    }
}

impl std::fmt::Debug for PointReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PointReads({})", self.conns.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_placeholders_become_numbered() {
        assert_eq!(
            numbered("SELECT $1, $12 WHERE x = '$' AND y = $2"),
            "SELECT ?1, ?12 WHERE x = '$' AND y = ?2"
        );
    }
}
