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
    if swaps.is_empty() {
        return Ok(Vec::new());
    }
    // One statement for every row, which never waits on another writer's lock, so no two
    // writers deadlock whatever rows they share: a row whose value is still the one read
    // is locked (a row another writer holds is skipped, its swap lost: that writer is
    // changing it) and updated; a row that was absent is inserted unless one was made
    // meanwhile. Under read committed the lock compares again with the row's newest value.
    let keys: Vec<&[u8]> = swaps.iter().map(|(k, _, _)| &k[..]).collect();
    let olds: Vec<Option<&[u8]>> = swaps.iter().map(|(_, o, _)| o.as_deref()).collect();
    let news: Vec<&[u8]> = swaps.iter().map(|(_, _, v)| &v[..]).collect();
    let stored = tx.rows(
        "WITH w AS (SELECT * FROM unnest($2::bytea[], $3::bytea[], $4::bytea[]) \
                 AS w(key, old, new)), \
             held AS (SELECT s.key FROM short_lived s JOIN w ON s.key = w.key \
                 WHERE s.space = $1 AND w.old IS NOT NULL AND s.value = w.old \
                 ORDER BY s.key FOR UPDATE OF s SKIP LOCKED), \
             up AS (UPDATE short_lived s SET value = w.new, expires_at = $5 \
                 FROM held h JOIN w ON w.key = h.key \
                 WHERE s.space = $1 AND s.key = h.key RETURNING s.key), \
             made AS (INSERT INTO short_lived (space, key, value, expires_at) \
                 SELECT $1, w.key, w.new, $5 FROM w WHERE w.old IS NULL ORDER BY w.key \
                 ON CONFLICT (space, key) DO NOTHING RETURNING key) \
         SELECT key FROM up UNION ALL SELECT key FROM made",
        &[&space, &keys, &olds, &news, &i(expires_at)],
    )?;
    let stored: Vec<Vec<u8>> = stored.iter().map(|r| r.get(0)).collect();
    Ok(swaps
        .iter()
        .map(|(k, _, _)| stored.iter().any(|s| s[..] == k[..]))
        .collect())
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
