//! The operator commands of the `hearth` binary, one file per area; `main.rs` parses the
//! command line and dispatches here.
pub mod accounts;
pub mod invites;
pub mod keys;
pub mod open;
pub mod output;
pub mod tokens;
