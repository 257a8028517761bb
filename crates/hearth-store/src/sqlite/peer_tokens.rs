//! The `peer_tokens` table: tokens this node issued to peers through auth.Auth.
use crate::sqlite::db_err;
use rusqlite::{params, Connection};

use super::{optional, StoreError};

/// Stores a token hash for `server_id`.
pub fn insert(
    tx: &Connection,
    hash: &[u8; 32],
    server_id: &str,
    expires_at: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO peer_tokens (token_hash, server_id, expires_at) VALUES (?1, ?2, ?3)",
        params![&hash[..], server_id, expires_at as i64],
    )
    .map_err(db_err)?;
    Ok(())
}

/// The (server_id, expiry) of a token.
pub fn get(c: &Connection, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError> {
    optional(c.query_row(
        "SELECT server_id, expires_at FROM peer_tokens WHERE token_hash = ?1",
        [&hash[..]],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
    ))
}

/// Deletes a token and returns its (server_id, expiry), in one statement.
pub fn take(tx: &Connection, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError> {
    optional(tx.query_row(
        "DELETE FROM peer_tokens WHERE token_hash = ?1 RETURNING server_id, expires_at",
        [&hash[..]],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
    ))
}
