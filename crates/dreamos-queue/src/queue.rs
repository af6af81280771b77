//! Submission rules and waiting without polling.

use std::sync::Arc;
use std::time::Duration;

use dreamos_core::{NewTask, Priority, RetryPolicy, Task, TaskId, TaskSummary};
use dreamos_store::{ClaimRequest, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::{KindRegistry, QueueError};

/// Queue policy. Every field has a documented default suited to one machine.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Largest accepted payload, serialized.
    pub max_payload_bytes: usize,
    /// Most tasks one submission may carry.
    pub max_batch: usize,
    /// Retry policy of tasks that do not set their own attempts.
    pub default_retry: RetryPolicy,
    /// Finished tasks move to the archive this long after they finish.
    pub archive_after_ms: i64,
    /// Waiters re-check at least this often, in case a wake-up was lost (for example while
    /// PostgreSQL's LISTEN connection is being re-established).
    pub poll_fallback: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 256 * 1024,
            max_batch: 10_000,
            default_retry: RetryPolicy::default(),
            archive_after_ms: 7 * 24 * 3600 * 1000,
            poll_fallback: Duration::from_secs(1),
        }
    }
}

/// A submission before validation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub kind: String,
    #[serde(default = "empty_object")]
    pub payload: Value,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub run_at_ms: Option<i64>,
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    #[serde(default)]
    pub depends_on: Vec<TaskId>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl SubmitRequest {
    pub fn new(kind: &str, payload: Value) -> Self {
        Self {
            kind: kind.into(),
            payload,
            priority: Priority::Normal,
            capabilities: Vec::new(),
            max_attempts: None,
            run_at_ms: None,
            timeout_ms: None,
            depends_on: Vec::new(),
            idempotency_key: None,
        }
    }
}

struct Inner {
    store: Arc<dyn Store>,
    kinds: KindRegistry,
    config: QueueConfig,
}

/// The queue service; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("store", &self.inner.store.backend()).finish()
    }
}

impl Queue {
    pub fn new(store: Arc<dyn Store>, kinds: KindRegistry, config: QueueConfig) -> Self {
        Self { inner: Arc::new(Inner { store, kinds, config }) }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn kinds(&self) -> &KindRegistry {
        &self.inner.kinds
    }

    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    /// Checks every request and turns it into a task to store. Nothing is stored if any
    /// request is refused; the error names the first bad one by its index.
    pub fn validate(
        &self,
        submitter: &str,
        requests: Vec<SubmitRequest>,
    ) -> Result<Vec<NewTask>, QueueError> {
        let config = &self.inner.config;
        if requests.is_empty() {
            return Err(QueueError::BadRequest("a submission needs at least one task".into()));
        }
        if requests.len() > config.max_batch {
            return Err(QueueError::BadRequest(format!(
                "{} tasks in one submission; the limit is {}",
                requests.len(),
                config.max_batch
            )));
        }
        requests
            .into_iter()
            .enumerate()
            .map(|(index, r)| {
                let spec =
                    self.inner.kinds.get(&r.kind).ok_or_else(|| QueueError::UnknownKind {
                        kind: r.kind.clone(),
                        known: self.inner.kinds.names().join(", "),
                    })?;
                let size = serde_json::to_vec(&r.payload).map(|v| v.len()).unwrap_or(usize::MAX);
                if size > config.max_payload_bytes {
                    return Err(QueueError::PayloadTooLarge {
                        index,
                        size,
                        limit: config.max_payload_bytes,
                    });
                }
                let problems = spec.problems(&r.payload);
                if !problems.is_empty() {
                    return Err(QueueError::InvalidPayload {
                        index,
                        kind: r.kind,
                        problems: problems.join("; "),
                    });
                }
                if r.max_attempts == Some(0) {
                    return Err(QueueError::BadRequest(format!(
                        "task {index}: max_attempts must be at least 1"
                    )));
                }
                if r.timeout_ms.is_some_and(|t| t <= 0) {
                    return Err(QueueError::BadRequest(format!(
                        "task {index}: timeout_ms must be positive"
                    )));
                }
                if r.capabilities.iter().any(|c| c.is_empty() || c.len() > 64) {
                    return Err(QueueError::BadRequest(format!(
                        "task {index}: capabilities must be 1 to 64 characters"
                    )));
                }
                if r.idempotency_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
                    return Err(QueueError::BadRequest(format!(
                        "task {index}: idempotency_key must be 1 to 200 characters"
                    )));
                }
                let mut retry = config.default_retry;
                if let Some(n) = r.max_attempts {
                    retry.max_attempts = n;
                }
                Ok(NewTask {
                    kind: r.kind,
                    payload: r.payload,
                    priority: r.priority,
                    capabilities: r.capabilities,
                    retry,
                    run_at_ms: r.run_at_ms,
                    timeout_ms: r.timeout_ms,
                    depends_on: r.depends_on,
                    idempotency_key: r.idempotency_key,
                    submitter: submitter.into(),
                })
            })
            .collect()
    }

    pub async fn submit(
        &self,
        submitter: &str,
        requests: Vec<SubmitRequest>,
    ) -> Result<Vec<TaskSummary>, QueueError> {
        let tasks = self.validate(submitter, requests)?;
        Ok(self.inner.store.submit(tasks).await?)
    }

    /// Claims up to `request.max` tasks, waiting up to `wait` for some to appear. Waiting is
    /// woken by the store's work signal (one claimer per new task), not by polling.
    pub async fn claim(
        &self,
        request: ClaimRequest,
        wait: Duration,
    ) -> Result<Vec<Task>, QueueError> {
        let store = &self.inner.store;
        let deadline = Instant::now() + wait;
        loop {
            // Registered before looking, so a wake-up between the look and the wait is kept.
            let woken = store.signals().work().notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let tasks = store.claim(request.clone()).await?;
            if !tasks.is_empty() || Instant::now() >= deadline {
                return Ok(tasks);
            }
            let fallback = Instant::now() + self.inner.config.poll_fallback;
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep_until(deadline.min(fallback)) => {}
            }
        }
    }

    /// Waits up to `wait` for the task to reach a terminal state; returns it as it then is.
    pub async fn wait_finished(&self, id: TaskId, wait: Duration) -> Result<Task, QueueError> {
        let store = &self.inner.store;
        let deadline = Instant::now() + wait;
        let mut changes = store.signals().subscribe();
        loop {
            changes.borrow_and_update();
            let task = store.get(id).await?.ok_or(dreamos_store::StoreError::NotFound(id))?;
            if task.state.is_terminal() || Instant::now() >= deadline {
                return Ok(task);
            }
            let fallback = Instant::now() + self.inner.config.poll_fallback;
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline.min(fallback)) => {}
            }
        }
    }
}
