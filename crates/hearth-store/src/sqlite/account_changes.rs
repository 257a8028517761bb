//! The `account_changes` table: a pending new e-mail address and a pending deletion per
//! account.
use crate::sqlite::db_err;
use rusqlite::{params, Connection};

use super::{cached_row, optional, unique, StoreError};
use crate::domain::model::AccountChange;

/// The changes waiting for `user_id` (none: the default).
pub fn get(c: &Connection, user_id: u64) -> Result<AccountChange, StoreError> {
    let row = cached_row(
        c,
        "SELECT pending_email, delete_at FROM account_changes WHERE user_id = ?1",
        [user_id as i64],
        |r| {
            Ok(AccountChange {
                pending_email: r.get(0)?,
                delete_at: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
            })
        },
    )?;
    Ok(row.unwrap_or_default())
}

/// The account waiting to move to `email`.
pub fn by_pending_email(c: &Connection, email: &str) -> Result<Option<u64>, StoreError> {
    optional(c.query_row(
        "SELECT user_id FROM account_changes WHERE pending_email = ?1",
        [email],
        |r| r.get::<_, i64>(0).map(|v| v as u64),
    ))
}

/// Accounts whose deletion is due at `now`, oldest first.
pub fn due(c: &Connection, now: u64, limit: u32) -> Result<Vec<u64>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT user_id FROM account_changes WHERE delete_at IS NOT NULL AND delete_at <= ?1 \
         ORDER BY delete_at LIMIT ?2",
        )
        .map_err(db_err)?;
    let ids = stmt
        .query_map(params![now as i64, limit], |r| r.get::<_, i64>(0))
        .map_err(db_err)?
        .map(|r| r.map(|v| v as u64))
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    Ok(ids)
}

/// Sets the changes waiting for `user_id` (none: the row goes). A pending address another
/// account waits for, or one in use, is [`StoreError::Conflict`].
pub fn set(tx: &Connection, user_id: u64, change: &AccountChange) -> Result<(), StoreError> {
    if change == &AccountChange::default() {
        tx.execute(
            "DELETE FROM account_changes WHERE user_id = ?1",
            [user_id as i64],
        )
        .map_err(db_err)?;
        return Ok(());
    }
    if let Some(email) = &change.pending_email {
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE email = ?1)",
                [email],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        if taken {
            return Err(StoreError::Conflict("that e-mail address"));
        }
    }
    tx.execute(
        "INSERT INTO account_changes (user_id, pending_email, delete_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (user_id) DO UPDATE SET pending_email = ?2, delete_at = ?3",
        params![
            user_id as i64,
            change.pending_email,
            change.delete_at.map(|v| v as i64)
        ],
    )
    .map_err(|e| unique(e, "that e-mail address"))?;
    Ok(())
}

/// Moves `user_id` to its pending address, verified; `false` when it waits for none or
/// another address.
pub fn confirm_email(tx: &Connection, user_id: u64, email: &str) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE users SET email = ?2, email_verified = 1 WHERE id = ?1 AND EXISTS \
             (SELECT 1 FROM account_changes WHERE user_id = ?1 AND pending_email = ?2)",
            params![user_id as i64, email],
        )
        .map_err(|e| unique(e, "that e-mail address"))?;
    tx.execute(
        "UPDATE account_changes SET pending_email = NULL WHERE user_id = ?1 AND pending_email = ?2",
        params![user_id as i64, email],
    )
    .map_err(db_err)?;
    tx.execute(
        "DELETE FROM account_changes WHERE user_id = ?1 AND pending_email IS NULL AND delete_at IS NULL",
        [user_id as i64],
    ).map_err(db_err)?;
    Ok(n > 0)
}
