//! The PostgreSQL backend: a connection pool, one transaction per request, `FOR UPDATE SKIP
//! LOCKED` claims, and `LISTEN/NOTIFY` so that a submission on one node wakes claimers on
//! every node. Transactions that lose a deadlock or serialization race are retried.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dreamos_core::{Clock, Task, TaskEvent, TaskId};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor};

use crate::ops::{Ctx, Request, Response, apply};
use crate::types::{ApiToken, StateCount, StoreConfig, TaskFilter};
use crate::{Backend, Result, Signals, Store, StoreError, migrate, reads};

#[derive(Debug)]
pub(crate) struct PgStore {
    pool: PgPool,
    signals: Arc<Signals>,
    clock: Arc<dyn Clock>,
    config: StoreConfig,
    channel: String,
    listener: tokio::task::JoinHandle<()>,
}

/// How often a transaction that lost a deadlock or serialization race is tried again.
const TRANSIENT_RETRIES: usize = 8;

impl PgStore {
    pub(crate) async fn open(
        url: &str,
        config: StoreConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let mut options: PgConnectOptions =
            url.parse().map_err(|e| StoreError::Config(format!("bad PostgreSQL url: {e}")))?;
        let schema = config.pg_schema.clone();
        if let Some(schema) = &schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(StoreError::Config(format!("bad schema name `{schema}`")));
            }
            let admin =
                PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
            admin.execute(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}"))).await?;
            admin.close().await;
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        migrate::migrator(Backend::Postgres).run(&pool).await?;
        let signals = Arc::new(Signals::default());
        let channel = format!("dreamos_work_{}", schema.as_deref().unwrap_or("public"));
        let listener = tokio::spawn(listen(pool.clone(), channel.clone(), signals.clone()));
        Ok(Self { pool, signals, clock, config, channel, listener })
    }
}

/// The payload of a notification that a running task was asked to stop (others wake claimers).
const CANCEL: &str = "cancel";

/// Forwards notifications from other nodes (and this one) to the local signals. If the
/// connection drops, waiters fall back to their polling interval until it is back.
async fn listen(pool: PgPool, channel: String, signals: Arc<Signals>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(&channel).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        while let Ok(notification) = listener.recv().await {
            if notification.payload() == CANCEL {
                signals.cancel_requested();
            } else {
                signals.bump(None);
            }
        }
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn signals(&self) -> &Signals {
        &self.signals
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn audit_key(&self) -> Option<&crate::AuditKey> {
        self.config.audit_key.as_ref()
    }

    async fn write(&self, request: Request) -> Result<Response> {
        let mut tries = 0;
        loop {
            let ctx = Ctx {
                now: self.clock.now_ms(),
                aging_ms: self.config.aging_ms,
                fair_spacing_ms: self.config.fair_spacing_ms,
                audit_key: self.config.audit_key.clone(),
            };
            let mut tx = self.pool.begin().await?;
            let answer = apply(&mut *tx, &ctx, &request).await;
            let outcome = match answer {
                Ok(response) => {
                    let wake = response.new_work();
                    let cancels = crate::ops::stops_running_task(&response);
                    if wake.is_some() || cancels {
                        // NOTIFY is delivered at commit, and coalesced by PostgreSQL within
                        // one transaction.
                        sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(&self.channel)
                            .bind(if cancels { CANCEL } else { "" })
                            .execute(&mut *tx)
                            .await?;
                    }
                    match tx.commit().await {
                        Ok(()) => {
                            if let Some(new_work) = wake {
                                self.signals.bump(new_work);
                            }
                            if cancels {
                                self.signals.cancel_requested();
                            }
                            return Ok(response);
                        }
                        Err(e) => Err(StoreError::from(e)),
                    }
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            };
            match outcome {
                Err(e) if e.is_transient() && tries < TRANSIENT_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(rand_backoff(tries))).await;
                }
                other => return other,
            }
        }
    }

    async fn get(&self, id: TaskId) -> Result<Option<Task>> {
        reads::get(&mut *self.pool.acquire().await?, id).await
    }

    async fn detail(&self, id: TaskId) -> Result<Option<(Task, Vec<TaskEvent>)>> {
        let mut c = self.pool.acquire().await?;
        if let Some(found) = reads::detail(&mut *c, id).await? {
            return Ok(Some(found));
        }
        match reads::get(&mut *c, id).await? {
            Some(task) => Ok(Some((task, reads::events(&mut *c, id).await?))),
            None => Ok(None),
        }
    }

    async fn events(&self, id: TaskId) -> Result<Vec<TaskEvent>> {
        reads::events(&mut *self.pool.acquire().await?, id).await
    }

    async fn list(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        reads::list(&mut *self.pool.acquire().await?, filter).await
    }

    async fn counts(&self) -> Result<Vec<StateCount>> {
        reads::counts(&mut *self.pool.acquire().await?).await
    }

    async fn next_deadline(&self) -> Result<Option<i64>> {
        reads::next_deadline(&mut *self.pool.acquire().await?, self.clock.now_ms()).await
    }

    async fn find_token(&self, id: &str) -> Result<Option<ApiToken>> {
        reads::find_token(&mut *self.pool.acquire().await?, id).await
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        reads::list_tokens(&mut *self.pool.acquire().await?).await
    }

    async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }
}

fn rand_backoff(tries: usize) -> u64 {
    let ceiling = 2_u64.saturating_pow(tries as u32).min(200);
    (ceiling / 2) + (std::process::id() as u64 + tries as u64 * 7919) % (ceiling / 2 + 1)
}
