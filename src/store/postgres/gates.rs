//! The larger atomic operations on PostgreSQL: the sign-in gate, code issuance, snowflake
//! worker leases and guarded session inserts. Each is one statement where the rule allows,
//! and every write transaction holds the backend's write lock (see `mod.rs`).
use super::read::Tx;
use super::rows;
use crate::domain::model::{CodeRecord, LockPolicy, Session, SignInGate};
use crate::domain::state::store::StoreError;

const ACCOUNT: &str = "*";
const WORKERS: i64 = 1024;

fn i(v: u64) -> i64 {
    v as i64
}

fn throttle_state(
    tx: &mut Tx<'_, '_>,
    email: &str,
    client: &str,
) -> Result<Option<(u32, Option<u64>)>, StoreError> {
    Ok(tx
        .row(
            "SELECT failures, locked_until FROM sign_in_throttle WHERE email = $1 AND client = $2",
            &[&email, &client],
        )?
        .map(|r| {
            (
                r.get::<_, i64>(0) as u32,
                r.get::<_, Option<i64>>(1).map(|v| v as u64),
            )
        }))
}

/// The sign-in gate (same rule as SQLite's).
pub fn begin_sign_in(
    tx: &mut Tx<'_, '_>,
    email: &str,
    client: &str,
    now: u64,
    p: &LockPolicy,
) -> Result<SignInGate, StoreError> {
    if let Some((failures, Some(until))) = throttle_state(tx, email, ACCOUNT)? {
        if until > now {
            return Ok(SignInGate::Locked { failures, until });
        }
    }
    let taken = tx.row(
        "INSERT INTO sign_in_throttle AS t (email, client, in_flight, in_flight_since, updated_at) \
         VALUES ($1, $2, 1, $3::bigint, $3::bigint) \
         ON CONFLICT (email, client) DO UPDATE SET \
             in_flight = CASE WHEN t.in_flight_since IS NULL OR t.in_flight_since <= $3::bigint - $4::bigint \
                 OR t.in_flight = 0 THEN 1 ELSE t.in_flight + 1 END, \
             in_flight_since = CASE WHEN t.in_flight_since IS NULL OR t.in_flight_since <= $3::bigint - $4::bigint \
                 OR t.in_flight = 0 THEN $3::bigint ELSE t.in_flight_since END, \
             updated_at = $3::bigint \
         WHERE (t.locked_until IS NULL OR t.locked_until <= $3::bigint) \
           AND (CASE WHEN t.in_flight_since IS NULL OR t.in_flight_since <= $3::bigint - $4::bigint THEN 0 \
                ELSE t.in_flight END) < GREATEST(1, $5::bigint - t.failures) \
         RETURNING 1",
        &[
            &email,
            &client,
            &i(now),
            &i(p.stale_in_flight_ms),
            &i64::from(p.free_failures),
        ],
    )?;
    if taken.is_some() {
        return Ok(SignInGate::Allowed);
    }
    Ok(match throttle_state(tx, email, client)? {
        Some((failures, Some(until))) if until > now => SignInGate::Locked { failures, until },
        _ => SignInGate::Busy,
    })
}

/// Gives the slot back and records the outcome (same rule as SQLite's).
pub fn finish_sign_in(
    tx: &mut Tx<'_, '_>,
    email: &str,
    client: &str,
    ok: bool,
    now: u64,
    p: &LockPolicy,
) -> Result<(), StoreError> {
    if ok {
        tx.exec(
            "UPDATE sign_in_throttle SET failures = 0, locked_until = NULL, \
                 in_flight = GREATEST(in_flight - 1, 0), updated_at = $3::bigint \
             WHERE email = $1 AND client = $2",
            &[&email, &client, &i(now)],
        )?;
        tx.exec(
            "DELETE FROM sign_in_throttle WHERE email = $1 AND client = $2",
            &[&email, &ACCOUNT],
        )?;
        return Ok(());
    }
    tx.exec(
        "UPDATE sign_in_throttle SET failures = failures + 1, \
             in_flight = GREATEST(in_flight - 1, 0), updated_at = $3::bigint, locked_until = CASE \
             WHEN failures + 1 < $4::bigint THEN NULL \
             ELSE $3::bigint + LEAST($5::bigint << LEAST(failures + 1 - $4::bigint, 20)::int, $6::bigint) END \
         WHERE email = $1 AND client = $2",
        &[
            &email,
            &client,
            &i(now),
            &i64::from(p.free_failures),
            &i(p.base_delay_ms),
            &i(p.max_delay_ms),
        ],
    )?;
    tx.exec(
        "INSERT INTO sign_in_throttle AS t (email, client, failures, locked_until, updated_at) \
         VALUES ($1, $2, 1, CASE WHEN 1 >= $4::bigint THEN $3::bigint + $5::bigint END, $3::bigint) \
         ON CONFLICT (email, client) DO UPDATE SET failures = t.failures + 1, updated_at = $3::bigint, \
             locked_until = CASE WHEN t.failures + 1 >= $4::bigint THEN $3::bigint + $5::bigint \
                 ELSE t.locked_until END",
        &[
            &email,
            &ACCOUNT,
            &i(now),
            &i64::from(p.lock_after),
            &i(p.lock_ms),
        ],
    )?;
    Ok(())
}

