//! Dream.OS domain types: tasks, priorities, states, leases, retry policy and the clock.
//!
//! This crate does no I/O and knows nothing of SQL, HTTP or Discord. Every layer above
//! speaks in these types; the edges convert them to and from their wire formats.
//!
//! ```
//! use dreamos_core::{Priority, TaskState};
//! assert!(Priority::Critical > Priority::Low);
//! assert!(TaskState::Succeeded.is_terminal());
//! ```

mod clock;
mod error;
mod retry;
mod task;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorCode, ParseError};
pub use retry::RetryPolicy;
pub use task::{
    Completion, EventKind, Lease, NewTask, Outcome, Priority, Progress, Task, TaskError, TaskEvent,
    TaskId, TaskState, TaskSummary, error_class,
};
