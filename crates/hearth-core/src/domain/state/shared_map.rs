//! Short-lived state that every node of a cluster must see (Harmony step flows): an async
//! map with an atomic conditional update. Single node: the in-memory [`LocalMap`]. Cluster:
//! [`StoreMap`], rows in the shared database through the store seam, keyed by the SHA-256
//! of the key and sealed with ChaCha20-Poly1305 (`identity/seal.rs`, a random nonce) under
//! the cluster's key, bound to the map and the row, so the database holds neither a flow's
//! id nor the session token a finished flow carries, and whoever reads or writes it can
//! neither open nor forge nor move a value. After a key rotation, values sealed under the
//! old key no longer open: short-lived state starts over (flows are begun again).
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::short_lived::{LocalMap, ShortLived};
use super::{Store, StoreError};
use crate::clock::SharedClock;
use crate::domain::keyring::KeyRing;

/// The cluster's key ring, known once the services exist (a map is made before them).
pub type SealKeys = std::sync::Arc<std::sync::OnceLock<std::sync::Arc<KeyRing>>>;

/// A change to apply to a live value (`None`: leave it).
pub type Change<V> = Box<dyn FnMut(&V) -> Option<V> + Send>;
/// A new value from the live one, if any.
pub type Update<V> = Box<dyn FnMut(Option<&V>) -> V + Send>;
/// A new value for the `i`-th key from its live one, if any.
pub type EachUpdate<V> = Box<dyn FnMut(usize, Option<&V>) -> V + Send>;

/// Keyed short-lived state shared by the nodes that serve it. Every operation says when the
/// state could not be reached, so callers fail closed (a budget that cannot be read allows
/// nothing; a flow that cannot be read is not "unknown").
#[async_trait::async_trait]
pub trait SharedMap<V>: Send + Sync {
    /// The live value of `key`.
    async fn get(&self, key: &str) -> Result<Option<V>, StoreError>;
    /// Stores `value` under `key` for `ttl_ms`.
    async fn put(&self, key: &str, value: V, ttl_ms: u64) -> Result<(), StoreError>;
    /// Atomically: when `key` has a live value and `change` returns a new one, stores it for
    /// `ttl_ms` and returns true; otherwise changes nothing.
    async fn modify(&self, key: &str, ttl_ms: u64, change: Change<V>) -> Result<bool, StoreError>;
    /// Atomically replaces the value of `key` (live or not) with `update(current)`, live
    /// for `ttl_ms` (a map in the store may keep it up to 10 s longer: budgets, which this
    /// serves, refill meanwhile); returns the new value.
    async fn update(&self, key: &str, ttl_ms: u64, update: Update<V>) -> Result<V, StoreError>;
    /// [`SharedMap::update`] of several keys at once, in one call (a request's budgets),
    /// each key's update atomic on its own; returns the new values in the keys' order.
    async fn update_each(
        &self,
        keys: &[String],
        ttl_ms: u64,
        update: EachUpdate<V>,
    ) -> Result<Vec<V>, StoreError>;
}

/// Takes the live value of `key` out of `map` (single use: of parallel takers, one gets it).
pub async fn take<V: Clone + Send + 'static>(
    map: &dyn SharedMap<V>,
    key: &str,
) -> Result<Option<V>, StoreError> {
    let taken = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = taken.clone();
    let took = map
        .modify(
            key,
            0,
            Box::new(move |v: &V| {
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.clone());
                Some(v.clone())
            }),
        )
        .await?;
    let value = taken.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(value.filter(|_| took))
}

#[async_trait::async_trait]
impl<V: Clone + Send + Sync + 'static> SharedMap<V> for LocalMap<String, V> {
    async fn get(&self, key: &str) -> Result<Option<V>, StoreError> {
        Ok(ShortLived::get(self, &key.to_owned()))
    }
    async fn put(&self, key: &str, value: V, ttl_ms: u64) -> Result<(), StoreError> {
        ShortLived::put(self, key.to_owned(), value, ttl_ms);
        Ok(())
    }
    async fn modify(
        &self,
        key: &str,
        ttl_ms: u64,
        mut change: Change<V>,
    ) -> Result<bool, StoreError> {
        Ok(ShortLived::modify(
            self,
            &key.to_owned(),
            ttl_ms,
            &mut *change,
        ))
    }
    async fn update(&self, key: &str, ttl_ms: u64, mut update: Update<V>) -> Result<V, StoreError> {
        Ok(ShortLived::update(self, key.to_owned(), ttl_ms, &mut |v| {
            update(v.as_ref())
        }))
    }
    async fn update_each(
        &self,
        keys: &[String],
        ttl_ms: u64,
        mut update: EachUpdate<V>,
    ) -> Result<Vec<V>, StoreError> {
        Ok(keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                ShortLived::update(self, key.clone(), ttl_ms, &mut |v| update(i, v.as_ref()))
            })
            .collect())
    }
}

