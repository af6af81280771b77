//! Dream.OS task queue service: the rules around the store.
//!
//! The store keeps tasks durable and their transitions legal; this crate decides what may be
//! submitted (known kinds, payloads valid against the kind's JSON Schema, size caps), lets
//! claimers and watchers wait on change without polling, and runs the maintenance loop that
//! expires leases, wakes claimers when delayed work comes due, and archives finished tasks.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn dreamos_store::Store>) -> Result<(), dreamos_queue::QueueError> {
//! use dreamos_queue::{KindRegistry, Queue, QueueConfig, SubmitRequest};
//! let queue = Queue::new(store, KindRegistry::builtin(), QueueConfig::default());
//! let ids = queue.submit("alice", vec![SubmitRequest::new("noop", serde_json::json!({}))]).await?;
//! # Ok(()) }
//! ```

mod error;
mod kinds;
mod maintenance;
mod queue;

pub use error::QueueError;
pub use kinds::{KindRegistry, KindSpec};
pub use maintenance::spawn_maintenance;
pub use queue::{Queue, QueueConfig, SubmitRequest};
