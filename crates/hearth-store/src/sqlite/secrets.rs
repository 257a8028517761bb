//! The `node_secrets` table: random keys the node makes once (e.g. the e-mail code HMAC key).
use crate::sqlite::db_err;
use rusqlite::{params, Connection};

use super::{optional, StoreError};

/// The secret `name`, if it exists.
pub fn get(c: &Connection, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    optional(c.query_row(
        "SELECT value FROM node_secrets WHERE name = ?1",
        [name],
        |r| r.get::<_, Vec<u8>>(0),
    ))
}

/// Returns the secret `name`, creating it from `make` if it does not exist yet.
pub fn get_or_create(
    tx: &Connection,
    name: &str,
    make: &mut dyn FnMut() -> Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    if let Some(v) = get(tx, name)? {
        return Ok(v);
    }
    let value = make();
    tx.execute(
        "INSERT INTO node_secrets (name, value) VALUES (?1, ?2)",
        params![name, value],
    )
    .map_err(db_err)?;
    Ok(value)
}

/// Replaces the node secret `name`.
pub fn set(tx: &Connection, name: &str, value: &[u8]) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO node_secrets (name, value) VALUES (?1, ?2)",
        params![name, value],
    )
    .map_err(db_err)?;
    Ok(())
}

/// The live value of (`space`, `key`) in `short_lived`.
pub fn short_lived(
    c: &Connection,
    space: &str,
    key: &[u8; 32],
    now: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let row = short_lived_row(c, space, key)?;
    Ok(row
        .filter(|(_, expires_at)| *expires_at > now)
        .map(|(v, _)| v))
}

/// The stored row of (`space`, `key`), live or expired: (value, expires at).
pub fn short_lived_row(
    c: &Connection,
    space: &str,
    key: &[u8; 32],
) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
    optional(c.query_row(
        "SELECT value, expires_at FROM short_lived WHERE space = ?1 AND key = ?2",
        params![space, &key[..]],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
    ))
}

/// Stores a short-lived value; sweeps the space's expired rows.
pub fn put_short_lived(
    tx: &Connection,
    space: &str,
    values: &[([u8; 32], Vec<u8>)],
    expires_at: u64,
    now: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM short_lived WHERE space = ?1 AND expires_at <= ?2",
        params![space, now as i64],
    )
    .map_err(db_err)?;
    for (key, value) in values {
        tx.execute(
            "INSERT OR REPLACE INTO short_lived (space, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![space, &key[..], value, expires_at as i64],
        ).map_err(db_err)?;
    }
    Ok(())
}
