//! The `short_lived` table's writes: many rows locked and written in one statement each
//! (a request's budgets).
use super::tx::Tx;
use crate::domain::state::store::StoreError;

fn i(v: u64) -> i64 {
    v as i64
}

pub fn for_update(
    tx: &mut Tx<'_>,
    space: &str,
    keys: &[[u8; 32]],
    now: u64,
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    // One statement locks every row, in key order (LockRows runs above the sort).
    const LOCK: &str = "SELECT key, value, expires_at FROM short_lived \
         WHERE space = $1 AND key = ANY($2) ORDER BY key FOR UPDATE";
    let wanted: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let mut rows = tx.rows(LOCK, &[&space, &wanted])?;
    if rows.len() < keys.len() {
        // Expired placeholders, so there is a row to lock: parallel first writers of
        // one key queue on it instead of racing.
        tx.exec(
            "INSERT INTO short_lived (space, key, value, expires_at) \
             SELECT $1, k, '', 0 FROM unnest($2::bytea[]) AS k ORDER BY k \
             ON CONFLICT (space, key) DO NOTHING",
            &[&space, &wanted],
        )?;
        rows = tx.rows(LOCK, &[&space, &wanted])?;
    }
    let mut live = std::collections::HashMap::new();
    for r in rows {
        if r.get::<_, i64>(2) > i(now) {
            live.insert(r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1));
        }
    }
    Ok(keys.iter().map(|k| live.remove(&k[..])).collect())
}
pub fn put(
    tx: &mut Tx<'_>,
    space: &str,
    values: &[([u8; 32], Vec<u8>)],
    expires_at: u64,
    now: u64,
) -> Result<(), StoreError> {
    // Every 8th write (on average) sweeps up to 64 expired rows, skipping any another
    // write holds: sweeping never waits on, nor deadlocks with, a parallel writer, and
    // outpaces what expires.
    if rand::random::<u8>() < 32 {
        tx.exec(
            "DELETE FROM short_lived WHERE ctid IN (SELECT ctid FROM short_lived \
             WHERE space = $1 AND expires_at <= $2 LIMIT 64 FOR UPDATE SKIP LOCKED)",
            &[&space, &i(now)],
        )?;
    }
    let keys: Vec<&[u8]> = values.iter().map(|(k, _)| &k[..]).collect();
    let bodies: Vec<&[u8]> = values.iter().map(|(_, v)| &v[..]).collect();
    tx.exec(
        "INSERT INTO short_lived (space, key, value, expires_at) \
         SELECT $1, k, v, $4 FROM unnest($2::bytea[], $3::bytea[]) AS u(k, v) \
         ON CONFLICT (space, key) DO UPDATE SET value = excluded.value, \
             expires_at = excluded.expires_at",
        &[&space, &keys, &bodies, &i(expires_at)],
    )?;
    Ok(())
}
