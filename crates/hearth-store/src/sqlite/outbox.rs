//! The `outbox` table: mail waiting to be sent, durable across restarts.
use crate::sqlite::db_err;
use rusqlite::{params, Connection, Row};

use super::StoreError;
use crate::domain::model::Mail;

const COLUMNS: &str = "id, recipient, subject, body, created_at, attempts, sent_at, last_error";

fn from_row(r: &Row<'_>) -> Result<Mail, rusqlite::Error> {
    Ok(Mail {
        id: r.get::<_, i64>(0)? as u64,
        recipient: r.get(1)?,
        subject: r.get(2)?,
        body: r.get(3)?,
        created_at: r.get::<_, i64>(4)? as u64,
        attempts: r.get(5)?,
        sent_at: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
        last_error: r.get(7)?,
    })
}

/// Queues a mail for sending now.
pub fn enqueue(
    tx: &Connection,
    recipient: &str,
    subject: &str,
    body: &str,
    now: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO outbox (recipient, subject, body, created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![recipient, subject, body, now as i64],
    ).map_err(db_err)?;
    Ok(())
}

/// Mail due for an attempt at `now`, oldest first.
pub fn due(c: &Connection, now: u64, limit: u32) -> Result<Vec<Mail>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2"
    )).map_err(db_err)?;
    let rows = stmt
        .query_map(params![now as i64, limit], from_row)
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// All mail, newest first.
pub fn list(c: &Connection) -> Result<Vec<Mail>, StoreError> {
    let mut stmt = c
        .prepare(&format!("SELECT {COLUMNS} FROM outbox ORDER BY id DESC"))
        .map_err(db_err)?;
    let rows = stmt.query_map([], from_row).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// What a delivered or expired mail's subject becomes: the envelope stays, the text (and
/// with it any code) goes.
pub const REDACTED: &str = "(redacted: delivered or expired)";

/// Marks a mail sent and drops its text.
pub fn mark_sent(tx: &Connection, id: u64, now: u64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1, last_error = NULL, \
         subject = ?3, body = '' WHERE id = ?1",
        params![id as i64, now as i64, REDACTED],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Drops the text of undelivered mail queued at or before `cutoff` (its codes have
/// expired) and stops retrying it; returns how many mails it redacted.
pub fn expire(tx: &Connection, cutoff: u64) -> Result<u64, StoreError> {
    Ok(tx
        .execute(
            "UPDATE outbox SET subject = ?2, body = '', next_attempt_at = ?3, \
         last_error = 'expired before delivery' \
         WHERE sent_at IS NULL AND created_at <= ?1 AND body != ''",
            params![cutoff as i64, REDACTED, i64::MAX],
        )
        .map_err(db_err)? as u64)
}

/// Records a failed attempt and when to try again.
pub fn mark_failed(
    tx: &Connection,
    id: u64,
    error: &str,
    next_attempt_at: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
        params![id as i64, error, next_attempt_at as i64],
    ).map_err(db_err)?;
    Ok(())
}
