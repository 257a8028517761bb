//! Hearth: a self-hosted, federated auth homeserver. One binary, one SQLite file, one ed25519
//! node key; every seed auth API over gRPC. See ARCHITECTURE.md for the map.
//!
//! Start a node with [`Node::start`]; `main.rs` is only the command line around it.
pub mod address_guard;
pub mod api;
pub mod federation;
pub mod http;
pub mod keys;
pub mod logging;
pub mod mail;
mod node;
pub mod notice_files;
pub mod pb;
pub mod providers;
pub mod server;

// The core and the store crates under the paths this crate, its tests and its users name them
// by (`hearth::domain::…`, `crate::store::sqlite`).
pub use hearth_core::{clock, config, domain, identity, secret};
pub use hearth_store as store;

pub use config::Config;
pub use node::{Node, Role, RunningNode, StartError};
