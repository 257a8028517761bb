//! Revocation across nodes (DESIGN.md §4.7): `federation_grants` and the
//! `revocation_notices` outbox of a home node (filled by the triggers of migration 0017),
//! and `foreign_sessions` and `ended_home_sessions` of a receiving node.
use crate::sqlite::db_err;
use rusqlite::{params, Connection};

use super::{cached_exec, json_ids, StoreError};
use crate::domain::model::PendingNotice;

pub fn grant(
    tx: &Connection,
    home_session: u64,
    token: bool,
    peer: &str,
    user_id: u64,
) -> Result<bool, StoreError> {
    // One writer: the existence check and the insert cannot be split by another write.
    let table = if token { "access_tokens" } else { "sessions" };
    let n = tx
        .execute(
            &format!(
                "INSERT OR IGNORE INTO federation_grants (home_session, peer, user_id) \
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"
            ),
            params![home_session as i64, peer, user_id as i64],
        )
        .map_err(db_err)?;
    if n > 0 {
        return Ok(true);
    }
    let alive: bool = tx
        .query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"),
            [home_session as i64],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    Ok(alive)
}

pub fn end_grants(tx: &Connection, home_sessions: &[u64]) -> Result<(), StoreError> {
    let ids = json_ids(home_sessions);
    cached_exec(
        tx,
        "INSERT INTO revocation_notices (peer, user_id, home_session, created_at) \
         SELECT peer, user_id, home_session, CAST(strftime('%s', 'now') AS INTEGER) * 1000 \
         FROM federation_grants WHERE home_session IN (SELECT value FROM json_each(?1))",
        [&ids],
    )
    .map_err(db_err)?;
    cached_exec(
        tx,
        "DELETE FROM federation_grants WHERE home_session IN (SELECT value FROM json_each(?1))",
        [&ids],
    )
    .map_err(db_err)?;
    Ok(())
}

pub fn due(tx: &Connection, now: u64, limit: u32) -> Result<Vec<PendingNotice>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id, peer, user_id, home_session, created_at, attempts \
             FROM revocation_notices WHERE next_at <= ?1 ORDER BY id LIMIT ?2",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![now as i64, limit], |r| {
            Ok(PendingNotice {
                id: r.get::<_, i64>(0)? as u64,
                peer: r.get(1)?,
                user_id: r.get::<_, i64>(2)? as u64,
                home_session: r.get::<_, i64>(3)? as u64,
                created_at: r.get::<_, i64>(4)? as u64,
                attempts: r.get(5)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

pub fn waiting(tx: &Connection) -> Result<u64, StoreError> {
    tx.query_row("SELECT COUNT(*) FROM revocation_notices", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .map_err(db_err)
}

pub fn delete(tx: &Connection, ids: &[u64]) -> Result<(), StoreError> {
    cached_exec(
        tx,
        "DELETE FROM revocation_notices WHERE id IN (SELECT value FROM json_each(?1))",
        [json_ids(ids)],
    )
    .map_err(db_err)?;
    Ok(())
}

pub fn retry(tx: &Connection, ids: &[u64], next_at: u64) -> Result<(), StoreError> {
    cached_exec(
        tx,
        "UPDATE revocation_notices SET attempts = attempts + 1, next_at = ?2 \
         WHERE id IN (SELECT value FROM json_each(?1))",
        params![json_ids(ids), next_at as i64],
    )
    .map_err(db_err)?;
    Ok(())
}

pub fn due_now(tx: &Connection, peer: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE revocation_notices SET next_at = 0 WHERE peer = ?1",
        [peer],
    )
    .map_err(db_err)?;
    Ok(())
}

pub fn bind(
    tx: &Connection,
    session_id: u64,
    origin: &str,
    home_session: u64,
) -> Result<bool, StoreError> {
    // One writer: nothing can end the home session between the check and the insert.
    let n = tx
        .execute(
            "INSERT INTO foreign_sessions (session_id, origin, home_session) \
             SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM ended_home_sessions \
             WHERE origin = ?2 AND home_session = ?3)",
            params![session_id as i64, origin, home_session as i64],
        )
        .map_err(db_err)?;
    Ok(n > 0)
}

pub fn end(
    tx: &Connection,
    origin: &str,
    remote_user: u64,
    home_session: u64,
    keep_until: u64,
    now: u64,
) -> Result<Option<Vec<u64>>, StoreError> {
    tx.execute(
        "DELETE FROM ended_home_sessions WHERE keep_until < ?1",
        [now as i64],
    )
    .map_err(db_err)?;
    let new = tx
        .execute(
            "INSERT OR IGNORE INTO ended_home_sessions (origin, home_session, keep_until) \
             VALUES (?1, ?2, ?3)",
            params![origin, home_session as i64, keep_until as i64],
        )
        .map_err(db_err)?;
    if new == 0 {
        return Ok(None);
    }
    // Only the sessions of that origin's own user: a node ends nothing of another's users.
    let mut stmt = tx
        .prepare_cached(
            "DELETE FROM sessions WHERE id IN (SELECT f.session_id FROM foreign_sessions f \
             WHERE f.origin = ?1 AND f.home_session = ?2) AND user_id IN (SELECT id FROM users \
             WHERE home_server = ?1 AND remote_user_id = ?3) RETURNING id",
        )
        .map_err(db_err)?;
    let ids = stmt
        .query_map(
            params![origin, home_session as i64, remote_user as i64],
            |r| r.get::<_, i64>(0).map(|v| v as u64),
        )
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    Ok(Some(ids))
}