/// Values in the store, under a `space` name.
#[derive(Debug)]
pub struct StoreMap<V> {
    store: Store,
    clock: SharedClock,
    space: &'static str,
    keys: SealKeys,
    /// Until when (unix ms) updates skip the compare-and-set: set for a second whenever one
    /// gave up, so a row that hot (one address's burst) is taken on its lock, in turn,
    /// instead of being fought over.
    busy_until: std::sync::atomic::AtomicU64,
    /// Updates of this node take their rows' stripes in turn (see [`StoreMap::update_each`]).
    stripes: std::sync::Arc<[std::sync::Arc<tokio::sync::Mutex<()>>]>,
    /// The rows this node's updates last stored, as stored (see [`Known`]).
    known: std::sync::Arc<LocalMap<[u8; 32], Known>>,
    _values: PhantomData<fn() -> V>,
}

/// What a node knows of a row its compare-and-set last wrote. While no other writer
/// touches the row (one node; a client whose requests reach one node), the next update
/// compares against what was stored without reading it first: one round trip instead of
/// two. A lost compare-and-set marks the row shared, and it is read first again until the
/// mark expires, so rows that several nodes write cost no more than before.
#[derive(Debug, Clone)]
enum Known {
    /// The sealed value stored and its expiry.
    Stored(Vec<u8>, u64),
    /// Another writer changed it lately.
    Shared,
}

/// Rows a node remembers per map (each ~150 bytes).
const KNOWN_ROWS: usize = 4096;
/// How long a row stays marked shared (ms).
const SHARED_FOR_MS: u64 = 10_000;

/// Stripes of a map's rows on one node: updates of rows in different stripes run at once.
const STRIPES: usize = 64;

impl<V> StoreMap<V> {
    /// A map of `space` in `store`, sealed under the current key of `keys`.
    pub fn new(store: Store, clock: SharedClock, space: &'static str, keys: SealKeys) -> Self {
        Self {
            known: std::sync::Arc::new(LocalMap::new(clock.clone(), KNOWN_ROWS)),
            store,
            clock,
            space,
            keys,
            busy_until: std::sync::atomic::AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| std::sync::Arc::default()).collect(),
            _values: PhantomData,
        }
    }

    /// Waits for the stripes of `rows`, taken in one order (no two updates deadlock).
    async fn stripes_of(
        &self,
        rows: &[([u8; 32], Vec<usize>)],
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut wanted: Vec<usize> = rows
            .iter()
            .map(|(row, _)| usize::from(row[0]) % STRIPES)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut held = Vec::with_capacity(wanted.len());
        for i in wanted {
            held.push(self.stripes[i].clone().lock_owned().await);
        }
        held
    }

    fn sealer(&self) -> Sealer {
        Sealer {
            space: self.space,
            keys: self.keys.get().map(|k| k.current()),
        }
    }
}

/// Seals and opens one map's values under the key in force.
struct Sealer {
    space: &'static str,
    keys: Option<std::sync::Arc<crate::domain::keyring::KeySet>>,
}

impl Sealer {
    /// The AEAD's purpose (its key and associated data): this map and this row.
    fn purpose(&self, row: &[u8; 32]) -> String {
        format!("short-lived {} {}", self.space, hex::encode(row))
    }

    fn encode<V: Serialize>(&self, row: &[u8; 32], v: &V) -> Result<Vec<u8>, StoreError> {
        let keys = self.keys.as_ref().ok_or_else(|| {
            StoreError::Backend(
                "the cluster's key is not loaded yet: shared state is not written".into(),
            )
        })?;
        let plain = serde_json::to_vec(v)
            .map_err(|e| StoreError::Backend(format!("shared state not encoded: {e}")))?;
        let plain = zeroize::Zeroizing::new(plain);
        Ok(crate::identity::seal::seal(
            &keys.node,
            &self.purpose(row),
            &plain,
        ))
    }

