//! Short-lived state that every node of a cluster must see (Harmony step flows): an async
//! map with an atomic conditional update. Single node: the in-memory [`LocalMap`]. Cluster:
//! [`StoreMap`], rows in the shared database through the store seam, keyed by the SHA-256
//! of the key and sealed under the key itself, so the database holds neither a flow's id
//! nor the session token a finished flow carries.
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::short_lived::{LocalMap, ShortLived};
use super::Store;
use crate::clock::SharedClock;

/// A change to apply to a live value (`None`: leave it).
pub type Change<V> = Box<dyn FnMut(&V) -> Option<V> + Send>;
/// A new value from the live one, if any.
pub type Update<V> = Box<dyn FnMut(Option<&V>) -> V + Send>;

/// Keyed short-lived state shared by the nodes that serve it.
#[async_trait::async_trait]
pub trait SharedMap<V>: Send + Sync {
    /// The live value of `key`.
    async fn get(&self, key: &str) -> Option<V>;
    /// Stores `value` under `key` for `ttl_ms`.
    async fn put(&self, key: &str, value: V, ttl_ms: u64);
    /// Atomically: when `key` has a live value and `change` returns a new one, stores it for
    /// `ttl_ms` and returns true; otherwise changes nothing.
    async fn modify(&self, key: &str, ttl_ms: u64, change: Change<V>) -> bool;
    /// Atomically replaces the value of `key` (live or not) with `update(current)`, live
    /// for `ttl_ms`; returns the new value.
    async fn update(&self, key: &str, ttl_ms: u64, update: Update<V>) -> V;
}

/// Takes the live value of `key` out of `map` (single use: of parallel takers, one gets it).
pub async fn take<V: Clone + Send + 'static>(map: &dyn SharedMap<V>, key: &str) -> Option<V> {
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
        .await;
    let value = taken.lock().unwrap_or_else(|e| e.into_inner()).take();
    value.filter(|_| took)
}

#[async_trait::async_trait]
impl<V: Clone + Send + Sync + 'static> SharedMap<V> for LocalMap<String, V> {
    async fn get(&self, key: &str) -> Option<V> {
        ShortLived::get(self, &key.to_owned())
    }
    async fn put(&self, key: &str, value: V, ttl_ms: u64) {
        ShortLived::put(self, key.to_owned(), value, ttl_ms)
    }
    async fn modify(&self, key: &str, ttl_ms: u64, mut change: Change<V>) -> bool {
        ShortLived::modify(self, &key.to_owned(), ttl_ms, &mut *change)
    }
    async fn update(&self, key: &str, ttl_ms: u64, mut update: Update<V>) -> V {
        ShortLived::update(self, key.to_owned(), ttl_ms, &mut |v| update(v.as_ref()))
    }
}

/// Values in the store, under a `space` name.
#[derive(Debug)]
pub struct StoreMap<V> {
    store: Store,
    clock: SharedClock,
    space: &'static str,
    _values: PhantomData<fn() -> V>,
}

impl<V> StoreMap<V> {
    /// A map of `space` in `store`.
    pub fn new(store: Store, clock: SharedClock, space: &'static str) -> Self {
        Self {
            store,
            clock,
            space,
            _values: PhantomData,
        }
    }
}

/// The row key of `key`.
fn row_key(key: &str) -> [u8; 32] {
    Sha256::digest([b"row\0", key.as_bytes()].concat()).into()
}

/// XORs `data` with a keystream of SHA-256(key | counter): sealing and opening are one.
fn seal(key: &str, data: &mut [u8]) {
    for (n, block) in data.chunks_mut(32).enumerate() {
        let pad = Sha256::digest([b"seal\0", key.as_bytes(), &(n as u64).to_be_bytes()].concat());
        block.iter_mut().zip(pad.iter()).for_each(|(b, p)| *b ^= p);
    }
}

fn encode<V: Serialize>(key: &str, v: &V) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    seal(key, &mut bytes);
    bytes
}

fn decode<V: DeserializeOwned>(key: &str, mut bytes: Vec<u8>) -> Option<V> {
    seal(key, &mut bytes);
    serde_json::from_slice(&bytes).ok()
}

#[async_trait::async_trait]
impl<V: Serialize + DeserializeOwned + Send + Sync + 'static> SharedMap<V> for StoreMap<V> {
    async fn get(&self, key: &str) -> Option<V> {
        let (space, row, now) = (self.space, row_key(key), self.clock.now_ms());
        let bytes = match self
            .store
            .read(move |tx| tx.short_lived(space, &row, now))
            .await
        {
            Ok(b) => b?,
            Err(e) => {
                tracing::warn!(error = %e, space, "shared state not read");
                return None;
            }
        };
        decode(key, bytes)
    }

    async fn put(&self, key: &str, value: V, ttl_ms: u64) {
        let (space, row, now) = (self.space, row_key(key), self.clock.now_ms());
        let bytes = encode(key, &value);
        let written = self
            .store
            .write(move |tx| tx.put_short_lived(space, &row, &bytes, now + ttl_ms, now))
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, space, "shared state not written");
        }
    }

    async fn modify(&self, key: &str, ttl_ms: u64, mut change: Change<V>) -> bool {
        let (space, row, now) = (self.space, row_key(key), self.clock.now_ms());
        let key = key.to_owned();
        self.store
            .write(move |tx| {
                let Some(old) = tx
                    .short_lived(space, &row, now)?
                    .and_then(|b| decode::<V>(&key, b))
                else {
                    return Ok(false);
                };
                let Some(new) = change(&old) else {
                    return Ok(false);
                };
                tx.put_short_lived(space, &row, &encode(&key, &new), now + ttl_ms, now)?;
                Ok::<_, super::StoreError>(true)
            })
            .await
            .unwrap_or(false)
    }

    async fn update(&self, key: &str, ttl_ms: u64, mut update: Update<V>) -> V {
        let (space, row, now) = (self.space, row_key(key), self.clock.now_ms());
        let key = key.to_owned();
        let fallback = update(None);
        let written = self
            .store
            .write(move |tx| {
                let old = tx
                    .short_lived(space, &row, now)?
                    .and_then(|b| decode::<V>(&key, b));
                let new = update(old.as_ref());
                tx.put_short_lived(space, &row, &encode(&key, &new), now + ttl_ms, now)?;
                Ok::<_, super::StoreError>(new)
            })
            .await;
        // Unreachable store: answer as for a new key (a limiter then allows, as on restart).
        written.unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key() {
        let mut data = b"hs_a-session-token-in-a-finished-flow".to_vec();
        seal("flow-id", &mut data);
        assert!(!data.windows(3).any(|w| w == b"hs_"), "sealed");
        let mut other = data.clone();
        seal("another-id", &mut other);
        assert_ne!(&other[..], b"hs_a-session-token-in-a-finished-flow");
        seal("flow-id", &mut data);
        assert_eq!(&data[..], b"hs_a-session-token-in-a-finished-flow");
        assert_ne!(row_key("flow-id"), row_key("another-id"));
    }
}
