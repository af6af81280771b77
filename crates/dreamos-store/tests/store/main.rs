//! The store's behaviour suite. Every test runs against SQLite and PostgreSQL.

mod agents;
mod audit;
mod behaviour;
mod common;
mod properties;
