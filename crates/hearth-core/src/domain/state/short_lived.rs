//! Short-lived state: one bounded, TTL'd map on the injected clock. Pending peer
//! challenges, the per-IP limiter, key-fetch locks, the discovery cache and step flows all
//! use it. Full maps evict what expires soonest (the oldest entry for equal TTLs),
//! so a flood displaces old entries instead of locking everyone out; memory stays bounded.
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;

use crate::clock::SharedClock;

/// Short-lived keyed state; the single-node implementation is [`LocalMap`], a cluster
/// backend shares it between nodes.
pub trait ShortLived<K, V>: Send + Sync {
    /// Stores `value` for `ttl_ms`, replacing any earlier value.
    fn put(&self, key: K, value: V, ttl_ms: u64);
    /// The live value, if any.
    fn get(&self, key: &K) -> Option<V>;
    /// Removes and returns the live value (single use).
    fn take(&self, key: &K) -> Option<V>;
    /// Atomically replaces the value with `f(current)`, live for `ttl_ms` from now.
    fn update(&self, key: K, ttl_ms: u64, f: &mut dyn FnMut(Option<V>) -> V) -> V;
    /// Atomically: when `key` has a live value and `f` returns a new one, stores it for
    /// `ttl_ms` from now and returns true; otherwise changes nothing (a missing or expired
    /// entry is never recreated).
    fn modify(&self, key: &K, ttl_ms: u64, f: &mut dyn FnMut(&V) -> Option<V>) -> bool;
    /// Live entries (expired ones not yet evicted may be counted).
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Slot<V> {
    value: V,
    expires_at: u64,
    seq: u64,
}

struct Inner<K, V> {
    map: HashMap<K, Slot<V>>,
    by_expiry: BTreeMap<(u64, u64), K>,
    seq: u64,
}

/// A bounded map whose entries expire on the injected clock.
pub struct LocalMap<K, V> {
    clock: SharedClock,
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

impl<K, V> std::fmt::Debug for LocalMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMap")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> LocalMap<K, V> {
    /// A map of at most `capacity` entries (at least 1).
    pub fn new(clock: SharedClock, capacity: usize) -> Self {
        Self {
            clock,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                by_expiry: BTreeMap::new(),
                seq: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.map.clear();
        inner.by_expiry.clear();
    }

    /// Removes `key` (whether live or not).
    pub fn remove(&self, key: &K) {
        let mut inner = self.lock();
        if let Some(slot) = inner.map.remove(key) {
            inner.by_expiry.remove(&(slot.expires_at, slot.seq));
        }
    }

    /// Changes the live value of `key` in place, keeping its expiry; false when there is
    /// none. One hash lookup, where [`ShortLived::modify`] re-inserts.
    pub fn change(&self, key: &K, f: impl FnOnce(&mut V)) -> bool {
        let now = self.clock.now_ms();
        match self.lock().map.get_mut(key) {
            Some(slot) if slot.expires_at > now => {
                f(&mut slot.value);
                true
            }
            _ => false,
        }
    }

    /// The value for `key`, inserting `make()` for `ttl_ms` when there is none.
    pub fn get_or_insert_with(&self, key: K, ttl_ms: u64, make: impl FnOnce() -> V) -> V {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let value = inner.remove_live(&key, now).unwrap_or_else(make);
        let expires_at = now.saturating_add(ttl_ms);
        inner.insert(key, value.clone(), expires_at, now, self.capacity);
        value
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Inner<K, V> {
    fn evict_expired(&mut self, now: u64) {
        while let Some((&(exp, seq), _)) = self.by_expiry.first_key_value() {
            if exp > now {
                break;
            }
            if let Some(k) = self.by_expiry.remove(&(exp, seq)) {
                self.map.remove(&k);
            }
        }
    }

    fn remove_live(&mut self, key: &K, now: u64) -> Option<V> {
        let slot = self.map.remove(key)?;
        self.by_expiry.remove(&(slot.expires_at, slot.seq));
        (slot.expires_at > now).then_some(slot.value)
    }

    fn insert(&mut self, key: K, value: V, expires_at: u64, now: u64, capacity: usize) {
        self.remove_live(&key, now);
        if self.map.len() >= capacity {
            self.evict_expired(now);
        }
        while self.map.len() >= capacity {
            match self.by_expiry.pop_first() {
                Some((_, k)) => {
                    self.map.remove(&k);
                }
                None => break,
            }
        }
        self.seq += 1;
        let seq = self.seq;
        self.by_expiry.insert((expires_at, seq), key.clone());
        self.map.insert(
            key,
            Slot {
                value,
                expires_at,
                seq,
            },
        );
    }
}

impl<K, V> ShortLived<K, V> for LocalMap<K, V>
where
    K: Hash + Eq + Clone + Send,
    V: Clone + Send,
{
    fn put(&self, key: K, value: V, ttl_ms: u64) {
        let now = self.clock.now_ms();
        self.lock()
            .insert(key, value, now.saturating_add(ttl_ms), now, self.capacity);
    }

    fn get(&self, key: &K) -> Option<V> {
        let now = self.clock.now_ms();
        let inner = self.lock();
        inner
            .map
            .get(key)
            .filter(|s| s.expires_at > now)
            .map(|s| s.value.clone())
    }

    fn take(&self, key: &K) -> Option<V> {
        let now = self.clock.now_ms();
        self.lock().remove_live(key, now)
    }

    fn update(&self, key: K, ttl_ms: u64, f: &mut dyn FnMut(Option<V>) -> V) -> V {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let old = inner.remove_live(&key, now);
        let new = f(old);
        inner.insert(
            key,
            new.clone(),
            now.saturating_add(ttl_ms),
            now,
            self.capacity,
        );
        new
    }

    fn modify(&self, key: &K, ttl_ms: u64, f: &mut dyn FnMut(&V) -> Option<V>) -> bool {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let Some(new) = inner
            .map
            .get(key)
            .filter(|s| s.expires_at > now)
            .and_then(|s| f(&s.value))
        else {
            return false;
        };
        inner.insert(
            key.clone(),
            new,
            now.saturating_add(ttl_ms),
            now,
            self.capacity,
        );
        true
    }

    fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn entries_expire_on_the_injected_clock() {
        let clock = ManualClock::new();
        let m = LocalMap::new(clock.clone(), 10);
        m.put("a", 1, 1000);
        assert_eq!(m.get(&"a"), Some(1));
        clock.advance_ms(1000);
        assert_eq!(m.get(&"a"), None);
        assert_eq!(m.take(&"a"), None);
    }

    #[test]
    fn a_full_map_evicts_the_oldest_not_the_newest() {
        let clock = ManualClock::new();
        let m = LocalMap::new(clock.clone(), 3);
        for i in 0..10 {
            m.put(i, i, 60_000);
            clock.advance_ms(1);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(&0), None);
        assert_eq!(m.get(&9), Some(9));
        assert_eq!(m.take(&8), Some(8));
        assert_eq!(m.take(&8), None, "take is single use");
    }

    #[test]
    fn update_is_one_step() {
        let m = LocalMap::new(ManualClock::new(), 4);
        for _ in 0..5 {
            m.update("n", 1000, &mut |v| v.unwrap_or(0) + 1);
        }
        assert_eq!(m.get(&"n"), Some(5));
        assert_eq!(m.get_or_insert_with("n", 1000, || 0), 5);
        assert_eq!(m.get_or_insert_with("m", 1000, || 7), 7);
    }

    #[test]
    fn modify_changes_only_a_live_entry_when_asked() {
        let clock = ManualClock::new();
        let m = LocalMap::new(clock.clone(), 4);
        assert!(!m.modify(&"x", 1000, &mut |v| Some(v + 1)), "never creates");
        assert_eq!(m.get(&"x"), None);
        m.put("x", 1, 1000);
        assert!(!m.modify(&"x", 1000, &mut |_| None));
        assert!(m.modify(&"x", 1000, &mut |v| Some(v + 1)));
        assert_eq!(m.get(&"x"), Some(2));
        clock.advance_ms(1000);
        assert!(!m.modify(&"x", 1000, &mut |v| Some(v + 1)), "expired");
    }

    #[test]
    fn change_keeps_the_expiry_and_never_creates() {
        let clock = ManualClock::new();
        let m = LocalMap::new(clock.clone(), 4);
        assert!(!m.change(&"x", |v| *v += 1), "never creates");
        m.put("x", 1, 1000);
        clock.advance_ms(600);
        assert!(m.change(&"x", |v| *v += 1));
        assert_eq!(m.get(&"x"), Some(2));
        clock.advance_ms(400);
        assert_eq!(m.get(&"x"), None, "the first put's expiry still holds");
        assert!(!m.change(&"x", |v| *v += 1), "expired");
    }
}
