//! The `second_factors` table: one row per account with a second factor (set up or being
//! set up).
use crate::sqlite::db_err;
use rusqlite::{params, Connection};

use super::{cached_exec, cached_row, StoreError};
use crate::domain::model::SecondFactor;

/// The second factor of `user_id`.
pub fn get(c: &Connection, user_id: u64) -> Result<Option<SecondFactor>, StoreError> {
    cached_row(
        c,
        "SELECT secret, enabled, last_step, recovery FROM second_factors WHERE user_id = ?1",
        [user_id as i64],
        |r| {
            Ok(SecondFactor {
                sealed_secret: r.get(0)?,
                enabled: r.get(1)?,
                last_step: r.get::<_, i64>(2)? as u64,
                recovery: r.get(3)?,
            })
        },
    )
}

/// Sets (or with `None` removes) the second factor of `user_id`.
pub fn set(
    tx: &Connection,
    user_id: u64,
    factor: Option<&SecondFactor>,
    now: u64,
) -> Result<(), StoreError> {
    match factor {
        None => cached_exec(
            tx,
            "DELETE FROM second_factors WHERE user_id = ?1",
            [user_id as i64],
        )
        .map_err(db_err)?,
        Some(f) => cached_exec(
            tx,
            "INSERT OR REPLACE INTO second_factors \
             (user_id, secret, enabled, last_step, recovery, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                user_id as i64,
                f.sealed_secret,
                f.enabled,
                f.last_step as i64,
                f.recovery,
                now as i64
            ],
        )
        .map_err(db_err)?,
    };
    Ok(())
}