    fn decode<V: DeserializeOwned>(&self, row: &[u8; 32], sealed: Vec<u8>) -> Option<V> {
        let keys = self.keys.as_ref()?;
        let plain = crate::identity::seal::open(&keys.node, &self.purpose(row), &sealed)?;
        serde_json::from_slice(&plain).ok()
    }
}

/// The row key of `key`.
fn row_key(key: &str) -> [u8; 32] {
    Sha256::digest([b"row\0", key.as_bytes()].concat()).into()
}

#[async_trait::async_trait]
impl<V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> SharedMap<V> for StoreMap<V> {
    async fn get(&self, key: &str) -> Result<Option<V>, StoreError> {
        let (space, row, now) = (self.space, row_key(key), self.clock.now_ms());
        let bytes = self
            .store
            .read(move |tx| tx.short_lived(space, &row, now))
            .await?;
        Ok(bytes.and_then(|b| self.sealer().decode(&row, b)))
    }

    async fn put(&self, key: &str, value: V, ttl_ms: u64) -> Result<(), StoreError> {
        let (space, row, now) = (self.space, row_key(key), self.clock.now_ms());
        let bytes = self.sealer().encode(&row, &value)?;
        self.store
            .write_locked(move |tx| {
                tx.put_short_lived(space, &[(row, bytes.clone())], now + ttl_ms, now)
            })
            .await
    }

    async fn modify(
        &self,
        key: &str,
        ttl_ms: u64,
        mut change: Change<V>,
    ) -> Result<bool, StoreError> {
        let (space, row, now) = (self.space, row_key(key), self.clock.now_ms());
        let sealer = self.sealer();
        self.store
            .write_locked(move |tx| {
                let Some(old) = tx
                    .short_lived_for_update(space, &[row], now)?
                    .pop()
                    .flatten()
                    .and_then(|b| sealer.decode::<V>(&row, b))
                else {
                    return Ok(false);
                };
                let Some(new) = change(&old) else {
                    return Ok(false);
                };
                let sealed = sealer.encode(&row, &new)?;
                tx.put_short_lived(space, &[(row, sealed)], now + ttl_ms, now)?;
                Ok::<_, super::StoreError>(true)
            })
            .await
    }

    async fn update(&self, key: &str, ttl_ms: u64, mut update: Update<V>) -> Result<V, StoreError> {
        let mut each = self
            .update_each(
                &[key.to_owned()],
                ttl_ms,
                Box::new(move |_, old: Option<&V>| update(old)),
            )
            .await?;
        each.pop().ok_or(StoreError::Closed)
    }

