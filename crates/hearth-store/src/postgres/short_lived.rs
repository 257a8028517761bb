//! The `short_lived` table's writes: many rows locked and written in one statement each
//! (a request's budgets), or compared and set in one statement outside any transaction.
use super::tx::Tx;
use crate::domain::state::store::{StoreError, StoredRow, Swap};

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
pub fn rows(
    tx: &mut Tx<'_>,
    space: &str,
    keys: &[[u8; 32]],
) -> Result<Vec<Option<StoredRow>>, StoreError> {
    let wanted: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let rows = tx.rows(
        "SELECT key, value, expires_at FROM short_lived WHERE space = $1 AND key = ANY($2)",
        &[&space, &wanted],
    )?;
    let mut found = std::collections::HashMap::new();
    for r in rows {
        let at = r.get::<_, i64>(2) as u64;
        found.insert(r.get::<_, Vec<u8>>(0), (r.get::<_, Vec<u8>>(1), at));
    }
    Ok(keys.iter().map(|k| found.remove(&k[..])).collect())
}

/// Sweeps, on average every 8th write, up to 64 expired rows of `space`, skipping any
/// another write holds: sweeping never waits on, nor deadlocks with, a parallel writer,
/// and outpaces what expires.
fn sweep(tx: &mut Tx<'_>, space: &str, now: u64) -> Result<(), StoreError> {
    if rand::random::<u8>() < 32 {
        tx.exec(
            "DELETE FROM short_lived WHERE ctid IN (SELECT ctid FROM short_lived \
             WHERE space = $1 AND expires_at <= $2 LIMIT 64 FOR UPDATE SKIP LOCKED)",
            &[&space, &i(now)],
        )?;
    }
    Ok(())
}

pub fn swap(
    tx: &mut Tx<'_>,
    space: &str,
    swaps: &[Swap],
    expires_at: u64,
    now: u64,
) -> Result<Vec<bool>, StoreError> {
    sweep(tx, space, now)?;
    // One statement per row: a swap never holds one row while it waits for another, so no
    // two writers deadlock, whatever order their rows come in. Under read committed, an
    // UPDATE that meets a row changed since its statement began waits for that change and
    // compares again with the row's new value; an INSERT that meets a row made meanwhile
    // does nothing. Either way that swap is not stored.
    let mut stored = Vec::with_capacity(swaps.len());
    for (key, expected, value) in swaps {
        let n = match expected {
            Some(old) => tx.exec(
                "UPDATE short_lived SET value = $4, expires_at = $5 \
                 WHERE space = $1 AND key = $2 AND value = $3",
                &[&space, &&key[..], old, value, &i(expires_at)],
            )?,
            None => tx.exec(
                "INSERT INTO short_lived (space, key, value, expires_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (space, key) DO NOTHING",
                &[&space, &&key[..], value, &i(expires_at)],
            )?,
        };
        stored.push(n > 0);
    }
    Ok(stored)
}

pub fn put(
    tx: &mut Tx<'_>,
    space: &str,
    values: &[([u8; 32], Vec<u8>)],
    expires_at: u64,
    now: u64,
) -> Result<(), StoreError> {
    sweep(tx, space, now)?;
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
