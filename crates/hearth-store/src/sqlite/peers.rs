//! The `peers` table: other nodes this one knows, their pinned keys and link state.
use crate::sqlite::db_err;
use rusqlite::{params, Connection, Row};

use super::{optional, StoreError};
use crate::domain::model::Peer;

fn key(v: Option<Vec<u8>>) -> Option<[u8; 32]> {
    v.and_then(|k| k.try_into().ok())
}

const COLUMNS: &str = "server_id, pinned_key, previous_key, previous_retired_at, url, linked, \
                       state, last_error, link_expires_at, updated_at";

fn from_row(r: &Row<'_>) -> Result<Peer, rusqlite::Error> {
    let previous = key(r.get(2)?);
    let retired: Option<i64> = r.get(3)?;
    Ok(Peer {
        server_id: r.get(0)?,
        pinned_key: key(r.get(1)?),
        previous_key: previous.zip(retired.map(|v| v as u64)),
        url: r.get(4)?,
        linked: r.get(5)?,
        state: r.get(6)?,
        last_error: r.get(7)?,
        link_expires_at: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
        updated_at: r.get::<_, i64>(9)? as u64,
    })
}

/// One peer by server_id.
pub fn get(c: &Connection, server_id: &str) -> Result<Option<Peer>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM peers WHERE server_id = ?1"),
        [server_id],
        from_row,
    ))
}

/// Every peer, by name.
pub fn list(c: &Connection) -> Result<Vec<Peer>, StoreError> {
    let mut stmt = c
        .prepare(&format!("SELECT {COLUMNS} FROM peers ORDER BY server_id"))
        .map_err(db_err)?;
    let rows = stmt.query_map([], from_row).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// Inserts or replaces a peer row.
pub fn put(tx: &Connection, p: &Peer) -> Result<(), StoreError> {
    tx.execute(
        &format!("INSERT OR REPLACE INTO peers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            p.server_id,
            p.pinned_key.map(|k| k.to_vec()),
            p.previous_key.map(|(k, _)| k.to_vec()),
            p.previous_key.map(|(_, at)| at as i64),
            p.url,
            p.linked,
            p.state,
            p.last_error,
            p.link_expires_at.map(|v| v as i64),
            p.updated_at as i64,
        ],
    ).map_err(db_err)?;
    Ok(())
}
