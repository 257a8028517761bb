//! The `access_tokens` table: personal access tokens. Rows hold only the SHA-256 of a value.
use crate::sqlite::db_err;
use rusqlite::{params, Connection, Row};

use super::{cached_row, optional, unique, StoreError};
use crate::domain::model::AccessToken;
use crate::domain::scopes::ScopeSet;

const COLUMNS: &str = "id, uuid, user_id, name, token_hash, scopes, created_at, expires_at, \
                       last_used_at, last_used_ip";

fn from_row(r: &Row<'_>) -> Result<AccessToken, rusqlite::Error> {
    let hash: Vec<u8> = r.get(4)?;
    Ok(AccessToken {
        id: r.get::<_, i64>(0)? as u64,
        uuid: r.get(1)?,
        user_id: r.get::<_, i64>(2)? as u64,
        name: r.get(3)?,
        token_hash: hash.try_into().unwrap_or([0; 32]),
        scopes: ScopeSet::from_text(&r.get::<_, String>(5)?),
        created_at: r.get::<_, i64>(6)? as u64,
        expires_at: r.get::<_, i64>(7)? as u64,
        last_used_at: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
        last_used_ip: r.get(9)?,
    })
}

/// Inserts `t` unless its owner already has `max` tokens; returns whether it inserted.
pub fn insert_capped(tx: &Connection, t: &AccessToken, max: u32) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            &format!(
                "INSERT INTO access_tokens ({COLUMNS}) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL \
                 WHERE (SELECT COUNT(*) FROM access_tokens WHERE user_id = ?3) < ?9"
            ),
            params![
                t.id as i64,
                t.uuid,
                t.user_id as i64,
                t.name,
                &t.token_hash[..],
                t.scopes.to_text(),
                t.created_at as i64,
                t.expires_at as i64,
                max,
            ],
        )
        .map_err(|e| unique(e, "that token"))?;
    Ok(n > 0)
}

/// The token whose value hashes to `hash`.
pub fn by_hash(c: &Connection, hash: &[u8; 32]) -> Result<Option<AccessToken>, StoreError> {
    cached_row(
        c,
        &format!("SELECT {COLUMNS} FROM access_tokens WHERE token_hash = ?1"),
        [&hash[..]],
        from_row,
    )
}

pub fn by_uuid(c: &Connection, uuid: &str) -> Result<Option<AccessToken>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM access_tokens WHERE uuid = ?1"),
        [uuid],
        from_row,
    ))
}

/// A user's tokens, newest first.
pub fn list_for_user(c: &Connection, user_id: u64) -> Result<Vec<AccessToken>, StoreError> {
    let mut stmt = c
        .prepare(&format!(
            "SELECT {COLUMNS} FROM access_tokens WHERE user_id = ?1 ORDER BY id DESC"
        ))
        .map_err(db_err)?;
    let rows = stmt.query_map([user_id as i64], from_row).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// Writes the name, value hash, scopes and expiry of token `t.id`.
pub fn update(tx: &Connection, t: &AccessToken) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE access_tokens SET name = ?2, token_hash = ?3, scopes = ?4, expires_at = ?5 \
         WHERE id = ?1",
        params![
            t.id as i64,
            t.name,
            &t.token_hash[..],
            t.scopes.to_text(),
            t.expires_at as i64
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Records a use.
pub fn touch(tx: &Connection, id: u64, now: u64, ip: Option<&str>) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE access_tokens SET last_used_at = ?2, last_used_ip = ?3 WHERE id = ?1",
        params![id as i64, now as i64, ip],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Deletes a token; returns whether it existed.
pub fn delete(tx: &Connection, id: u64) -> Result<bool, StoreError> {
    Ok(tx
        .execute("DELETE FROM access_tokens WHERE id = ?1", [id as i64])
        .map_err(db_err)?
        > 0)
}
