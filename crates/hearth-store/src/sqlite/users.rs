//! The `users` table: local accounts, guests and foreign (federated) users.
use crate::sqlite::db_err;
use rusqlite::{params, Connection, Row};

use super::{cached_exec, cached_row, optional, unique, StoreError};
use crate::domain::model::User;

const COLUMNS: &str = "id, email, name, password_hash, email_verified, home_server, \
                       remote_user_id, created_at, disabled";

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
        created_at: r.get::<_, i64>(7)? as u64,
        disabled: r.get(8)?,
    })
}

/// Inserts a user; a taken e-mail (or foreign identity) is [`StoreError::Conflict`].
pub fn insert(tx: &Connection, u: &User) -> Result<(), StoreError> {
    cached_exec(
        tx,
        &format!("INSERT INTO users ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        params![
            u.id as i64,
            u.email,
            u.name,
            u.password_hash,
            u.email_verified,
            u.home.as_ref().map(|h| h.0.clone()),
            u.home.as_ref().map(|h| h.1 as i64),
            u.created_at as i64,
            u.disabled,
        ],
    )
    .map_err(|e| unique(e, "that e-mail address"))?;
    Ok(())
}

/// Turns a guest into a full account while it is still a guest.
pub fn upgrade_guest(tx: &Connection, u: &User) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE users SET email = ?2, name = ?3, password_hash = ?4 WHERE id = ?1 \
             AND email IS NULL AND password_hash IS NULL AND home_server IS NULL",
            params![u.id as i64, u.email, u.name, u.password_hash],
        )
        .map_err(|e| unique(e, "that e-mail address"))?;
    Ok(n > 0)
}

/// A local user by e-mail (case-insensitive).
pub fn by_email(c: &Connection, email: &str) -> Result<Option<User>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE email = ?1 AND home_server IS NULL"),
        [email],
        from_row,
    ))
}

pub fn by_id(c: &Connection, id: u64) -> Result<Option<User>, StoreError> {
    cached_row(
        c,
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        [id as i64],
        from_row,
    )
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
    let mut stmt = c
        .prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))
        .map_err(db_err)?;
    let rows = stmt.query_map([], from_row).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// Replaces the password hash.
pub fn set_password_hash(tx: &Connection, id: u64, hash: &str) -> Result<(), StoreError> {
    cached_exec(
        tx,
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![id as i64, hash],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Marks the e-mail address verified.
pub fn set_email_verified(tx: &Connection, id: u64) -> Result<(), StoreError> {
    cached_exec(
        tx,
        "UPDATE users SET email_verified = 1 WHERE id = ?1",
        [id as i64],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Updates a foreign user's display name.
pub fn set_name(tx: &Connection, id: u64, name: &str) -> Result<(), StoreError> {
    cached_exec(
        tx,
        "UPDATE users SET name = ?2 WHERE id = ?1",
        params![id as i64, name],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Disables or enables an account.
pub fn set_disabled(tx: &Connection, id: u64, disabled: bool) -> Result<(), StoreError> {
    cached_exec(
        tx,
        "UPDATE users SET disabled = ?2 WHERE id = ?1",
        params![id as i64, disabled],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Deletes an account; its sessions and codes go with it. Returns whether it existed.
pub fn delete(tx: &Connection, id: u64) -> Result<bool, StoreError> {
    // Invites name their creator without a foreign key (0 is the operator).
    cached_exec(tx, "DELETE FROM invites WHERE creator_id = ?1", [id as i64]).map_err(db_err)?;
    Ok(cached_exec(tx, "DELETE FROM users WHERE id = ?1", [id as i64]).map_err(db_err)? > 0)
}
