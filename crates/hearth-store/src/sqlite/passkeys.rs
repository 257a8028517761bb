//! The `passkeys` table: an account's WebAuthn credentials.
use rusqlite::{params, Connection, Row};

use super::{cached_exec, cached_row, db_err, unique, StoreError};
use crate::domain::model::StoredPasskey;

const COLUMNS: &str = "id, user_id, credential_id, name, data, created_at, last_used_at";

fn passkey(r: &Row<'_>) -> rusqlite::Result<StoredPasskey> {
    Ok(StoredPasskey {
        id: r.get::<_, i64>(0)? as u64,
        user_id: r.get::<_, i64>(1)? as u64,
        credential_id: r.get(2)?,
        name: r.get(3)?,
        data: r.get(4)?,
        created_at: r.get::<_, i64>(5)? as u64,
        last_used_at: r.get::<_, Option<i64>>(6)?.map(|t| t as u64),
    })
}

/// The passkeys of `user_id`, oldest first.
pub fn of_user(c: &Connection, user_id: u64) -> Result<Vec<StoredPasskey>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = ?1 ORDER BY id");
    let mut stmt = c.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt.query_map([user_id as i64], passkey).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// The passkey with `credential_id`.
pub fn by_credential(
    c: &Connection,
    credential_id: &[u8],
) -> Result<Option<StoredPasskey>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = ?1");
    cached_row(c, &sql, [credential_id], passkey)
}

/// Inserts `p`; a registered credential id is a conflict.
pub fn insert(c: &Connection, p: &StoredPasskey) -> Result<(), StoreError> {
    cached_exec(
        c,
        "INSERT INTO passkeys (id, user_id, credential_id, name, data, created_at, last_used_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            p.id as i64,
            p.user_id as i64,
            p.credential_id,
            p.name,
            p.data,
            p.created_at as i64,
            p.last_used_at.map(|t| t as i64)
        ],
    )
    .map_err(|e| unique(e, "passkey"))?;
    Ok(())
}

/// Stores a use of passkey `id`.
pub fn update(c: &Connection, id: u64, data: &str, used_at: u64) -> Result<(), StoreError> {
    cached_exec(
        c,
        "UPDATE passkeys SET data = ?2, last_used_at = ?3 WHERE id = ?1",
        params![id as i64, data, used_at as i64],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Removes passkey `id` of `user_id`.
pub fn delete(c: &Connection, user_id: u64, id: u64) -> Result<bool, StoreError> {
    let n = cached_exec(
        c,
        "DELETE FROM passkeys WHERE id = ?1 AND user_id = ?2",
        params![id as i64, user_id as i64],
    )
    .map_err(db_err)?;
    Ok(n > 0)
}
