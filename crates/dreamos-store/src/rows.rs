//! Tasks read back from rows, and the JSON stored in them.

use dreamos_core::{Priority, RetryPolicy, Task, TaskError, TaskId};

use crate::conn::RowLike;
use crate::ops::parse_state;
use crate::{Result, StoreError};

pub(crate) fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

pub(crate) fn task_from_row<R: RowLike>(r: &R, archived: bool) -> Result<Task> {
    let lease = match (r.opt_text("lease_holder")?, r.opt_int("lease_expires_at")?) {
        (Some(holder), Some(expires_at_ms)) => {
            Some(dreamos_core::Lease { holder, fence: r.int("fence")?, expires_at_ms })
        }
        _ => None,
    };
    let progress = r.opt_real("progress_percent")?.map(|percent| dreamos_core::Progress {
        percent,
        message: r.opt_text("progress_message").ok().flatten().unwrap_or_default(),
    });
    let error = match r.opt_text("error_class")? {
        Some(class) => {
            Some(TaskError { class, message: r.opt_text("error_message")?.unwrap_or_default() })
        }
        None => None,
    };
    Ok(Task {
        id: TaskId(r.int("id")?),
        kind: r.text("kind")?,
        payload: decode(&r.text("payload")?)?,
        priority: Priority::from_rank(r.int("priority")?)
            .ok_or_else(|| StoreError::Corrupt("priority out of range".into()))?,
        state: parse_state(&r.text("state")?)?,
        capabilities: decode(&r.text("capabilities")?)?,
        attempts: r.int("attempts")?.max(0) as u32,
        retry: RetryPolicy {
            max_attempts: r.int("max_attempts")?.max(0) as u32,
            base_delay_ms: r.int("backoff_base_ms")?,
            max_delay_ms: r.int("backoff_max_ms")?,
        },
        available_at_ms: r.int("available_at")?,
        timeout_ms: r.opt_int("timeout_ms")?,
        lease,
        progress,
        result: r.opt_text("result")?.map(|t| decode(&t)).transpose()?,
        error,
        depends_on: decode(&r.text("depends_on")?)?,
        idempotency_key: r.opt_text("idempotency_key")?,
        submitter: r.text("submitter")?,
        cancel_requested: r.int("cancel_requested")? != 0,
        created_at_ms: r.int("created_at")?,
        updated_at_ms: r.int("updated_at")?,
        finished_at_ms: r.opt_int("finished_at")?,
        archived,
    })
}
