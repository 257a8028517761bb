//! Every live full session the node knows, packed in memory (36 bytes each), so a session
//! the short-lived credential cache does not hold is still resolved without a database read
//! (`[sessions] memory_index_max`). The node loads it at start and learns the rest on first
//! use; revocation notices keep it exact.
//!
//! Layout: a sorted `Vec` (`base`, rebuilt in the background) and a small map of sessions
//! learned since (`recent`). A hash table of a million entries rounds up to two million
//! buckets; the sorted vector holds exactly its entries. An entry keys on the first 12
//! bytes of the token's SHA-256: a guessed token matches one of a million sessions with
//! odds of 2^-76 per guess, where 8 bytes (32-byte entries) would give 2^-44.
//!
//! Exactness: an ended session's id goes into `ended` before the notice returns, and a hit
//! on it is a miss until the next rebuild drops both. A load that raced a revocation is not
//! kept (`generation`). Times are whole seconds rounded toward refusal: an entry near its
//! expiry or idle limit is a miss, and the store decides to the millisecond.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::model::SessionCredential;

/// Ended sessions remembered between rebuilds; past it the index answers nothing until the
/// next rebuild (which then runs at once).
const MAX_ENDED: usize = 100_000;
/// Sessions learned or ended that make a rebuild worth its copy of the sorted part: below
/// it they stay in the small map and the ended set, which lookups check first.
pub const REBUILD_AT: usize = 16_384;
/// Sessions learned between rebuilds at most (a rebuild every 5 s folds them in).
const MAX_RECENT: usize = 65_536;

/// One session, packed: every field 4-aligned, so the entry is 36 bytes.
#[derive(Debug)]
pub struct Packed {
    key: [u32; 3],
    session: [u32; 2],
    user: [u32; 2],
    /// Absolute expiry, unix seconds rounded down.
    expires: u32,
    /// Last use, unix seconds rounded down (a use this node saw moves it).
    active: AtomicU32,
}

/// What the index knows of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub session_id: u64,
    pub user_id: u64,
    /// Unix ms, rounded down to the second.
    pub expires_at: u64,
    /// Unix ms, rounded down to the second.
    pub last_active: u64,
}

impl From<&SessionCredential> for Known {
    fn from(c: &SessionCredential) -> Self {
        Self {
            session_id: c.id,
            user_id: c.user_id,
            expires_at: c.expires_at,
            last_active: c.last_active,
        }
    }
}

fn key_of(hash: &[u8; 32]) -> [u32; 3] {
    let word = |i: usize| u32::from_be_bytes([hash[i], hash[i + 1], hash[i + 2], hash[i + 3]]);
    [word(0), word(4), word(8)]
}

fn split(v: u64) -> [u32; 2] {
    [(v >> 32) as u32, v as u32]
}

fn join(v: [u32; 2]) -> u64 {
    (u64::from(v[0]) << 32) | u64::from(v[1])
}

