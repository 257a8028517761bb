//! Federation: node identity, server names, discovery and peer links (DESIGN.md §4).
pub mod key;
pub mod server_id;
