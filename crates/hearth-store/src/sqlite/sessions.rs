//! The `sessions` table. Rows hold only the SHA-256 of the session token.
use crate::sqlite::db_err;
use rusqlite::{params, Connection, Row};

use super::{cached_exec, cached_row, json_ids, optional, StoreError};
use crate::domain::model::{DeviceFacts, Session, SessionCredential};
use crate::domain::scopes::ScopeSet;

const COLUMNS: &str = "id, user_id, token_hash, client_id, device_type, device_version, \
                       app_name, app_version, created_at, last_active, expires_at, scopes, \
                       access_token_id, amr";

fn from_row(r: &Row<'_>) -> Result<Session, rusqlite::Error> {
    let hash: Vec<u8> = r.get(2)?;
    Ok(Session {
        id: r.get::<_, i64>(0)? as u64,
        user_id: r.get::<_, i64>(1)? as u64,
        token_hash: hash.try_into().unwrap_or([0; 32]),
        device: DeviceFacts {
            client_id: r.get(3)?,
            device_type: r.get(4)?,
            device_version: r.get(5)?,
            app_name: r.get(6)?,
            app_version: r.get(7)?,
        },
        created_at: r.get::<_, i64>(8)? as u64,
        last_active: r.get::<_, i64>(9)? as u64,
        expires_at: r.get::<_, i64>(10)? as u64,
        scopes: ScopeSet::from_stored(r.get::<_, Option<String>>(11)?.as_deref()),
        access_token_id: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
        amr: r.get(13)?,
    })
}

/// A full session's scopes are stored as NULL (every scope, now and later).
fn scopes_text(s: &Session) -> Option<String> {
    (s.scopes != ScopeSet::ALL).then(|| s.scopes.to_text())
}

/// Inserts `s` with `condition` (SQL over `?2` = user id, `?11` = expiry and `?14` =
/// `extra`) guarding it; returns whether it inserted.
fn insert_where(
    tx: &Connection,
    s: &Session,
    condition: &str,
    extra: &dyn rusqlite::ToSql,
) -> Result<bool, StoreError> {
    let n = cached_exec(
        tx,
        &format!(
            "INSERT INTO sessions ({COLUMNS}) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15 WHERE {condition}"
        ),
        params![
            s.id as i64,
            s.user_id as i64,
            &s.token_hash[..],
            s.device.client_id,
            s.device.device_type,
            s.device.device_version,
            s.device.app_name,
            s.device.app_version,
            s.created_at as i64,
            s.last_active as i64,
            s.expires_at as i64,
            scopes_text(s),
            s.access_token_id.map(|v| v as i64),
            extra,
            s.amr,
        ],
    )
    .map_err(db_err)?;
    Ok(n > 0)
}

pub fn insert(tx: &Connection, s: &Session) -> Result<(), StoreError> {
    insert_where(tx, s, "?14 = ?14", &"").map(|_| ())
}

/// Inserts a session made from the personal access token `s.access_token_id` only while
/// that token still has the value `token_hash` and has not expired at `s.created_at`.
pub fn insert_for_token(
    tx: &Connection,
    s: &Session,
    token_hash: &[u8; 32],
) -> Result<bool, StoreError> {
    insert_where(
        tx,
        s,
        "EXISTS (SELECT 1 FROM access_tokens WHERE id = ?13 AND user_id = ?2 \
         AND token_hash = ?14 AND expires_at > ?9 AND expires_at >= ?11)",
        &&token_hash[..],
    )
}

/// Deletes every session made from the token `token_id`; returns their ids.
pub fn delete_for_token(tx: &Connection, token_id: u64) -> Result<Vec<u64>, StoreError> {
    let mut stmt = tx
        .prepare_cached("DELETE FROM sessions WHERE access_token_id = ?1 RETURNING id")
        .map_err(db_err)?;
    let rows = stmt
        .query_map([token_id as i64], |r| r.get::<_, i64>(0))
        .map_err(db_err)?;
    rows.map(|r| r.map(|v| v as u64))
        .collect::<Result<_, _>>()
        .map_err(db_err)
}

pub fn by_id(c: &Connection, id: u64) -> Result<Option<Session>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"),
        [id as i64],
        from_row,
    ))
}

/// What the credential check needs of the session whose token hashes to `hash`.
pub fn credential(
    c: &Connection,
    hash: &[u8; 32],
) -> Result<Option<SessionCredential>, StoreError> {
    cached_row(
        c,
        "SELECT id, user_id, last_active, expires_at, scopes FROM sessions WHERE token_hash = ?1",
        [&hash[..]],
        |r| {
            Ok(SessionCredential {
                id: r.get::<_, i64>(0)? as u64,
                user_id: r.get::<_, i64>(1)? as u64,
                last_active: r.get::<_, i64>(2)? as u64,
                expires_at: r.get::<_, i64>(3)? as u64,
                scopes: ScopeSet::from_stored(r.get::<_, Option<String>>(4)?.as_deref()),
            })
        },
    )
}

