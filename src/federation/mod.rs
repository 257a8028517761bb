//! Federation: node identity, server names, discovery and peer links (DESIGN.md §4).
pub mod client;
pub mod discovery;
pub mod key;
pub mod links;
pub mod proofs;
pub mod rotation;
pub mod server_id;
