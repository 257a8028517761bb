//! Token-bucket rate limits in short-lived state: a budget per key (a client IP, or an IP and
//! a class of calls) that refills evenly over a minute. Memory is bounded by the map; in a
//! cluster the map is shared, so a client's budget holds across every node.
use std::sync::Arc;

use super::state::shared_map::SharedMap;
use super::state::StoreError;
use super::{DomainError, Reason};
use crate::clock::SharedClock;

/// A token bucket: tokens left and when they were counted (unix ms).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    tokens: f64,
    at: u64,
    /// The call that last counted here was refused.
    #[serde(default)]
    refused: bool,
}

/// Budgets per key.
#[derive(Clone)]
pub struct RateLimiter {
    buckets: Arc<dyn SharedMap<Bucket>>,
    clock: SharedClock,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimiter")
    }
}

/// Budget classes charged both by the API (a method's row) and by the step flows (a form
/// that hashes or mails): one name, so both draw on one budget per client.
pub const HASHING: &str = "password";
/// See [`HASHING`].
pub const MAIL: &str = "mail";
/// Password sign-ins (`[accounts] sign_ins_per_ip_per_minute`), charged with [`HASHING`].
pub const SIGN_IN: &str = "sign-in";

/// The budget key of `class` for a client address.
pub fn budget_key(class: &str, ip: std::net::IpAddr) -> String {
    format!("{class} {ip}")
}

impl RateLimiter {
    /// A limiter over `buckets`.
    pub fn new(buckets: Arc<dyn SharedMap<Bucket>>, clock: SharedClock) -> Self {
        Self { buckets, clock }
    }

    /// Takes one call from `key`'s budget of `per_minute` (that many as burst); false when
    /// the budget is spent. A budget that cannot be read or written allows nothing: the
    /// caller gets [`budget_unreadable`] (limits fail closed).
    pub async fn take(&self, key: &str, per_minute: u32) -> Result<bool, DomainError> {
        Ok(self
            .take_each(&[(key.to_owned(), per_minute)])
            .await?
            .is_none())
    }

    /// Takes one call from `ip`'s budget of each of `classes` (name, per minute) in one
    /// call; the refusal names the first that was spent. What the API's per-method limit
    /// and the step flows' forms both charge.
    pub async fn charge(
        &self,
        ip: std::net::IpAddr,
        classes: &[(&str, u32)],
    ) -> Result<(), DomainError> {
        let budgets: Vec<_> = classes
            .iter()
            .map(|(class, per_minute)| (budget_key(class, ip), *per_minute))
            .collect();
        let Some(spent) = self.take_each(&budgets).await? else {
            return Ok(());
        };
        let message = match classes[spent].0 {
            SIGN_IN => format!("too many sign-in attempts from {ip}; try again in a minute"),
            class => format!("too many {class} calls from {ip}; try again in a minute"),
        };
        Err(DomainError::exhausted(Reason::IpThrottled, message))
    }

    /// Takes one call from each of `budgets` (key, per minute) in one call: the index of
    /// the first that was spent, if any (the others are charged all the same, as separate
    /// calls would have been).
    pub async fn take_each(&self, budgets: &[(String, u32)]) -> Result<Option<usize>, DomainError> {
        let now = self.clock.now_ms();
        let caps: Vec<f64> = budgets
            .iter()
            .map(|(_, pm)| f64::from((*pm).max(1)))
            .collect();
        let keys: Vec<String> = budgets.iter().map(|(k, _)| k.clone()).collect();
        let counted = self
            .buckets
            .update_each(
                &keys,
                60_000,
                Box::new(move |i, b: Option<&Bucket>| {
                    let cap = caps[i];
                    let b = b.copied().unwrap_or(Bucket {
                        tokens: cap,
                        at: now,
                        refused: false,
                    });
                    let refill = now.saturating_sub(b.at) as f64 * cap / 60_000.0;
                    let tokens = (b.tokens + refill).min(cap);
                    let allowed = tokens >= 1.0;
                    Bucket {
                        tokens: if allowed { tokens - 1.0 } else { tokens },
                        at: now,
                        refused: !allowed,
                    }
                }),
            )
            .await
            .map_err(|e| {
                // An unreachable database is logged once by the backend, not per call.
                if !matches!(e, StoreError::Unreachable(_) | StoreError::Closed) {
                    tracing::warn!(error = %e, "a client's budget could not be checked; refusing the call");
                }
                budget_unreadable()
            })?;
        Ok(counted.iter().position(|b| b.refused))
    }
}

/// The refusal when a budget cannot be checked (the shared state is unreachable).
pub fn budget_unreadable() -> DomainError {
    DomainError::unavailable(
        Reason::StoreUnavailable,
        "the node cannot check this client's budget right now; try again shortly",
    )
}
