//! A bounded cache in front of the sessions and personal-access-token tables, so most
//! authenticated requests need no database read. Revocation notices drop entries at once
//! (looked up by session or token id, no scan); an entry is also re-read after a short TTL,
//! so a revocation made by another process (the CLI) takes effect within that TTL.
use std::sync::Arc;

use super::principal::Principal;
use super::state::revocations::{Revocations, Revoked};
use super::state::short_lived::{LocalMap, ShortLived};
use super::DomainError;
use crate::clock::SharedClock;

/// How long an entry is trusted without re-reading the row.
pub const TTL_MS: u64 = 5_000;
/// Credentials cached at most (per cache). Entries live [`TTL_MS`], so this serves 10,000
/// distinct credentials a second. Under churn a full cache costs about 30 MB: its hash
/// tables settle at twice the buckets their entries need (measured: 100k entries took
/// 40 MB, then 73 MB once they churned, which put the node past its memory budget).
pub const MAX_ENTRIES: usize = 50_000;

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub principal: Principal,
    pub expires_at: u64,
    pub last_active: u64,
}

#[derive(Debug)]
pub(crate) struct CredentialCache {
    by_token: LocalMap<[u8; 32], Entry>,
    token_of: LocalMap<u64, [u8; 32]>,
}

impl CredentialCache {
    /// A cache that `revocations` keeps exact: every notice drops the entries it names.
    pub fn kept_by(clock: SharedClock, revocations: &dyn Revocations) -> Arc<Self> {
        let cache = Self::new(clock);
        let c = cache.clone();
        revocations.subscribe(Arc::new(move |r| c.invalidate(r)));
        cache
    }

    pub fn new(clock: SharedClock) -> Arc<Self> {
        Arc::new(Self {
            by_token: LocalMap::new(clock.clone(), MAX_ENTRIES),
            token_of: LocalMap::new(clock, MAX_ENTRIES),
        })
    }

    pub fn get(&self, hash: &[u8; 32]) -> Option<Entry> {
        self.by_token.get(hash)
    }

    /// The entry of `hash`: cached, or loaded by `load` and cached.
    pub async fn get_or_load<F, Fut>(&self, hash: [u8; 32], load: F) -> Result<Entry, DomainError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Entry, DomainError>>,
    {
        if let Some(e) = self.get(&hash) {
            return Ok(e);
        }
        let entry = load().await?;
        self.put(hash, entry.clone());
        Ok(entry)
    }

    /// Whether a use at `now` is due to be written (the last was `every` ms ago or more);
    /// if so the cached entry is stamped, so one write per `every` goes out.
    pub fn use_due(&self, hash: &[u8; 32], entry: &Entry, now: u64, every: u64) -> bool {
        let due = now.saturating_sub(entry.last_active) >= every;
        if due {
            self.touch(hash, now);
        }
        due
    }

    pub fn put(&self, hash: [u8; 32], entry: Entry) {
        self.token_of.put(entry.principal.session_id, hash, TTL_MS);
        self.by_token.put(hash, entry, TTL_MS);
    }

    /// Records a use in the cached entry; its TTL is not renewed (the row is re-read on
    /// schedule, used or not).
    pub fn touch(&self, hash: &[u8; 32], now: u64) {
        self.by_token.change(hash, |e| e.last_active = now);
    }

    /// Drops every entry of the given sessions or tokens.
    pub fn invalidate(&self, revoked: Revoked<'_>) {
        let ids = match revoked {
            Revoked::Sessions(ids) => ids,
            Revoked::Anything => {
                self.token_of.clear();
                self.by_token.clear();
                return;
            }
        };
        for id in ids {
            if let Some(hash) = self.token_of.take(id) {
                self.by_token.remove(&hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::domain::principal::CredentialKind;
    use crate::domain::scopes::ScopeSet;

    fn entry(session_id: u64) -> Entry {
        Entry {
            principal: Principal {
                user_id: 1,
                session_id,
                kind: CredentialKind::Session,
                scopes: ScopeSet::ALL,
                token_hash: [7; 32],
                email_unverified: false,
            },
            expires_at: u64::MAX,
            last_active: 0,
        }
    }

    /// A use stamped late in an entry's life must not outlive the id → token index that
    /// revocation notices go through: a revoked session would stay cached.
    #[test]
    fn a_revocation_finds_an_entry_stamped_after_it_was_cached() {
        let clock = ManualClock::new();
        let cache = CredentialCache::new(clock.clone());
        let hash = [7; 32];
        cache.put(hash, entry(42));
        clock.advance_ms(TTL_MS - 1_000);
        cache.touch(&hash, clock.now_ms());
        assert_eq!(
            cache.get(&hash).map(|e| e.last_active),
            Some(clock.now_ms())
        );
        // Past the entry's first TTL, where the id → token index ends.
        clock.advance_ms(1_500);
        cache.invalidate(Revoked::Sessions(&[42]));
        assert!(
            cache.get(&hash).is_none(),
            "the revoked session is still cached"
        );
    }
}
