//! The `email_codes` table: one live code per (user, purpose), stored as an HMAC.
use crate::sqlite::db_err;
use rusqlite::{params, Connection};

use super::{optional, StoreError};
use crate::domain::model::CodeRecord;

/// Issues a code in one statement, unless `max_per_hour` codes for (user, purpose) were
/// issued in the current hour. A code replacing one that is still live keeps that one's
/// remaining tries (re-issuing never refills them). Returns whether it issued.
pub fn issue(
    tx: &Connection,
    user_id: u64,
    purpose: &str,
    row: &CodeRecord,
    now: u64,
    max_per_hour: u32,
) -> Result<bool, StoreError> {
    let issued = optional(tx.query_row(
        "INSERT INTO email_codes \
             (user_id, purpose, code_mac, expires_at, tries_left, issued_in_window, window_start) \
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6) \
         ON CONFLICT (user_id, purpose) DO UPDATE SET \
             code_mac = excluded.code_mac, \
             expires_at = excluded.expires_at, \
             tries_left = CASE WHEN email_codes.expires_at > ?6 \
                 THEN MIN(email_codes.tries_left, excluded.tries_left) \
                 ELSE excluded.tries_left END, \
             issued_in_window = CASE WHEN email_codes.window_start <= ?6 - 3600000 \
                 THEN 1 ELSE email_codes.issued_in_window + 1 END, \
             window_start = CASE WHEN email_codes.window_start <= ?6 - 3600000 \
                 THEN ?6 ELSE email_codes.window_start END \
         WHERE email_codes.window_start <= ?6 - 3600000 OR email_codes.issued_in_window < ?7 \
         RETURNING 1",
        params![
            user_id as i64,
            purpose,
            &row.mac[..],
            row.expires_at as i64,
            row.tries_left,
            now as i64,
            max_per_hour
        ],
        |r| r.get::<_, i64>(0),
    ))?;
    Ok(issued.is_some())
}

/// Deletes the code if it is still live and its HMAC is `mac` (the code was just checked);
/// returns whether it did, so of two callers with one code only one uses it.
pub fn take(
    tx: &Connection,
    user_id: u64,
    purpose: &str,
    mac: &[u8; 32],
    now: u64,
) -> Result<bool, StoreError> {
    Ok(tx
        .execute(
            "DELETE FROM email_codes WHERE user_id = ?1 AND purpose = ?2 AND code_mac = ?3 \
         AND expires_at > ?4",
            params![user_id as i64, purpose, &mac[..], now as i64],
        )
        .map_err(db_err)?
        > 0)
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
