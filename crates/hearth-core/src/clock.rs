//! Time as a parameter: every expiry, window and backoff reads a [`Clock`], so tests can move
//! time without sleeping (`../shared/STYLE.md`, habit 5).
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in unix milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> u64;
}

/// The real clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; starts at the real time.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A manual clock set to the current real time.
    pub fn new() -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(SystemClock.now_ms())))
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Real time plus an offset that tests can move: background tasks keep running on real time
/// while a test jumps past an expiry (forward), or holds every timer back (backward).
#[derive(Debug, Default)]
pub struct OffsetClock(AtomicI64);

impl OffsetClock {
    /// A clock at the real time.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Moves the clock forward by `ms` milliseconds, for good.
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms as i64, Ordering::SeqCst);
    }

    /// Moves the clock back by `ms` milliseconds: nothing timed comes due until real time
    /// has caught up (a test's quiet window).
    pub fn rewind_ms(&self, ms: u64) {
        self.0.fetch_sub(ms as i64, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        SystemClock
            .now_ms()
            .saturating_add_signed(self.0.load(Ordering::SeqCst))
    }
}

/// The shared clock handle passed through the node.
pub type SharedClock = Arc<dyn Clock>;

/// Unix milliseconds as UTC RFC 3339, to the second (`@<seconds>` past the year 9999, which
/// RFC 3339 cannot write).
pub fn rfc3339(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{secs}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_704_067_200_000), "2024-01-01T00:00:00Z");
        // Checked against `date -u -d @…`: a time of day, and a leap day.
        assert_eq!(super::rfc3339(1_795_500_900_123), "2026-11-24T06:15:00Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(u64::MAX), format!("@{}", u64::MAX / 1000));
    }
}