    async fn update_each(
        &self,
        keys: &[String],
        ttl_ms: u64,
        update: EachUpdate<V>,
    ) -> Result<Vec<V>, StoreError> {
        let (space, now, n) = (self.space, self.clock.now_ms(), keys.len());
        let until = kept_until(now, ttl_ms);
        let rows = std::sync::Arc::new(rows_of(keys));
        // Requests of this node that update one row (one client's budget) go in turn: the
        // compare-and-set below then loses only to other nodes, instead of to every
        // parallel request here, each loss a read and a write more (a quarter of the
        // sign-ins of one busy client went on to the locked path).
        let _turn = self.stripes_of(&rows).await;
        let update = std::sync::Arc::new(std::sync::Mutex::new(update));
        // Compare-and-set first: read the rows unlocked, work out their new values here,
        // and store each only where it still holds what was read (one round trip each way,
        // no transaction). A row another request wrote meanwhile is read again.
        // What is stored so far lives outside the job: a run again (after a deadlock)
        // goes on from there instead of charging a stored row twice.
        let progress = (0..n).map(|_| None).collect::<Vec<Option<V>>>();
        let progress = std::sync::Arc::new(std::sync::Mutex::new((
            progress,
            (0..rows.len()).collect::<Vec<usize>>(),
        )));
        let (r, u, sealer, seen, known) = (
            rows.clone(),
            update.clone(),
            self.sealer(),
            progress.clone(),
            self.known.clone(),
        );
        let busy = &self.busy_until;
        let rounds = match now < busy.load(std::sync::atomic::Ordering::Relaxed) {
            true => 0,
            false => SWAP_ROUNDS,
        };
        if rounds > 0 {
            self.store
                .write_each(move |tx| {
                    let mut update = u.lock().unwrap_or_else(|e| e.into_inner());
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    let (out, pending) = &mut *seen;
                    for round in 0..rounds {
                        // Only the first round may trust what this node stored: a later one
                        // runs because a row changed under it.
                        let trusted = (round == 0).then_some(&*known);
                        let found = found_or_known(tx, space, trusted, pending, &r)?;
                        let mut swaps = Vec::with_capacity(pending.len());
                        for (&p, found) in pending.iter().zip(found) {
                            let (row, places) = &r[p];
                            let live = found
                                .as_ref()
                                .filter(|(_, expires_at)| *expires_at > now)
                                .and_then(|(b, _)| sealer.decode::<V>(row, b.clone()));
                            if let Some(v) = work_out(places, live, &mut update, out) {
                                swaps.push((*row, found.map(|(b, _)| b), sealer.encode(row, &v)?));
                            }
                        }
                        let stored = tx.swap_short_lived(space, &swaps, until, now)?;
                        for ((row, _, new), stored) in swaps.iter().zip(&stored) {
                            let shared = matches!(known.get(row), Some(Known::Shared));
                            match stored {
                                // A shared row stays marked until the mark expires: the
                                // next swap after a win would lose to the other writer again.
                                true if shared => {}
                                true => known.put(
                                    *row,
                                    Known::Stored(new.clone(), until),
                                    until.saturating_sub(now),
                                ),
                                false => known.put(*row, Known::Shared, SHARED_FOR_MS),
                            }
                        }
                        let lost: Vec<[u8; 32]> = swaps
                            .iter()
                            .zip(&stored)
                            .filter(|(_, stored)| !**stored)
                            .map(|((row, _, _), _)| *row)
                            .collect();
                        pending.retain(|&p| lost.contains(&r[p].0));
                        if pending.is_empty() {
                            break;
                        }
                    }
                    Ok::<_, StoreError>(())
                })
                .await?;
        }
        let (done, pending) =
            std::mem::take(&mut *progress.lock().unwrap_or_else(|e| e.into_inner()));
        if pending.is_empty() {
            return Ok(done.into_iter().flatten().collect());
        }
        if rounds > 0 {
            busy.store(now + 1_000, std::sync::atomic::Ordering::Relaxed);
        }
        // Rows that busy: queue on their locks instead, in one order (no deadlock). Rows
        // already swapped keep their answers.
        let sealer = self.sealer();
        self.store
            .write_locked(move |tx| {
                let mut update = update.lock().unwrap_or_else(|e| e.into_inner());
                let wanted: Vec<[u8; 32]> = pending.iter().map(|&p| rows[p].0).collect();
                let olds = tx.short_lived_for_update(space, &wanted, now)?;
                let mut out = done.clone();
                let mut sealed = Vec::with_capacity(wanted.len());
                for (&p, old) in pending.iter().zip(olds) {
                    let (row, places) = &rows[p];
                    let live = old.and_then(|b| sealer.decode::<V>(row, b));
                    if let Some(v) = work_out(places, live, &mut update, &mut out) {
                        sealed.push((*row, sealer.encode(row, &v)?));
                    }
                }
                tx.put_short_lived(space, &sealed, until, now)?;
                Ok::<_, StoreError>(out.into_iter().flatten().collect())
            })
            .await
    }
}

/// The stored rows of `pending`: what this node last stored where `known` says so (see
/// [`Known`]), the others read in one statement (none when all are known).
fn found_or_known(
    tx: &mut dyn super::WriteTx,
    space: &str,
    known: Option<&LocalMap<[u8; 32], Known>>,
    pending: &[usize],
    rows: &[([u8; 32], Vec<usize>)],
) -> Result<Vec<Option<super::store::StoredRow>>, StoreError> {
    let mut found: Vec<Option<Option<super::store::StoredRow>>> = pending
        .iter()
        .map(
            |&p| match known.and_then(|k| ShortLived::get(k, &rows[p].0)) {
                Some(Known::Stored(value, until)) => Some(Some((value, until))),
                _ => None,
            },
        )
        .collect();
    let unknown: Vec<[u8; 32]> = pending
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(&p, _)| rows[p].0)
        .collect();
    if !unknown.is_empty() {
        let mut read = tx.short_lived_rows(space, &unknown)?.into_iter();
        for f in found.iter_mut().filter(|f| f.is_none()) {
            *f = Some(read.next().flatten());
        }
    }
    Ok(found.into_iter().map(Option::flatten).collect())
}

