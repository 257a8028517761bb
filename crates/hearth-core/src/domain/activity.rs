//! Session activity (`last_active`) written behind: a request that finds its session's
//! stamp due records it here and goes on; one write a second carries every pending stamp,
//! so a burst of returning sessions costs one transaction, not one each through the single
//! writer. Bounded: past [`MAX_PENDING`] sessions a stamp is dropped (it is best effort,
//! and the next use a minute later stamps again). Loads merge the pending stamp, so this
//! node never judges a session idle on a stamp it has not written yet.
use std::collections::HashMap;
use std::sync::Mutex;

/// Sessions with a stamp waiting, at most.
pub const MAX_PENDING: usize = 100_000;

/// Pending `last_active` stamps by session id.
#[derive(Debug, Default)]
pub struct ActivityStamps {
    pending: Mutex<HashMap<u64, u64>>,
}

impl ActivityStamps {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that session `id` was used at `at`; false when full (the stamp is dropped).
    pub fn stamp(&self, id: u64, at: u64) -> bool {
        let mut pending = self.lock();
        if pending.len() >= MAX_PENDING && !pending.contains_key(&id) {
            return false;
        }
        let slot = pending.entry(id).or_insert(at);
        *slot = (*slot).max(at);
        true
    }

    /// The pending stamp of session `id`.
    pub fn get(&self, id: u64) -> Option<u64> {
        self.lock().get(&id).copied()
    }

    /// Session `id`'s last use: `stored` (as read), or the pending stamp when later.
    pub fn latest(&self, id: u64, stored: u64) -> u64 {
        self.get(id).map_or(stored, |at| at.max(stored))
    }

    /// Every pending stamp, leaving none, in session-id order: the batch then walks the
    /// sessions table's pages in order, each read and written once.
    pub fn take(&self) -> Vec<(u64, u64)> {
        let mut stamps: Vec<_> = std::mem::take(&mut *self.lock()).into_iter().collect();
        stamps.sort_unstable();
        stamps
    }

    /// Puts stamps back after a failed write (newer stamps win; the bound still holds).
    pub fn restore(&self, stamps: Vec<(u64, u64)>) {
        for (id, at) in stamps {
            self.stamp(id, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_keep_the_latest_and_stay_bounded() {
        let s = ActivityStamps::default();
        assert!(s.stamp(1, 10));
        assert!(s.stamp(1, 5));
        assert_eq!(s.get(1), Some(10));
        for id in 2..=MAX_PENDING as u64 {
            s.stamp(id, 1);
        }
        assert!(!s.stamp(u64::MAX, 1), "full: dropped");
        assert!(s.stamp(1, 20), "a waiting session is still updated");
        let taken = s.take();
        assert_eq!(taken.len(), MAX_PENDING);
        assert!(
            taken.windows(2).all(|w| w[0].0 < w[1].0),
            "in session-id order"
        );
        assert!(taken.contains(&(1, 20)));
        assert!(s.take().is_empty());
        s.restore(vec![(7, 3)]);
        assert_eq!(s.get(7), Some(3));
    }
}
