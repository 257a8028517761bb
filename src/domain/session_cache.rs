//! A small cache in front of the sessions table, so most authenticated requests need no
//! database read. Revocation through this node removes entries at once; an entry is also
//! re-read after a short TTL, so a revocation made by another process (the CLI) takes
//! effect within that TTL.
use std::collections::HashMap;
use std::sync::Mutex;

use super::Principal;

/// How long an entry is trusted without re-reading the row.
pub const TTL_MS: u64 = 5_000;
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub principal: Principal,
    pub expires_at: u64,
    pub last_active: u64,
    pub cached_at: u64,
}

#[derive(Debug, Default)]
pub(crate) struct SessionCache {
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

impl SessionCache {
    pub fn get(&self, hash: &[u8; 32], now: u64) -> Option<Entry> {
        let map = self.map.lock().ok()?;
        map.get(hash)
            .filter(|e| now.saturating_sub(e.cached_at) < TTL_MS)
            .cloned()
    }

    pub fn put(&self, hash: [u8; 32], entry: Entry) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(hash, entry);
        }
    }

    pub fn touch(&self, hash: &[u8; 32], now: u64) {
        if let Ok(mut map) = self.map.lock() {
            if let Some(e) = map.get_mut(hash) {
                e.last_active = now;
            }
        }
    }

    /// Drops every entry of the given sessions.
    pub fn invalidate_sessions(&self, ids: &[u64]) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, e| !ids.contains(&e.principal.session_id));
        }
    }
}
