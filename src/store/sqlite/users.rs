//! The `users` table: local accounts, guests and foreign (federated) users, and the
//! one-statement sign-in gate.
use rusqlite::{params, Connection, Row};

use super::{optional, unique, StoreError};
use crate::domain::model::{LockPolicy, SignInGate, User};

const COLUMNS: &str = "id, email, name, password_hash, email_verified, home_server, \
                       remote_user_id, failed_sign_ins, locked_until, created_at";

fn from_row(r: &Row<'_>) -> Result<User, rusqlite::Error> {
    let home_server: Option<String> = r.get(5)?;
    let remote: Option<i64> = r.get(6)?;
    Ok(User {
        id: r.get::<_, i64>(0)? as u64,
        email: r.get(1)?,
        name: r.get(2)?,
        password_hash: r.get(3)?,
        email_verified: r.get(4)?,
        home: home_server.zip(remote.map(|v| v as u64)),
        failed_sign_ins: r.get(7)?,
        locked_until: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
        created_at: r.get::<_, i64>(9)? as u64,
    })
}

/// Inserts a user; a taken e-mail (or foreign identity) is [`StoreError::Conflict`].
pub fn insert(tx: &Connection, u: &User) -> Result<(), StoreError> {
    tx.execute(
        &format!("INSERT INTO users ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            u.id as i64,
            u.email,
            u.name,
            u.password_hash,
            u.email_verified,
            u.home.as_ref().map(|h| h.0.clone()),
            u.home.as_ref().map(|h| h.1 as i64),
            u.failed_sign_ins,
            u.locked_until.map(|v| v as i64),
            u.created_at as i64,
        ],
    )
    .map_err(|e| unique(e, "that e-mail address"))?;
    Ok(())
}

/// A local user by e-mail (case-insensitive).
pub fn by_email(c: &Connection, email: &str) -> Result<Option<User>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE email = ?1 AND home_server IS NULL"),
        [email],
        from_row,
    ))
}

/// A user by id.
pub fn by_id(c: &Connection, id: u64) -> Result<Option<User>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        [id as i64],
        from_row,
    ))
}

/// A foreign user by home server and remote id.
pub fn by_home(c: &Connection, server: &str, remote: u64) -> Result<Option<User>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE home_server = ?1 AND remote_user_id = ?2"),
        params![server, remote as i64],
        from_row,
    ))
}

/// All users, oldest first.
pub fn list(c: &Connection) -> Result<Vec<User>, StoreError> {
    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces the password hash.
pub fn set_password_hash(tx: &Connection, id: u64, hash: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![id as i64, hash],
    )?;
    Ok(())
}

/// The sign-in gate in one statement: takes an in-flight slot unless the account is locked
/// or all [`LockPolicy::slots`] are taken. A count older than the stale window is reset.
pub fn begin_sign_in(
    tx: &Connection,
    id: u64,
    now: u64,
    p: &LockPolicy,
) -> Result<SignInGate, StoreError> {
    let taken = optional(tx.query_row(
        "UPDATE users SET \
             sign_ins_in_flight = CASE WHEN in_flight_since IS NULL OR in_flight_since <= ?2 - ?3 \
                 OR sign_ins_in_flight = 0 THEN 1 ELSE sign_ins_in_flight + 1 END, \
             in_flight_since = CASE WHEN in_flight_since IS NULL OR in_flight_since <= ?2 - ?3 \
                 OR sign_ins_in_flight = 0 THEN ?2 ELSE in_flight_since END \
         WHERE id = ?1 AND (locked_until IS NULL OR locked_until <= ?2) \
           AND (CASE WHEN in_flight_since IS NULL OR in_flight_since <= ?2 - ?3 THEN 0 \
                ELSE sign_ins_in_flight END) < MAX(1, ?4 - failed_sign_ins) \
         RETURNING id",
        params![
            id as i64,
            now as i64,
            p.stale_in_flight_ms as i64,
            p.free_failures
        ],
        |r| r.get::<_, i64>(0),
    ))?;
    if taken.is_some() {
        return Ok(SignInGate::Allowed);
    }
    Ok(match by_id(tx, id)? {
        None => SignInGate::NoAccount,
        Some(u) => match u.locked_until.filter(|t| *t > now) {
            Some(until) => SignInGate::Locked {
                failures: u.failed_sign_ins,
                until,
            },
            None => SignInGate::Busy,
        },
    })
}

/// Gives the slot back and records the outcome in one statement (the delay rule of
/// [`LockPolicy::locked_until`] for a failure).
pub fn finish_sign_in(
    tx: &Connection,
    id: u64,
    ok: bool,
    now: u64,
    p: &LockPolicy,
) -> Result<(), StoreError> {
    let sql = if ok {
        "UPDATE users SET failed_sign_ins = 0, locked_until = NULL, \
             sign_ins_in_flight = MAX(sign_ins_in_flight - 1, 0) WHERE id = ?1"
    } else {
        "UPDATE users SET failed_sign_ins = failed_sign_ins + 1, \
             sign_ins_in_flight = MAX(sign_ins_in_flight - 1, 0), locked_until = CASE \
             WHEN failed_sign_ins + 1 >= ?3 THEN ?2 + ?4 \
             WHEN failed_sign_ins + 1 < ?5 THEN NULL \
             ELSE ?2 + MIN(?6 << MIN(failed_sign_ins + 1 - ?5, 20), ?7) END \
         WHERE id = ?1"
    };
    let mut stmt = tx.prepare_cached(sql)?;
    if ok {
        stmt.execute(params![id as i64])?;
    } else {
        stmt.execute(params![
            id as i64,
            now as i64,
            p.lock_after,
            p.lock_ms as i64,
            p.free_failures,
            p.base_delay_ms as i64,
            p.max_delay_ms as i64
        ])?;
    }
    Ok(())
}

/// Clears the failure counter and any lock.
pub fn clear_failures(tx: &Connection, id: u64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE users SET failed_sign_ins = 0, locked_until = NULL WHERE id = ?1",
        [id as i64],
    )?;
    Ok(())
}

/// Marks the e-mail address verified.
pub fn set_email_verified(tx: &Connection, id: u64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE users SET email_verified = 1 WHERE id = ?1",
        [id as i64],
    )?;
    Ok(())
}

/// Updates a foreign user's display name.
pub fn set_name(tx: &Connection, id: u64, name: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE users SET name = ?2 WHERE id = ?1",
        params![id as i64, name],
    )?;
    Ok(())
}
