//! The `sign_in_throttle` table: the sign-in gate per (address, client) and the account-wide
//! count of consecutive failures per address (client `*`).
use crate::sqlite::db_err;
use rusqlite::{params, Connection};

use super::{cached_exec, cached_row, optional, StoreError};
use crate::domain::model::ThrottleRow;

fn state(
    tx: &Connection,
    email: &str,
    client: &str,
) -> Result<Option<(u32, Option<u64>)>, StoreError> {
    optional(tx.query_row(
        "SELECT failures, locked_until FROM sign_in_throttle WHERE email = ?1 AND client = ?2",
        params![email, client],
        |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(|v| v as u64))),
    ))
}

/// (failures, locked until) of `client`'s row for `email` (`*`: account-wide).
pub fn get(tx: &Connection, email: &str, client: &str) -> Result<(u32, Option<u64>), StoreError> {
    Ok(state(tx, email, client)?.unwrap_or((0, None)))
}

/// The row of (`email`, `client`), or the default row.
pub fn row(tx: &Connection, email: &str, client: &str) -> Result<ThrottleRow, StoreError> {
    Ok(stored(tx, email, client)?.unwrap_or_default())
}

/// The row of (`email`, `client`) as stored (`None`: no row).
pub fn stored(
    tx: &Connection,
    email: &str,
    client: &str,
) -> Result<Option<ThrottleRow>, StoreError> {
    cached_row(
        tx,
        "SELECT failures, locked_until, in_flight, in_flight_since FROM sign_in_throttle \
         WHERE email = ?1 AND client = ?2",
        params![email, client],
        |r| {
            Ok(ThrottleRow {
                failures: r.get(0)?,
                locked_until: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                in_flight: r.get(2)?,
                in_flight_since: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
            })
        },
    )
}

/// Writes `new` as the row of (`email`, `client`) only while it holds `old` (`None`: no
/// row); returns whether it did. The single writer holds every row: compare, then write.
pub fn swap(
    tx: &Connection,
    email: &str,
    client: &str,
    old: Option<&ThrottleRow>,
    new: &ThrottleRow,
    now: u64,
) -> Result<bool, StoreError> {
    if stored(tx, email, client)?.as_ref() != old {
        return Ok(false);
    }
    put(tx, email, client, new, now)?;
    Ok(true)
}

/// Writes a row (a default one stays until the sweep).
pub fn put(
    tx: &Connection,
    email: &str,
    client: &str,
    row: &ThrottleRow,
    now: u64,
) -> Result<(), StoreError> {
    cached_exec(
        tx,
        "INSERT INTO sign_in_throttle \
             (email, client, failures, locked_until, in_flight, in_flight_since, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (email, client) DO UPDATE SET failures = excluded.failures, \
             locked_until = excluded.locked_until, in_flight = excluded.in_flight, \
             in_flight_since = excluded.in_flight_since, updated_at = excluded.updated_at",
        params![
            email,
            client,
            row.failures,
            row.locked_until.map(|v| v as i64),
            row.in_flight,
            row.in_flight_since.map(|v| v as i64),
            now as i64
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Forgets every throttle row of `email` (after a password reset).
pub fn clear(tx: &Connection, email: &str) -> Result<(), StoreError> {
    cached_exec(tx, "DELETE FROM sign_in_throttle WHERE email = ?1", [email]).map_err(db_err)?;
    Ok(())
}

/// Forgets rows untouched since `before` that hold no live delay or attempt.
pub fn sweep(tx: &Connection, before: u64) -> Result<u64, StoreError> {
    Ok(cached_exec(
        tx,
        "DELETE FROM sign_in_throttle WHERE updated_at < ?1 \
         AND (locked_until IS NULL OR locked_until < ?1)",
        [before as i64],
    )
    .map_err(db_err)? as u64)
}
