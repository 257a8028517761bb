//! The `key_rotations` table: this node's key continuity records, oldest first.
use crate::sqlite::db_err;
use rusqlite::{params, Connection};

use super::StoreError;
use crate::domain::model::KeyRotation;

/// Every record, oldest first.
pub fn list(c: &Connection) -> Result<Vec<KeyRotation>, StoreError> {
    let mut stmt = c
        .prepare("SELECT old_key, new_key, at, sig FROM key_rotations ORDER BY seq")
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| {
            let old: Vec<u8> = r.get(0)?;
            let new: Vec<u8> = r.get(1)?;
            Ok(KeyRotation {
                old_key: old.try_into().unwrap_or([0; 32]),
                new_key: new.try_into().unwrap_or([0; 32]),
                at: r.get::<_, i64>(2)? as u64,
                sig: r.get(3)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// Appends a record.
pub fn insert(tx: &Connection, r: &KeyRotation) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO key_rotations (old_key, new_key, at, sig) VALUES (?1, ?2, ?3, ?4)",
        params![&r.old_key[..], &r.new_key[..], r.at as i64, r.sig],
    )
    .map_err(db_err)?;
    Ok(())
}
