//! Sign-in throttling (DESIGN.md §3): a progressive per-account delay that becomes a lock
//! after 100 consecutive failures, and a per-IP rate limit (governor).
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::DomainError;

/// Consecutive failures that lock an account.
pub const LOCK_AFTER: u32 = 100;
/// How long a lock lasts, unless a password reset or an operator lifts it sooner.
pub const LOCK_MS: u64 = 24 * 3600 * 1000;
/// Failures allowed before delays start.
pub const FREE_FAILURES: u32 = 5;
/// The longest progressive delay.
pub const MAX_DELAY_MS: u64 = 5 * 60 * 1000;

/// When the account may try again after its `failures`-th consecutive failure at `now`.
pub fn locked_until(failures: u32, now: u64) -> Option<u64> {
    if failures >= LOCK_AFTER {
        return Some(now + LOCK_MS);
    }
    if failures < FREE_FAILURES {
        return None;
    }
    let step = (failures - FREE_FAILURES).min(20);
    Some(now + (1000u64 << step).min(MAX_DELAY_MS))
}

/// The error for an account that may not try yet.
pub fn refusal(failures: u32, until: u64, now: u64) -> DomainError {
    let secs = until.saturating_sub(now).div_ceil(1000);
    if failures >= LOCK_AFTER {
        DomainError::ResourceExhausted(format!(
            "this account is locked after {LOCK_AFTER} failed sign-ins; reset the password or wait {secs} s"
        ))
    } else {
        DomainError::ResourceExhausted(format!(
            "too many failed sign-ins for this account; try again in {secs} s"
        ))
    }
}

/// Per-IP limiter.
#[derive(Debug)]
pub struct Throttle {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl Throttle {
    /// `per_minute` sign-in attempts per IP, with that many as burst.
    pub fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            per_ip: RateLimiter::keyed(Quota::per_minute(n)),
        }
    }

    /// Takes one attempt from `ip`'s budget.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), DomainError> {
        match ip {
            Some(ip) if self.per_ip.check_key(&ip).is_err() => Err(DomainError::ResourceExhausted(
                format!("too many sign-in attempts from {ip}; try again in a minute"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_lock() {
        assert_eq!(locked_until(4, 0), None);
        assert_eq!(locked_until(5, 0), Some(1000));
        assert_eq!(locked_until(6, 0), Some(2000));
        assert_eq!(locked_until(99, 0), Some(MAX_DELAY_MS));
        assert_eq!(locked_until(100, 0), Some(LOCK_MS));
    }
}
