//! Token-bucket rate limits in short-lived state: a budget per key (a client IP, or an IP and
//! a class of calls) that refills evenly over a minute. Memory is bounded by the map.
use std::sync::Arc;

use super::state::short_lived::ShortLived;
use crate::clock::SharedClock;

/// A token bucket: tokens left and when they were counted (unix ms).
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: u64,
}

/// Budgets per key.
pub struct RateLimiter<K> {
    buckets: Arc<dyn ShortLived<K, Bucket>>,
    clock: SharedClock,
}

impl<K> std::fmt::Debug for RateLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimiter")
    }
}

impl<K> RateLimiter<K> {
    /// A limiter over `buckets`.
    pub fn new(buckets: Arc<dyn ShortLived<K, Bucket>>, clock: SharedClock) -> Self {
        Self { buckets, clock }
    }

    /// Takes one call from `key`'s budget of `per_minute` (that many as burst); false when
    /// the budget is spent.
    pub fn take(&self, key: K, per_minute: u32) -> bool {
        let (now, cap) = (self.clock.now_ms(), f64::from(per_minute.max(1)));
        let mut allowed = false;
        self.buckets.update(key, 60_000, &mut |b| {
            let b = b.unwrap_or(Bucket {
                tokens: cap,
                at: now,
            });
            let refill = now.saturating_sub(b.at) as f64 * cap / 60_000.0;
            let tokens = (b.tokens + refill).min(cap);
            allowed = tokens >= 1.0;
            Bucket {
                tokens: if allowed { tokens - 1.0 } else { tokens },
                at: now,
            }
        });
        allowed
    }
}
