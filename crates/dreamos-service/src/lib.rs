//! The service layer: one place where policy lives.
//!
//! Every operation takes a [`Principal`] and is checked here, once, whatever edge it came
//! from: the HTTP API, the agent protocol, local agents, Discord. The edges extract a
//! principal and a request, call the service, and render its answer; none of them decides
//! rights. This crate has no HTTP, Discord or MCP in it.

mod error;
pub mod policy;
mod principal;
mod tasks;
pub mod workspaces;

pub use error::ServiceError;
pub use principal::{Principal, Role};
pub use tasks::Tasks;
