//! [`Tx`]: one SQLite connection (inside the writer's transaction, or a reader) seen through
//! the store seam, one file per area of the seam (`accounts.rs`, `sessions.rs`, …); each
//! operation is a function of its table's file (`../users.rs`, …).
mod accounts;
mod codes;
mod federation;
mod invites;
mod jobs;
mod passkeys;
mod sessions;
mod tokens;
use rusqlite::Connection;

pub(super) struct Tx<'c>(pub &'c Connection);
