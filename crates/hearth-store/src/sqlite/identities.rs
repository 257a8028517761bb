//! The `identities` table: which local user an external provider's account is.
use rusqlite::{params, Connection};

use super::{optional, unique, StoreError};

/// The user of (`provider`, `subject`).
pub fn user_of(c: &Connection, provider: &str, subject: &str) -> Result<Option<u64>, StoreError> {
    optional(c.query_row(
        "SELECT user_id FROM identities WHERE provider = ?1 AND subject = ?2",
        params![provider, subject],
        |r| r.get::<_, i64>(0).map(|v| v as u64),
    ))
}

/// Links (`provider`, `subject`) to `user_id`; a taken pair is a conflict.
pub fn insert(
    tx: &Connection,
    provider: &str,
    subject: &str,
    user_id: u64,
    now: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO identities (provider, subject, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![provider, subject, user_id as i64, now as i64],
    )
    .map_err(|e| unique(e, "that provider account"))?;
    Ok(())
}
