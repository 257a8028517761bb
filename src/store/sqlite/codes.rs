//! The `email_codes` table: one live code per (user, purpose), stored as an HMAC.
use rusqlite::{params, Connection};

use super::{optional, StoreError};
use crate::domain::model::CodeRecord;

/// Stores a code, replacing any earlier one for the same purpose.
pub fn put(
    tx: &Connection,
    user_id: u64,
    purpose: &str,
    row: &CodeRecord,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO email_codes (user_id, purpose, code_mac, expires_at, tries_left) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            user_id as i64,
            purpose,
            &row.mac[..],
            row.expires_at as i64,
            row.tries_left
        ],
    )?;
    Ok(())
}

/// The live code for (user, purpose).
pub fn get(c: &Connection, user_id: u64, purpose: &str) -> Result<Option<CodeRecord>, StoreError> {
    optional(c.query_row(
        "SELECT code_mac, expires_at, tries_left FROM email_codes WHERE user_id = ?1 AND purpose = ?2",
        params![user_id as i64, purpose],
        from_row,
    ))
}

fn from_row(r: &rusqlite::Row<'_>) -> Result<CodeRecord, rusqlite::Error> {
    let mac: Vec<u8> = r.get(0)?;
    Ok(CodeRecord {
        mac: mac.try_into().unwrap_or([0; 32]),
        expires_at: r.get::<_, i64>(1)? as u64,
        tries_left: r.get(2)?,
    })
}

/// Spends one try of a live code and returns the code, in one statement; `None` when no
/// live code with tries left exists.
pub fn spend_try(
    tx: &Connection,
    user_id: u64,
    purpose: &str,
    now: u64,
) -> Result<Option<CodeRecord>, StoreError> {
    optional(tx.query_row(
        "UPDATE email_codes SET tries_left = tries_left - 1 \
         WHERE user_id = ?1 AND purpose = ?2 AND tries_left > 0 AND expires_at > ?3 \
         RETURNING code_mac, expires_at, tries_left",
        params![user_id as i64, purpose, now as i64],
        from_row,
    ))
}

/// Deletes the code (used, or dead).
pub fn delete(tx: &Connection, user_id: u64, purpose: &str) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM email_codes WHERE user_id = ?1 AND purpose = ?2",
        params![user_id as i64, purpose],
    )?;
    Ok(())
}
