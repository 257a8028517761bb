//! The `id_workers` table: leases of snowflake worker numbers, one per id-making process.
use crate::sqlite::db_err;
use rusqlite::{params, Connection};

use super::{optional, StoreError};

/// Worker numbers a snowflake id can carry.
const WORKERS: i64 = 1024;

/// Leases the lowest free worker (or renews `renew`) for `holder` until `expires_at`.
/// Runs inside the writer's IMMEDIATE transaction, so the look-up and the claim are atomic.
pub fn lease(
    tx: &Connection,
    holder: &str,
    renew: Option<u16>,
    now: u64,
    expires_at: u64,
) -> Result<Option<u16>, StoreError> {
    if let Some(worker) = renew {
        let n = tx
            .execute(
                "UPDATE id_workers SET expires_at = ?3 WHERE worker = ?1 AND holder = ?2",
                params![worker, holder, expires_at as i64],
            )
            .map_err(db_err)?;
        if n > 0 {
            return Ok(Some(worker));
        }
    }
    let free: Option<i64> = optional(tx.query_row(
        "SELECT w FROM (SELECT 0 AS w UNION ALL SELECT worker + 1 FROM id_workers \
             UNION ALL SELECT worker FROM id_workers WHERE expires_at <= ?1) \
         WHERE w < ?2 AND w NOT IN (SELECT worker FROM id_workers WHERE expires_at > ?1) \
         ORDER BY w LIMIT 1",
        params![now as i64, WORKERS],
        |r| r.get(0),
    ))?;
    let Some(worker) = free else {
        return Ok(None);
    };
    tx.execute(
        "INSERT OR REPLACE INTO id_workers (worker, holder, expires_at) VALUES (?1, ?2, ?3)",
        params![worker, holder, expires_at as i64],
    )
    .map_err(db_err)?;
    Ok(Some(worker as u16))
}

/// Gives a lease back.
pub fn release(tx: &Connection, worker: u16, holder: &str) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM id_workers WHERE worker = ?1 AND holder = ?2",
        params![worker, holder],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Takes or renews the lease of job `name` for `holder` unless another's is live.
pub fn hold_job(
    tx: &Connection,
    name: &str,
    holder: &str,
    now: u64,
    expires_at: u64,
) -> Result<bool, StoreError> {
    let held = optional(tx.query_row(
        "INSERT INTO job_leases (name, holder, expires_at) VALUES (?1, ?2, ?4) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= ?3 \
         RETURNING 1",
        params![name, holder, now as i64, expires_at as i64],
        |r| r.get::<_, i64>(0),
    ))?;
    Ok(held.is_some())
}