/// Granularity of the expiry [`SharedMap::update_each`] stores (ms).
const EXPIRY_STEP_MS: u64 = 10_000;

/// When a row updated at `now` to live `ttl_ms` may go: at least that long, rounded up to
/// [`EXPIRY_STEP_MS`], so a row charged many times a second keeps its expiry between
/// charges. PostgreSQL then updates it in place (a HOT update: no indexed column changed)
/// instead of adding index entries at every charge, which lookups of a busy client's
/// budget had to step over.
fn kept_until(now: u64, ttl_ms: u64) -> u64 {
    now.saturating_add(ttl_ms).div_ceil(EXPIRY_STEP_MS) * EXPIRY_STEP_MS
}

/// Rounds of compare-and-set an update of shared rows tries before it queues on their
/// locks (and the map's next second of updates with it): a lost round means another
/// request wrote a row between this one's read and write.
const SWAP_ROUNDS: usize = 3;

/// The distinct rows of `keys`, sorted (every writer takes them in one order), each with the
/// places in `keys` that name it: a key named twice is one row, updated twice in turn, as
/// one map would.
fn rows_of(keys: &[String]) -> Vec<([u8; 32], Vec<usize>)> {
    let mut rows: Vec<([u8; 32], Vec<usize>)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let row = row_key(key);
        match rows.iter_mut().find(|(r, _)| *r == row) {
            Some((_, at)) => at.push(i),
            None => rows.push((row, vec![i])),
        }
    }
    rows.sort_by_key(|(row, _)| *row);
    rows
}

/// The new value of one row from its `live` one: `update` applied for each of its `places`
/// in turn, each answer kept in `out`.
fn work_out<V: Clone>(
    places: &[usize],
    live: Option<V>,
    update: &mut EachUpdate<V>,
    out: &mut [Option<V>],
) -> Option<V> {
    let mut value = live;
    for &i in places {
        let new = update(i, value.as_ref());
        out[i] = Some(new.clone());
        value = Some(new);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::key::NodeKey;

    fn sealer(space: &'static str, key: &NodeKey) -> Sealer {
        let jwt = crate::identity::jwt::JwtKeys {
            current: crate::identity::jwt::JwtKey {
                kid: "k".into(),
                key: NodeKey::generate(),
            },
            previous: None,
        };
        let ring = KeyRing::new(key.clone(), Vec::new(), jwt, 60);
        Sealer {
            space,
            keys: Some(ring.current()),
        }
    }

    #[test]
    fn sealed_values_open_only_with_their_key_map_and_row() {
        let key = NodeKey::generate();
        let flows = sealer("flow", &key);
        let (row, other_row) = (row_key("flow-id"), row_key("another-id"));
        let token = "hs_a-session-token-in-a-finished-flow".to_owned();
        let sealed = flows.encode(&row, &token).unwrap_or_default();
        assert!(!sealed.windows(3).any(|w| w == b"hs_"), "sealed");
        assert_ne!(
            flows.encode(&row, &token).ok(),
            Some(sealed.clone()),
            "a random nonce each time"
        );
        let keyless = Sealer {
            space: "flow",
            keys: None,
        };
        assert!(
            keyless.encode(&row, &token).is_err(),
            "no key: nothing is written"
        );
        assert_eq!(flows.decode::<String>(&row, sealed.clone()), Some(token));
        // Moved to another row or map, or opened with another key: nothing.
        assert_eq!(flows.decode::<String>(&other_row, sealed.clone()), None);
        assert_eq!(
            sealer("budget", &key).decode::<String>(&row, sealed.clone()),
            None
        );
        assert_eq!(
            sealer("flow", &NodeKey::generate()).decode::<String>(&row, sealed.clone()),
            None
        );
        // Altered: nothing.
        let mut forged = sealed;
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(flows.decode::<String>(&row, forged), None);
        assert_ne!(row_key("flow-id"), row_key("another-id"));
    }
}
