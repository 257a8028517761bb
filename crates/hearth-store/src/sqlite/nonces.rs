//! The `used_nonces` table: nonces of federation tokens already used, kept until the tokens
//! expire, so each token logs in at most once.
use crate::sqlite::db_err;
use rusqlite::{params, Connection};

use super::{unique, StoreError};

/// Records a nonce; `Err(Conflict)` if it was used before. Also forgets expired ones.
pub fn use_once(
    tx: &Connection,
    origin: &str,
    nonce: &[u8],
    expires_at: u64,
    now: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM used_nonces WHERE expires_at < ?1",
        [now as i64],
    )
    .map_err(db_err)?;
    tx.execute(
        "INSERT INTO used_nonces (origin, nonce, expires_at) VALUES (?1, ?2, ?3)",
        params![origin, nonce, expires_at as i64],
    )
    .map_err(|e| unique(e, "this token's nonce"))?;
    Ok(())
}
