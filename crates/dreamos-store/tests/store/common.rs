//! Test harness: opens a fresh store of either backend with a hand-moved clock.
//!
//! PostgreSQL tests use the local server (`DREAMOS_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`) with one fresh schema per test. When the server
//! is absent they are skipped with a message, except under `CI=true`, where that is a failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dreamos_core::ManualClock;
use dreamos_store::{Store, StoreConfig, open};

pub const START_MS: i64 = 1_700_000_000_000;
pub const AGING_MS: i64 = 60_000;

pub struct Harness {
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<String>,
    sqlite_url: Option<String>,
}

impl Harness {
    /// Runs SQL on the store's database behind its back (to play an attacker with database
    /// access). `TABLE` in `sql` is replaced by the schema-qualified `table`.
    pub async fn tamper(&self, table: &str, sql: &str) {
        use sqlx::Executor;
        match (&self.sqlite_url, &self.pg_schema) {
            (Some(url), _) => {
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .unwrap();
                pool.execute(sqlx::AssertSqlSafe(sql.replace("TABLE", table))).await.unwrap();
                pool.close().await;
            }
            (None, Some(schema)) => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&pg_url())
                    .await
                    .unwrap();
                let qualified = format!("{schema}.{table}");
                pool.execute(sqlx::AssertSqlSafe(sql.replace("TABLE", &qualified))).await.unwrap();
                pool.close().await;
            }
            _ => unreachable!(),
        }
    }

    /// Closes the store and drops a PostgreSQL test schema, so runs leave nothing behind.
    pub async fn finish(self) {
        self.store.close().await;
        if let Some(schema) = self.pg_schema {
            use sqlx::Executor;
            if let Ok(pool) =
                sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&pg_url()).await
            {
                let _ = pool
                    .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                    .await;
                pool.close().await;
            }
        }
    }
}

/// The audit key of every test store: the chain is keyed, as a node's is.
pub fn audit_key() -> dreamos_store::AuditKey {
    dreamos_store::AuditKey::new(&[7u8; 32], 0)
}

pub fn config() -> StoreConfig {
    StoreConfig { aging_ms: AGING_MS, audit_key: Some(audit_key()), ..StoreConfig::default() }
}

pub async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = open(&url, config(), Arc::new(clock.clone())).await.unwrap();
    Harness { store, clock, _dir: Some(dir), pg_schema: None, sqlite_url: Some(url) }
}

pub fn pg_url() -> String {
    std::env::var("DREAMOS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

static SCHEMA_SEQ: AtomicUsize = AtomicUsize::new(0);

pub async fn postgres() -> Option<Harness> {
    let clock = ManualClock::new(START_MS);
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        SCHEMA_SEQ.fetch_add(1, Ordering::SeqCst),
        START_MS % 1000
    );
    let config = StoreConfig { pg_schema: Some(schema.clone()), max_connections: 8, ..config() };
    match open(&pg_url(), config, Arc::new(clock.clone())).await {
        Ok(store) => {
            Some(Harness { store, clock, _dir: None, pg_schema: Some(schema), sqlite_url: None })
        }
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is required in CI but unreachable at {}: {e}", pg_url());
            }
            eprintln!("SKIPPED: PostgreSQL unreachable at {} ({e}); set DREAMOS_TEST_PG", pg_url());
            None
        }
    }
}

/// Defines each listed test once per backend: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let h = $crate::common::sqlite().await;
                    super::$name(&h).await;
                    h.finish().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(h) = $crate::common::postgres().await {
                        super::$name(&h).await;
                        h.finish().await;
                    }
                }
            }
        )*
    };
}
