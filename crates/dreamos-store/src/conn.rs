//! The small connection interface the transitions in [`crate::ops`] are written against, with
//! one implementation per backend. Keeping it this narrow (execute, fetch, typed getters) is
//! what lets one body of SQL logic serve SQLite and PostgreSQL alike.

use std::future::Future;

use sqlx::{AssertSqlSafe, PgConnection, Row, SqlSafeStr, SqlStr, SqliteConnection};

use crate::StoreError;

/// A bound SQL parameter. Integers are always 64-bit (`BIGINT` on PostgreSQL).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<f64>> for Arg {
    fn from(v: Option<f64>) -> Self {
        Arg::Real(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}

/// Builds an argument list: `args![a, b, c]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => { vec![$($crate::conn::Arg::from($value)),*] };
}
pub(crate) use args;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Row locking for a read that precedes a write in the same transaction. SQLite has a
    /// single writer, so it needs none.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// The table a claim scans. SQLite's planner, without statistics, would walk the state
    /// index and sort; the partial queue index gives the order directly.
    pub(crate) fn claim_source(self) -> &'static str {
        match self {
            Dialect::Sqlite => "tasks INDEXED BY tasks_ready",
            Dialect::Postgres => "tasks",
        }
    }

    /// Row locking for claims: concurrent claimers skip each other's rows instead of waiting.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

pub(crate) trait RowLike {
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn opt_real(&self, col: &str) -> Result<Option<f64>, StoreError>;
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
}

pub(crate) trait Conn: Send {
    type Row: RowLike + Send;
    const DIALECT: Dialect;

    fn execute(
        &mut self,
        sql: SqlStr,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn fetch_all(
        &mut self,
        sql: SqlStr,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send;

    fn fetch_optional(
        &mut self,
        sql: SqlStr,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<Option<Self::Row>, StoreError>> + Send;
}

macro_rules! impl_conn {
    ($module:ident, $conn:ty, $row:ty, $db:ty, $dialect:expr, $prepare:ident) => {
        mod $module {
            use super::*;
            impl RowLike for $row {
                fn int(&self, col: &str) -> Result<i64, StoreError> {
                    Ok(self.try_get::<i64, _>(col)?)
                }
                fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
                    Ok(self.try_get::<Option<i64>, _>(col)?)
                }
                fn opt_real(&self, col: &str) -> Result<Option<f64>, StoreError> {
                    Ok(self.try_get::<Option<f64>, _>(col)?)
                }
                fn text(&self, col: &str) -> Result<String, StoreError> {
                    Ok(self.try_get::<String, _>(col)?)
                }
                fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
                    Ok(self.try_get::<Option<String>, _>(col)?)
                }
            }

            fn bind<'q>(
                mut query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
                args: Vec<Arg>,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
                for arg in args {
                    query = match arg {
                        Arg::Int(v) => query.bind(v),
                        Arg::Real(v) => query.bind(v),
                        Arg::Text(v) => query.bind(v),
                    };
                }
                query
            }

            impl Conn for $conn {
                type Row = $row;
                const DIALECT: Dialect = $dialect;

                async fn execute(
                    &mut self,
                    sql: SqlStr,
                    args: Vec<Arg>,
                ) -> Result<u64, StoreError> {
                    let (sql, args) = $prepare(sql, args);
                    let query = bind(sqlx::query::<$db>(sql), args);
                    Ok(query.execute(&mut *self).await?.rows_affected())
                }

                async fn fetch_all(
                    &mut self,
                    sql: SqlStr,
                    args: Vec<Arg>,
                ) -> Result<Vec<$row>, StoreError> {
                    let (sql, args) = $prepare(sql, args);
                    let query = bind(sqlx::query::<$db>(sql), args);
                    Ok(query.fetch_all(&mut *self).await?)
                }

                async fn fetch_optional(
                    &mut self,
                    sql: SqlStr,
                    args: Vec<Arg>,
                ) -> Result<Option<$row>, StoreError> {
                    let (sql, args) = $prepare(sql, args);
                    let query = bind(sqlx::query::<$db>(sql), args);
                    Ok(query.fetch_optional(&mut *self).await?)
                }
            }
        }
    };
}

impl_conn!(
    sqlite_conn,
    SqliteConnection,
    sqlx::sqlite::SqliteRow,
    sqlx::Sqlite,
    Dialect::Sqlite,
    positional
);
impl_conn!(
    pg_conn,
    PgConnection,
    sqlx::postgres::PgRow,
    sqlx::Postgres,
    Dialect::Postgres,
    numbered
);

/// PostgreSQL takes the `$N` placeholders as written.
fn numbered(sql: SqlStr, args: Vec<Arg>) -> (SqlStr, Vec<Arg>) {
    (sql, args)
}

/// SQLite gets anonymous `?` placeholders, one per occurrence in text order, with the
/// arguments laid out to match. Named parameters (`$N`) are looked up by a linear scan in
/// SQLite (`sqlite3_bind_parameter_name`), which made a statement with a few thousand of them
/// cost milliseconds to bind.
fn positional(sql: SqlStr, args: Vec<Arg>) -> (SqlStr, Vec<Arg>) {
    let text = sql.as_str();
    if !text.contains('$') {
        return (sql, args);
    }
    let mut out = String::with_capacity(text.len());
    let mut laid_out = Vec::with_capacity(args.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            if end > start {
                let n: usize = text[start..end].parse().unwrap_or(0);
                laid_out.push(args.get(n.wrapping_sub(1)).cloned().unwrap_or(Arg::Int(None)));
                out.push('?');
                i = end;
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    (dynamic(out), laid_out)
}

/// `$start, $start+1, ...` placeholders for an `IN (...)` list of `n` values.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// A fixed SQL text.
pub(crate) fn fixed(sql: &'static str) -> SqlStr {
    sql.into_sql_str()
}

/// SQL text built at run time. Only placeholders, column lists and table names chosen by this
/// crate are ever formatted into it; values are always bound.
pub(crate) fn dynamic(sql: String) -> SqlStr {
    AssertSqlSafe(sql).into_sql_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_placeholders_follow_the_text() {
        let (sql, args) = positional(fixed("SELECT $2, $1, $2 WHERE x = '$'"), args![10_i64, "b"]);
        assert_eq!(sql.as_str(), "SELECT ?, ?, ? WHERE x = '$'");
        let rendered: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        assert_eq!(rendered, vec!["Text(Some(\"b\"))", "Int(Some(10))", "Text(Some(\"b\"))"]);
    }
}
