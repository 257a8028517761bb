//! The `sign_in_throttle` table: the sign-in gate per (address, client) and the account-wide
//! count of consecutive failures per address (client `*`).
use rusqlite::{params, Connection};

use super::{cached_exec, optional, StoreError};
use crate::domain::model::{LockPolicy, SignInGate};

const ACCOUNT: &str = "*";

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

/// The gate: refuses while the address is locked account-wide; otherwise takes one of the
/// client's in-flight slots unless the client is delayed or all [`LockPolicy::slots`] are
/// taken (one upsert). Runs inside the writer's transaction.
pub fn begin(
    tx: &Connection,
    email: &str,
    client: &str,
    now: u64,
    p: &LockPolicy,
) -> Result<SignInGate, StoreError> {
    if let Some((failures, Some(until))) = state(tx, email, ACCOUNT)? {
        if until > now {
            return Ok(SignInGate::Locked { failures, until });
        }
    }
    let taken = optional(tx.query_row(
        "INSERT INTO sign_in_throttle (email, client, in_flight, in_flight_since, updated_at) \
         VALUES (?1, ?2, 1, ?3, ?3) \
         ON CONFLICT (email, client) DO UPDATE SET \
             in_flight = CASE WHEN in_flight_since IS NULL OR in_flight_since <= ?3 - ?4 \
                 OR in_flight = 0 THEN 1 ELSE in_flight + 1 END, \
             in_flight_since = CASE WHEN in_flight_since IS NULL OR in_flight_since <= ?3 - ?4 \
                 OR in_flight = 0 THEN ?3 ELSE in_flight_since END, \
             updated_at = ?3 \
         WHERE (locked_until IS NULL OR locked_until <= ?3) \
           AND (CASE WHEN in_flight_since IS NULL OR in_flight_since <= ?3 - ?4 THEN 0 \
                ELSE in_flight END) < MAX(1, ?5 - failures) \
         RETURNING 1",
        params![
            email,
            client,
            now as i64,
            p.stale_in_flight_ms as i64,
            p.free_failures
        ],
        |r| r.get::<_, i64>(0),
    ))?;
    if taken.is_some() {
        return Ok(SignInGate::Allowed);
    }
    Ok(match state(tx, email, client)? {
        Some((failures, Some(until))) if until > now => SignInGate::Locked { failures, until },
        _ => SignInGate::Busy,
    })
}

/// Gives the slot back and records the outcome: success clears the client's delay and the
/// account-wide count; failure counts one for both and sets the delay (and, at
/// `lock_after` consecutive failures, the account-wide lock).
pub fn finish(
    tx: &Connection,
    email: &str,
    client: &str,
    ok: bool,
    now: u64,
    p: &LockPolicy,
) -> Result<(), StoreError> {
    if ok {
        cached_exec(
            tx,
            "UPDATE sign_in_throttle SET failures = 0, locked_until = NULL, \
                 in_flight = MAX(in_flight - 1, 0), updated_at = ?3 \
             WHERE email = ?1 AND client = ?2",
            params![email, client, now as i64],
        )?;
        cached_exec(
            tx,
            "DELETE FROM sign_in_throttle WHERE email = ?1 AND client = ?2",
            params![email, ACCOUNT],
        )?;
        return Ok(());
    }
    cached_exec(
        tx,
        "UPDATE sign_in_throttle SET failures = failures + 1, \
             in_flight = MAX(in_flight - 1, 0), updated_at = ?3, locked_until = CASE \
             WHEN failures + 1 < ?4 THEN NULL \
             ELSE ?3 + MIN(?5 << MIN(failures + 1 - ?4, 20), ?6) END \
         WHERE email = ?1 AND client = ?2",
        params![
            email,
            client,
            now as i64,
            p.free_failures,
            p.base_delay_ms as i64,
            p.max_delay_ms as i64
        ],
    )?;
    cached_exec(
        tx,
        "INSERT INTO sign_in_throttle (email, client, failures, locked_until, updated_at) \
         VALUES (?1, ?2, 1, CASE WHEN 1 >= ?4 THEN ?3 + ?5 END, ?3) \
         ON CONFLICT (email, client) DO UPDATE SET failures = failures + 1, updated_at = ?3, \
             locked_until = CASE WHEN failures + 1 >= ?4 THEN ?3 + ?5 ELSE locked_until END",
        params![email, ACCOUNT, now as i64, p.lock_after, p.lock_ms as i64],
    )?;
    Ok(())
}

/// Forgets every throttle row of `email` (after a password reset).
pub fn clear(tx: &Connection, email: &str) -> Result<(), StoreError> {
    cached_exec(tx, "DELETE FROM sign_in_throttle WHERE email = ?1", [email])?;
    Ok(())
}

/// Forgets rows untouched since `before` that hold no live delay or attempt.
pub fn sweep(tx: &Connection, before: u64) -> Result<u64, StoreError> {
    Ok(cached_exec(
        tx,
        "DELETE FROM sign_in_throttle WHERE updated_at < ?1 \
         AND (locked_until IS NULL OR locked_until < ?1)",
        [before as i64],
    )? as u64)
}