fn secs(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

impl Packed {
    fn new(hash: &[u8; 32], k: &Known) -> Self {
        Self {
            key: key_of(hash),
            session: split(k.session_id),
            user: split(k.user_id),
            expires: secs(k.expires_at),
            active: AtomicU32::new(secs(k.last_active)),
        }
    }

    fn known(&self) -> Known {
        Known {
            session_id: join(self.session),
            user_id: join(self.user),
            expires_at: u64::from(self.expires) * 1000,
            last_active: u64::from(self.active.load(Ordering::Relaxed)) * 1000,
        }
    }

    fn copy(&self) -> Self {
        Self {
            key: self.key,
            session: self.session,
            user: self.user,
            expires: self.expires,
            active: AtomicU32::new(self.active.load(Ordering::Relaxed)),
        }
    }
}

/// The index. `max` bounds its entries (base and recent together).
#[derive(Debug)]
pub struct SessionIndex {
    max: usize,
    base: RwLock<Arc<Vec<Packed>>>,
    recent: RwLock<HashMap<[u32; 3], Packed>>,
    ended: RwLock<HashSet<u64>>,
    /// Moves at every revocation: a load that started before one is not kept.
    generation: AtomicU64,
    /// Too many ended sessions to remember: answer nothing until the next rebuild.
    overflow: AtomicBool,
    /// A load from the store runs: no other rebuild may forget the sessions that ended
    /// while it read (its own rebuild drops them).
    loading: AtomicBool,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl SessionIndex {
    /// An empty index of at most `max` sessions (0: off).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            base: RwLock::new(Arc::new(Vec::new())),
            recent: RwLock::new(HashMap::new()),
            ended: RwLock::new(HashSet::new()),
            generation: AtomicU64::new(0),
            overflow: AtomicBool::new(false),
            loading: AtomicBool::new(false),
        }
    }

    /// Whether it holds anything at all.
    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    /// The most entries it holds.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The session whose token hashes to `hash`, unless it ended.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Known> {
        if self.max == 0 || self.overflow.load(Ordering::Acquire) {
            return None;
        }
        let key = key_of(hash);
        let known = match read(&self.recent).get(&key) {
            Some(p) => p.known(),
            None => {
                let base = read(&self.base);
                let i = base.binary_search_by(|p| p.key.cmp(&key)).ok()?;
                base[i].known()
            }
        };
        (!read(&self.ended).contains(&known.session_id)).then_some(known)
    }

    /// The revocation generation now; pass it to [`SessionIndex::learn`] with what a load
    /// read after this call.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps a session a load found, unless a revocation came since `generation` or the
    /// index is full.
    pub fn learn(&self, hash: &[u8; 32], known: Known, generation: u64) {
        if self.max == 0 || self.len() >= self.max {
            return;
        }
        let mut recent = write(&self.recent);
        // Under the lock a revocation's `end` also takes: it cannot slip in between.
        if self.generation() == generation && recent.len() < MAX_RECENT {
            recent.insert(key_of(hash), Packed::new(hash, &known));
        }
    }

    /// Records a use this node saw.
    pub fn touch(&self, hash: &[u8; 32], now: u64) {
        let key = key_of(hash);
        let at = secs(now);
        if let Some(p) = read(&self.recent).get(&key) {
            p.active.fetch_max(at, Ordering::Relaxed);
            return;
        }
        let base = read(&self.base);
        if let Ok(i) = base.binary_search_by(|p| p.key.cmp(&key)) {
            base[i].active.fetch_max(at, Ordering::Relaxed);
        }
    }

    /// Sessions that ended: misses from now on.
    pub fn end(&self, ids: &[u64]) {
        let _recent = write(&self.recent);
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut ended = write(&self.ended);
        ended.extend(ids.iter().copied());
        if ended.len() > MAX_ENDED {
            self.overflow.store(true, Ordering::Release);
        }
    }

    /// Anything may have ended (notices were missed): forget everything.
    pub fn clear(&self) {
        let mut recent = write(&self.recent);
        self.generation.fetch_add(1, Ordering::AcqRel);
        recent.clear();
        *write(&self.base) = Arc::new(Vec::new());
        write(&self.ended).clear();
        self.overflow.store(false, Ordering::Release);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        read(&self.base).len() + read(&self.recent).len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per entry, and what the whole index holds now (base and recent).
    pub fn bytes(&self) -> (usize, usize) {
        let per = std::mem::size_of::<Packed>();
        let base = read(&self.base).capacity() * per;
        // A hash map entry: its bucket plus one control byte.
        let recent = read(&self.recent).capacity() * (per + 12 + 1);
        (per, base + recent)
    }

    /// Whether a rebuild is due: enough was learned or ended since the last one to be
    /// worth copying the sorted part (and no load is reading).
    pub fn dirty(&self) -> bool {
        !self.loading.load(Ordering::Acquire)
            && (read(&self.recent).len() >= REBUILD_AT
                || read(&self.ended).len() >= REBUILD_AT
                || self.overflow.load(Ordering::Acquire))
    }

    /// A load from the store begins: sessions ending from now on stay ended until
    /// [`SessionIndex::load`] folds what it read.
    pub fn begin_load(&self) {
        self.loading.store(true, Ordering::Release);
    }

    /// Folds the recent sessions into the sorted base and drops ended and expired ones.
    /// Runs for a while on a million entries: call it off the async workers.
    pub fn rebuild(&self, now: u64) {
        let (recent, ended) = {
            let recent = read(&self.recent);
            let ended = read(&self.ended);
            (
                recent.values().map(Packed::copy).collect::<Vec<_>>(),
                ended.clone(),
            )
        };
        let folded: HashSet<[u32; 3]> = recent.iter().map(|p| p.key).collect();
        let base = read(&self.base).clone();
        let now = secs(now);
        let keep = |p: &Packed| p.expires > now && !ended.contains(&join(p.session));
        let mut next: Vec<Packed> = recent
            .into_iter()
            .filter(|p| keep(p))
            .chain(base.iter().filter(|p| keep(p)).map(Packed::copy))
            .collect();
        // Recent first, so a stable sort and dedup keep the newer copy of a session.
        next.sort_by_key(|p| p.key);
        next.dedup_by(|later, earlier| later.key == earlier.key);
        next.truncate(self.max);
        next.shrink_to_fit();
        let mut recent = write(&self.recent);
        // Uses recorded while this ran live in the old copies.
        for (key, r) in recent.iter() {
            if let Ok(i) = next.binary_search_by(|p| p.key.cmp(key)) {
                next[i]
                    .active
                    .fetch_max(r.active.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        // What this rebuild read is folded (or dropped); what was learned since stays.
        recent.retain(|k, _| !folded.contains(k));
        *write(&self.base) = Arc::new(next);
        let mut all_ended = write(&self.ended);
        all_ended.retain(|id| !ended.contains(id));
        self.overflow
            .store(all_ended.len() > MAX_ENDED, Ordering::Release);
    }

    /// Adds a page of a load from the store (begun with [`SessionIndex::begin_load`]) to
    /// `into`, packed as it comes: a million sessions never exist in memory twice.
    pub fn pack(&self, into: &mut Vec<Packed>, page: impl IntoIterator<Item = ([u8; 32], Known)>) {
        let room = self.max.saturating_sub(into.len());
        into.extend(
            page.into_iter()
                .take(room)
                .map(|(hash, k)| Packed::new(&hash, &k)),
        );
    }

    /// Ends a load: `loaded` (from [`SessionIndex::pack`]) becomes the sorted part, without
    /// what ended while it was read; what was learned meanwhile stays.
    pub fn finish_load(&self, mut loaded: Vec<Packed>) {
        loaded.sort_unstable_by_key(|p| p.key);
        loaded.dedup_by(|later, earlier| later.key == earlier.key);
        {
            let ended = read(&self.ended);
            loaded.retain(|p| !ended.contains(&join(p.session)));
        }
        *write(&self.base) = Arc::new(loaded);
        self.loading.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> [u8; 32] {
        let mut h = [0u8; 32];
        h[0] = n;
        h[31] = n;
        h
    }

    fn known(id: u64) -> Known {
        Known {
            session_id: id,
            user_id: id + 1000,
            expires_at: 2_000_000_000_000,
            last_active: 1_000_000_000_000,
        }
    }

    #[test]
    fn an_entry_is_36_bytes() {
        assert_eq!(std::mem::size_of::<Packed>(), 36);
    }

    #[test]
    fn learned_loaded_and_rebuilt_sessions_are_found_and_ended_ones_are_not() {
        let index = SessionIndex::new(10);
        index.begin_load();
        let mut loaded = Vec::new();
        let page: Vec<_> = (1..=3).map(|n| (hash(n), known(u64::from(n)))).collect();
        index.pack(&mut loaded, page);
        index.finish_load(loaded);
        let g = index.generation();
        index.learn(&hash(9), known(9), g);
        assert_eq!(index.get(&hash(2)), Some(known(2)));
        assert_eq!(index.get(&hash(9)), Some(known(9)));
        assert_eq!(index.get(&hash(7)), None);
        index.end(&[2, 9]);
        assert_eq!(index.get(&hash(2)), None);
        assert_eq!(index.get(&hash(9)), None);
        index.rebuild(0);
        assert_eq!(index.len(), 2);
        assert_eq!(index.get(&hash(2)), None);
        assert_eq!(index.get(&hash(3)), Some(known(3)));
        assert!(!index.dirty());
    }

    #[test]
    fn a_load_that_raced_a_revocation_is_not_kept() {
        let index = SessionIndex::new(10);
        let g = index.generation();
        index.end(&[5]);
        index.learn(&hash(5), known(5), g);
        index.rebuild(0);
        assert_eq!(index.get(&hash(5)), None);
    }

    #[test]
    fn a_use_moves_last_active_and_survives_a_rebuild() {
        let index = SessionIndex::new(10);
        index.learn(&hash(1), known(1), index.generation());
        index.touch(&hash(1), 1_500_000_000_999);
        index.rebuild(0);
        index.touch(&hash(1), 1_600_000_000_000);
        let k = index.get(&hash(1)).unwrap();
        assert_eq!(k.last_active, 1_600_000_000_000);
    }

    #[test]
    fn it_holds_at_most_its_cap_and_forgets_everything_when_told() {
        let index = SessionIndex::new(2);
        for n in 1..=3 {
            index.learn(&hash(n), known(u64::from(n)), index.generation());
        }
        assert_eq!(index.len(), 2);
        index.clear();
        assert!(index.is_empty());
        assert_eq!(index.get(&hash(1)), None);
    }

    #[test]
    fn too_many_ended_sessions_turn_answers_off_until_a_rebuild() {
        let index = SessionIndex::new(10);
        index.learn(&hash(1), known(1), index.generation());
        let many: Vec<u64> = (100..100 + MAX_ENDED as u64 + 1).collect();
        index.end(&many);
        assert_eq!(index.get(&hash(1)), None);
        index.rebuild(0);
        assert_eq!(index.get(&hash(1)), Some(known(1)));
    }
}
