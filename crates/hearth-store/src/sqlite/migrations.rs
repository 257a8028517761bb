//! Numbered, embedded migrations, each applied in one transaction; `PRAGMA user_version`
//! records how many ran. A database from a newer Hearth is refused.
use crate::sqlite::db_err;
use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_federation.sql"),
    include_str!("migrations/0003_id_workers.sql"),
    include_str!("migrations/0004_code_issuance.sql"),
    include_str!("migrations/0005_sign_in_throttle.sql"),
    include_str!("migrations/0006_user_disabled.sql"),
    include_str!("migrations/0007_access_tokens.sql"),
    include_str!("migrations/0008_invites.sql"),
    include_str!("migrations/0009_identities.sql"),
    include_str!("migrations/0010_job_leases.sql"),
    include_str!("migrations/0011_short_lived.sql"),
    include_str!("migrations/0012_account_changes.sql"),
    include_str!("migrations/0013_sessions_by_activity.sql"),
    include_str!("migrations/0014_second_factors.sql"),
    include_str!("migrations/0015_session_amr.sql"),
    include_str!("migrations/0016_passkeys.sql"),
    include_str!("migrations/0017_revocation_notices.sql"),
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

pub(super) fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db_err)?;
    if found > LATEST {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            known: LATEST,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction().map_err(db_err)?;
        tx.execute_batch(sql).map_err(db_err)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
    }
    Ok(())
}
