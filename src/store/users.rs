//! The `users` table: local accounts, guests and foreign (federated) users.
use rusqlite::{params, Connection, Row};

use super::{optional, StoreError};

/// One user row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Snowflake id.
    pub id: u64,
    /// Lower-cased e-mail; `None` for guests and foreign users.
    pub email: Option<String>,
    /// Display name.
    pub name: String,
    /// argon2id PHC string; `None` when the account has no password.
    pub password_hash: Option<String>,
    /// Whether the e-mail address was verified.
    pub email_verified: bool,
    /// For a foreign user: the home server and the user's id there.
    pub home: Option<(String, u64)>,
    /// Consecutive failed sign-ins.
    pub failed_sign_ins: u32,
    /// Sign-in refused until this time (unix ms).
    pub locked_until: Option<u64>,
    /// Creation time (unix ms).
    pub created_at: u64,
}

const COLUMNS: &str = "id, email, name, password_hash, email_verified, home_server, \
                       remote_user_id, failed_sign_ins, locked_until, created_at";

fn from_row(r: &Row<'_>) -> Result<UserRow, rusqlite::Error> {
    let home_server: Option<String> = r.get(5)?;
    let remote: Option<i64> = r.get(6)?;
    Ok(UserRow {
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
pub fn insert(tx: &Connection, u: &UserRow) -> Result<(), StoreError> {
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
    .map_err(|e| StoreError::unique(e, "that e-mail address"))?;
    Ok(())
}

/// A local user by e-mail (case-insensitive).
pub fn by_email(c: &Connection, email: &str) -> Result<Option<UserRow>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE email = ?1 AND home_server IS NULL"),
        [email],
        from_row,
    ))
}

/// A user by id.
pub fn by_id(c: &Connection, id: u64) -> Result<Option<UserRow>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        [id as i64],
        from_row,
    ))
}

/// A foreign user by home server and remote id.
pub fn by_home(c: &Connection, server: &str, remote: u64) -> Result<Option<UserRow>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE home_server = ?1 AND remote_user_id = ?2"),
        params![server, remote as i64],
        from_row,
    ))
}

/// All users, oldest first.
pub fn list(c: &Connection) -> Result<Vec<UserRow>, StoreError> {
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

/// Records a failed sign-in and the lock that follows from it.
pub fn record_failure(
    tx: &Connection,
    id: u64,
    locked_until: Option<u64>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE users SET failed_sign_ins = failed_sign_ins + 1, locked_until = ?2 WHERE id = ?1",
        params![id as i64, locked_until.map(|v| v as i64)],
    )?;
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
