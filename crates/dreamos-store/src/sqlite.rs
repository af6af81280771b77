//! The SQLite backend: one database file in WAL mode, one writer thread that group-commits,
//! a pool of read connections (sqlx), and direct connections for point reads.
//!
//! Every write request is sent to the writer thread, which owns the one write connection
//! (rusqlite, see `sqlite_conn`). The writer takes the first waiting request
//! and every other one already queued (up to `max_group`), runs them all in one `BEGIN
//! IMMEDIATE` transaction and commits once, then answers each. Many concurrent callers thus
//! share one commit, and there is never a second writer to meet "database is locked". If a
//! request hits a database error, the batch is rolled back and its requests are run again one
//! transaction each, so one bad request cannot fail its neighbours.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dreamos_core::{Clock, Task, TaskEvent, TaskId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::batch::apply_group;
use crate::ops::{Ctx, Request, Response};
use crate::sqlite_conn::{PointReads, WriterConn, run_ready};
use crate::types::{ApiToken, StateCount, StoreConfig, TaskFilter};
use crate::{Backend, Result, Signals, Store, StoreError, migrate, reads};

enum Msg {
    Write(Request, oneshot::Sender<Result<Response>>),
    Close(oneshot::Sender<()>),
}

#[derive(Debug)]
pub(crate) struct SqliteStore {
    writer: mpsc::Sender<Msg>,
    reads: SqlitePool,
    points: PointReads,
    signals: Arc<Signals>,
    clock: Arc<dyn Clock>,
    audit_key: Option<crate::AuditKey>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl SqliteStore {
    pub(crate) async fn open(
        path: &Path,
        config: StoreConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let audit_key = config.audit_key.clone();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Config(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if config.sqlite_full_sync {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-32768")
            .pragma("temp_store", "memory")
            // Claims return up to hundreds of rows; sqlx's default row channel (50) would make
            // its worker thread and the writer take turns.
            .row_buffer_size(4096);
        // Migrations run through sqlx (its migrator records versions and checksums); the
        // connection is closed before the writer opens its own.
        let mut conn = SqliteConnection::connect_with(&options).await?;
        migrate::migrator(Backend::Sqlite).run(&mut conn).await?;
        conn.close().await?;
        let writer_conn = WriterConn::open(path, config.sqlite_full_sync)?;
        let reads = SqlitePoolOptions::new()
            .max_connections(config.sqlite_readers.max(1))
            .connect_with(options.read_only(true))
            .await?;
        let points = PointReads::open(path, config.sqlite_readers as usize)?;
        let signals = Arc::new(Signals::default());
        let (writer, inbox) = mpsc::channel(config.max_group.max(1) * 4);
        let thread_signals = signals.clone();
        let thread_clock = clock.clone();
        std::thread::Builder::new()
            .name("dreamos-sqlite-writer".into())
            .spawn(move || run_writer(writer_conn, inbox, config, thread_clock, thread_signals))
            .map_err(|e| StoreError::Config(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { writer, reads, points, signals, clock, audit_key })
    }
}

/// The writer thread: takes every request waiting (up to `max_group`), commits them together,
/// answers each, then wakes whoever waits for the work they made.
fn run_writer(
    mut conn: WriterConn,
    mut inbox: mpsc::Receiver<Msg>,
    config: StoreConfig,
    clock: Arc<dyn Clock>,
    signals: Arc<Signals>,
) {
    let mut batch: Vec<(Request, oneshot::Sender<Result<Response>>)> = Vec::new();
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = inbox.blocking_recv() else { break };
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| inbox.try_recv().ok())) {
            match msg {
                Msg::Write(request, reply) => batch.push((request, reply)),
                Msg::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
            if batch.len() >= config.max_group {
                break;
            }
        }
        if batch.is_empty() {
            continue;
        }
        let ctx = Ctx {
            now: clock.now_ms(),
            aging_ms: config.aging_ms,
            fair_spacing_ms: config.fair_spacing_ms,
            audit_key: config.audit_key.clone(),
        };
        let answers = commit_group(&mut conn, &ctx, &batch);
        let mut wake: Option<Option<usize>> = None;
        let mut cancels = false;
        for ((_, reply), answer) in batch.drain(..).zip(answers) {
            if let Ok(response) = &answer {
                cancels |= crate::ops::stops_running_task(response);
                wake = match (wake, response.new_work()) {
                    (w, None) => w,
                    (None, n) => n,
                    (Some(Some(a)), Some(Some(b))) => Some(Some(a + b)),
                    _ => Some(None),
                };
            }
            let _ = reply.send(answer);
        }
        if let Some(new_work) = wake {
            signals.bump(new_work);
        }
        if cancels {
            signals.cancel_requested();
        }
    }
    drop(conn);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

fn commit_group(
    conn: &mut WriterConn,
    ctx: &Ctx,
    batch: &[(Request, oneshot::Sender<Result<Response>>)],
) -> Vec<Result<Response>> {
    if batch.len() > 1 {
        match run_in_tx(conn, ctx, batch.iter().map(|(r, _)| r)) {
            Ok(answers) => return answers,
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "group commit failed; retrying its requests one by one")
            }
        }
    }
    let mut answers = Vec::with_capacity(batch.len());
    for (request, _) in batch {
        answers.push(match run_in_tx(conn, ctx, std::iter::once(request)) {
            Ok(mut one) => one.pop().unwrap_or(Err(StoreError::Closed)),
            Err(e) => Err(e),
        });
    }
    answers
}

/// Runs requests in one transaction. Requests failing a check (logical errors) get their
/// error as their answer; any database error rolls back everything and is returned.
fn run_in_tx<'a>(
    conn: &mut WriterConn,
    ctx: &Ctx,
    requests: impl Iterator<Item = &'a Request>,
) -> Result<Vec<Result<Response>>> {
    conn.batch("BEGIN IMMEDIATE")?;
    let requests: Vec<&Request> = requests.collect();
    let answers = match run_ready(apply_group(conn, ctx, &requests)) {
        Ok(answers) => answers,
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            return Err(e);
        }
    };
    if let Err(e) = conn.batch("COMMIT") {
        let _ = conn.batch("ROLLBACK");
        return Err(e);
    }
    Ok(answers)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn signals(&self) -> &Signals {
        &self.signals
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn audit_key(&self) -> Option<&crate::AuditKey> {
        self.audit_key.as_ref()
    }

    async fn write(&self, request: Request) -> Result<Response> {
        let (reply, answer) = oneshot::channel();
        self.writer.send(Msg::Write(request, reply)).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn get(&self, id: TaskId) -> Result<Option<Task>> {
        self.points.with(|c| run_ready(reads::get(c, id)))
    }

    async fn detail(&self, id: TaskId) -> Result<Option<(Task, Vec<TaskEvent>)>> {
        self.points.with(|c| {
            run_ready(async {
                if let Some(found) = reads::detail(c, id).await? {
                    return Ok(Some(found));
                }
                match reads::get(c, id).await? {
                    Some(task) => Ok(Some((task, reads::events(c, id).await?))),
                    None => Ok(None),
                }
            })
        })
    }

    async fn events(&self, id: TaskId) -> Result<Vec<TaskEvent>> {
        reads::events(&mut *self.reads.acquire().await?, id).await
    }

    async fn list(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        reads::list(&mut *self.reads.acquire().await?, filter).await
    }

    async fn counts(&self) -> Result<Vec<StateCount>> {
        reads::counts(&mut *self.reads.acquire().await?).await
    }

    async fn next_deadline(&self) -> Result<Option<i64>> {
        reads::next_deadline(&mut *self.reads.acquire().await?, self.clock.now_ms()).await
    }

    async fn find_token(&self, id: &str) -> Result<Option<ApiToken>> {
        self.points.with(|c| run_ready(reads::find_token(c, id)))
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        reads::list_tokens(&mut *self.reads.acquire().await?).await
    }

    async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.writer.send(Msg::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
        self.reads.close().await;
    }
}
