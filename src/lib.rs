//! Hearth: a self-hosted, federated auth homeserver. One binary, one SQLite file, one ed25519
//! node key; every seed auth API over gRPC. See ARCHITECTURE.md for the map.
//!
//! Start a node with [`Node::start`]; `main.rs` is only the command line around it.
pub mod api;
pub mod clock;
pub mod cluster_keys;
pub mod config;
pub mod domain;
pub mod federation;
pub mod http;
pub mod identity;
pub mod keyfile;
pub mod logging;
pub mod mail;
mod node;
pub mod notice_files;
pub mod pb;
pub mod providers;
pub mod secret;
pub mod server;
pub mod store;

pub use config::Config;
pub use node::{Node, Role, RunningNode, StartError};