/// A page of live full sessions with their token hashes, in id order.
pub fn full_page(
    c: &Connection,
    after_id: u64,
    limit: u32,
    now: u64,
) -> Result<Vec<([u8; 32], SessionCredential)>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT token_hash, id, user_id, last_active, expires_at FROM sessions \
             WHERE id > ?1 AND expires_at > ?2 AND scopes IS NULL AND access_token_id IS NULL \
             ORDER BY id LIMIT ?3",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![after_id as i64, now as i64, limit], |r| {
            let hash: Vec<u8> = r.get(0)?;
            Ok((
                hash.try_into().unwrap_or([0; 32]),
                SessionCredential {
                    id: r.get::<_, i64>(1)? as u64,
                    user_id: r.get::<_, i64>(2)? as u64,
                    last_active: r.get::<_, i64>(3)? as u64,
                    expires_at: r.get::<_, i64>(4)? as u64,
                    scopes: ScopeSet::ALL,
                },
            ))
        })
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// A user's sessions, newest first.
pub fn list_for_user(c: &Connection, user_id: u64) -> Result<Vec<Session>, StoreError> {
    let mut stmt = c
        .prepare(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE user_id = ?1 ORDER BY id DESC"
        ))
        .map_err(db_err)?;
    let rows = stmt.query_map([user_id as i64], from_row).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// Live sessions of a user, and of a personal access token.
pub fn live(
    c: &Connection,
    user_id: u64,
    token_id: Option<u64>,
    now: u64,
) -> Result<(u32, u32), StoreError> {
    let count = |sql: &str, id: u64| {
        cached_row(c, sql, params![id as i64, now as i64], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n.unwrap_or(0) as u32)
    };
    let of_user = count(
        "SELECT COUNT(*) FROM sessions WHERE user_id = ?1 AND expires_at > ?2",
        user_id,
    )?;
    let of_token = match token_id {
        Some(t) => count(
            "SELECT COUNT(*) FROM sessions WHERE access_token_id = ?1 AND expires_at > ?2",
            t,
        )?,
        None => 0,
    };
    Ok((of_user, of_token))
}

/// The `n` least recently active live sessions of a user (of one of its tokens, if given).
pub fn least_active(
    c: &Connection,
    user_id: u64,
    token_id: Option<u64>,
    now: u64,
    n: u32,
) -> Result<Vec<u64>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT id FROM sessions WHERE user_id = ?1 AND expires_at > ?2 \
           AND (?3 IS NULL OR access_token_id = ?3) \
         ORDER BY last_active, id LIMIT ?4",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(
            params![user_id as i64, now as i64, token_id.map(|t| t as i64), n],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db_err)?;
    rows.map(|r| r.map(|v| v as u64))
        .collect::<Result<_, _>>()
        .map_err(db_err)
}

/// The live sessions of `s`'s user other than `s` past the `kept` most recently active.
pub fn past_most_active(c: &Connection, s: &Session, kept: u32) -> Result<Vec<u64>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT id FROM sessions WHERE user_id = ?1 AND expires_at > ?2 AND id != ?3 \
             ORDER BY last_active DESC, id DESC LIMIT -1 OFFSET ?4",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(
            params![s.user_id as i64, s.created_at as i64, s.id as i64, kept],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db_err)?;
    rows.map(|r| r.map(|v| v as u64))
        .collect::<Result<_, _>>()
        .map_err(db_err)
}

/// Deletes the listed sessions of `user_id` in one statement; returns the ids deleted.
pub fn delete_for_user(tx: &Connection, user_id: u64, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
    let list = json_ids(ids);
    let mut stmt = tx
        .prepare_cached(
            "DELETE FROM sessions WHERE user_id = ?1 \
         AND id IN (SELECT value FROM json_each(?2)) RETURNING id",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![user_id as i64, list], |r| r.get::<_, i64>(0))
        .map_err(db_err)?;
    rows.map(|r| r.map(|v| v as u64))
        .collect::<Result<_, _>>()
        .map_err(db_err)
}

/// Deletes every session of `user_id` except `keep`; returns the deleted ids.
pub fn delete_all_for_user(
    tx: &Connection,
    user_id: u64,
    keep: Option<u64>,
) -> Result<Vec<u64>, StoreError> {
    let keep = keep.map(|k| k as i64).unwrap_or(-1);
    let mut stmt = tx
        .prepare("DELETE FROM sessions WHERE user_id = ?1 AND id != ?2 RETURNING id")
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![user_id as i64, keep], |r| r.get::<_, i64>(0))
        .map_err(db_err)?;
    rows.map(|r| r.map(|v| v as u64))
        .collect::<Result<_, _>>()
        .map_err(db_err)
}

/// Deletes one session by id; returns whether it existed.
pub fn delete(tx: &Connection, id: u64) -> Result<bool, StoreError> {
    Ok(cached_exec(tx, "DELETE FROM sessions WHERE id = ?1", [id as i64]).map_err(db_err)? > 0)
}

pub fn touch(tx: &Connection, id: u64, now: u64) -> Result<(), StoreError> {
    cached_exec(
        tx,
        "UPDATE sessions SET last_active = MAX(last_active, ?2) WHERE id = ?1",
        params![id as i64, now as i64],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Compare-and-swap of the token hash: only the holder of the presented token wins.
pub fn swap_token(
    tx: &Connection,
    id: u64,
    presented: &[u8; 32],
    new: &[u8; 32],
    now: u64,
) -> Result<bool, StoreError> {
    Ok(cached_exec(
        tx,
        "UPDATE sessions SET token_hash = ?3, last_active = ?4 WHERE id = ?1 AND token_hash = ?2",
        params![id as i64, &presented[..], &new[..], now as i64],
    )
    .map_err(db_err)?
        > 0)
}
