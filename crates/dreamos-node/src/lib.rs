//! Dream.OS node: the HTTP API, authentication, the built-in local agents and metrics, around
//! the queue.
//!
//! [`Node::start`] brings a node up from a [`Config`]; [`api::router`] builds the API alone so
//! tests can drive it in-process.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use dreamos_node::{Config, Node, Overrides};
//! let config = Config::load(std::path::Path::new(".dreamos"), None, Overrides::default())?;
//! let node = Node::start(config).await?;
//! println!("listening on {}", node.addr);
//! node.shutdown().await?;
//! # Ok(()) }
//! ```

mod admin;
pub mod agent_routes;
pub mod agents;
pub mod api;
pub mod audit;
pub mod auth;
mod code;
pub mod config;
pub mod discord;
mod error;
mod events;
pub mod exec;
pub mod limits;
mod messages;
pub mod metrics;
mod node;
pub mod openapi;
pub mod orchestrator;
pub mod protocol;
mod sandbox;
mod serve;
pub mod starter;
mod tls;
pub mod views;
pub mod workspaces;

pub use config::{Config, Overrides};
pub use error::{ApiError, status_of};
pub use node::{NODE_FILE, Node, running_node_url};