/// Issues a code unless `max_per_hour` were issued this hour (same rule as SQLite's).
pub fn issue_code(
    tx: &mut Tx<'_, '_>,
    user_id: u64,
    purpose: &str,
    c: &CodeRecord,
    now: u64,
    max_per_hour: u32,
) -> Result<bool, StoreError> {
    let issued = tx.row(
        "INSERT INTO email_codes AS e \
             (user_id, purpose, code_mac, expires_at, tries_left, issued_in_window, window_start) \
         VALUES ($1::bigint, $2, $3, $4::bigint, $5::bigint, 1, $6::bigint) \
         ON CONFLICT (user_id, purpose) DO UPDATE SET \
             code_mac = excluded.code_mac, \
             expires_at = excluded.expires_at, \
             tries_left = CASE WHEN e.expires_at > $6::bigint \
                 THEN LEAST(e.tries_left, excluded.tries_left) ELSE excluded.tries_left END, \
             issued_in_window = CASE WHEN e.window_start <= $6::bigint - 3600000 \
                 THEN 1 ELSE e.issued_in_window + 1 END, \
             window_start = CASE WHEN e.window_start <= $6::bigint - 3600000 \
                 THEN $6::bigint ELSE e.window_start END \
         WHERE e.window_start <= $6::bigint - 3600000 OR e.issued_in_window < $7::bigint \
         RETURNING 1",
        &[
            &i(user_id),
            &purpose,
            &&c.mac[..],
            &i(c.expires_at),
            &i64::from(c.tries_left),
            &i(now),
            &i64::from(max_per_hour),
        ],
    )?;
    Ok(issued.is_some())
}

/// Leases a free snowflake worker (or renews `renew`) for `holder`.
pub fn lease_worker(
    tx: &mut Tx<'_, '_>,
    holder: &str,
    renew: Option<u16>,
    now: u64,
    expires_at: u64,
) -> Result<Option<u16>, StoreError> {
    if let Some(worker) = renew {
        let n = tx.exec(
            "UPDATE id_workers SET expires_at = $3 WHERE worker = $1 AND holder = $2",
            &[&i64::from(worker), &holder, &i(expires_at)],
        )?;
        if n > 0 {
            return Ok(Some(worker));
        }
    }
    let free = tx.row(
        "SELECT w FROM (SELECT 0::bigint AS w UNION ALL SELECT worker + 1 FROM id_workers \
             UNION ALL SELECT worker FROM id_workers WHERE expires_at <= $1) AS c \
         WHERE w < $2 AND w NOT IN (SELECT worker FROM id_workers WHERE expires_at > $1) \
         ORDER BY w LIMIT 1",
        &[&i(now), &WORKERS],
    )?;
    let Some(worker) = free.map(|r| r.get::<_, i64>(0)) else {
        return Ok(None);
    };
    tx.exec(
        "INSERT INTO id_workers (worker, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (worker) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at",
        &[&worker, &holder, &i(expires_at)],
    )?;
    Ok(Some(worker as u16))
}

/// Inserts `s` where `condition` (SQL over `$2` = user id, `$9` = created, `$11` = expiry,
/// `$13` = token id and `$14` = `extra`) holds; returns whether it inserted.
pub fn insert_session_where(
    tx: &mut Tx<'_, '_>,
    s: &Session,
    condition: &str,
    extra: &(dyn postgres::types::ToSql + Sync),
) -> Result<bool, StoreError> {
    let sql = format!(
        "INSERT INTO sessions ({}) \
         SELECT $1::bigint, $2::bigint, $3::bytea, $4::bigint, $5::text, $6::text, $7::text, \
                $8::text, $9::bigint, $10::bigint, $11::bigint, $12::text, $13::bigint \
         WHERE {condition}",
        rows::SESSION
    );
    let n = tx.exec_unique(
        &sql,
        &[
            &i(s.id),
            &i(s.user_id),
            &&s.token_hash[..],
            &i64::from(s.device.client_id),
            &s.device.device_type,
            &s.device.device_version,
            &s.device.app_name,
            &s.device.app_version,
            &i(s.created_at),
            &i(s.last_active),
            &i(s.expires_at),
            &rows::scopes_text(s),
            &s.access_token_id.map(i),
            extra,
        ],
        "that session",
    )?;
    Ok(n > 0)
}
