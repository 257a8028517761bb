//! Password rules and hashing (DESIGN.md §3): NFKC, 8..=128 code points, no very common
//! passwords, never truncated; argon2id with configured cost, run on the blocking pool with
//! a concurrency cap; a dummy hash so unknown accounts cost the same as wrong passwords.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use argon2::{Algorithm, Params};
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use super::hash_pool::{self, HashPool};
use super::DomainError;
use crate::config::Passwords;

/// Shortest allowed password, in code points after NFKC.
pub const MIN_LEN: usize = 8;
/// Longest allowed password, in code points after NFKC.
pub const MAX_LEN: usize = 128;

/// Checks a new password and returns its NFKC form. Runs before any hashing.
pub fn validate(field: &'static str, password: &str) -> Result<Zeroizing<String>, DomainError> {
    // A cheap bound first, so a huge input is refused without normalising it.
    if password.len() > MAX_LEN * 4 * 4 {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_LEN} characters"),
        ));
    }
    let normalized = Zeroizing::new(password.nfkc().collect::<String>());
    let len = normalized.chars().count();
    if len < MIN_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at least {MIN_LEN} characters"),
        ));
    }
    if len > MAX_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_LEN} characters"),
        ));
    }
    // zxcvbn's cost grows with length; its dictionaries hold nothing near 64 characters.
    let probe: String = normalized.chars().take(64).collect();
    let entropy = zxcvbn::zxcvbn(&probe, &[]);
    if entropy.score() == zxcvbn::Score::Zero {
        let hint = entropy
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        return Err(DomainError::invalid(
            field,
            format!("is too common or too easy to guess{hint}; choose a longer or less predictable password"),
        ));
    }
    Ok(normalized)
}

/// NFKC form of a password being checked (no rules applied: old passwords stay usable).
pub fn normalize(password: &str) -> Zeroizing<String> {
    Zeroizing::new(password.nfkc().collect())
}

/// Hashes and verifies passwords off the async workers, on `cap` dedicated threads that
/// reuse their argon2 memory and that the nodes of one process share (see `hash_pool`).
#[derive(Debug)]
pub struct Hasher {
    params: Params,
    pool: Arc<HashPool>,
    permits: Arc<Semaphore>,
    dummy: String,
    verifications: AtomicU64,
    hashes: AtomicU64,
}

/// Result of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matched.
    pub ok: bool,
    /// The stored hash uses other parameters and should be rewritten.
    pub needs_rehash: bool,
}

impl Hasher {
    /// A hasher with the configured cost. Computes the dummy hash once (blocking).
    pub fn new(cfg: &Passwords) -> Result<Self, DomainError> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| DomainError::internal(format!("argon2 parameters: {e}")))?;
        let cap = match cfg.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let mut memory = Vec::new();
        let dummy = hash_pool::hash(
            &mut memory,
            &params,
            b"hearth dummy password for unknown accounts",
        )?;
        drop(memory);
        Ok(Self {
            pool: HashPool::shared(cap, &params)?,
            params,
            permits: Arc::new(Semaphore::new(cap)),
            dummy,
            verifications: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
        })
    }

    /// Hashes `password` (already validated) to a PHC string.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, DomainError> {
        let _permit = self.permits.acquire().await.map_err(|_| closed())?;
        self.hashes.fetch_add(1, Ordering::Relaxed);
        let params = self.params.clone();
        self.pool
            .run(move |memory| hash_pool::hash(memory, &params, password.as_bytes()))
            .await?
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no
    /// stored hash, so both paths run exactly one argon2 verification.
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        stored: Option<String>,
    ) -> Result<Verified, DomainError> {
        let _permit = self.permits.acquire().await.map_err(|_| closed())?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let params = self.params.clone();
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy.clone());
        self.pool
            .run(move |memory| {
                let (ok, have, alg) = hash_pool::verify(memory, &phc, password.as_bytes())?;
                Ok(Verified {
                    ok: ok && known,
                    needs_rehash: ok && known && !matches_params(alg, &have, &params),
                })
            })
            .await?
    }

    /// How many hashes were made (tests check that bad passwords are refused before).
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// How many verifications ran (tests check the enumeration rule with it).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

fn closed() -> DomainError {
    DomainError::internal("password hashing pool is closed")
}

fn matches_params(alg: Algorithm, have: &Params, want: &Params) -> bool {
    alg == Algorithm::Argon2id
        && have.m_cost() == want.m_cost()
        && have.t_cost() == want.t_cost()
        && have.p_cost() == want.p_cost()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(pw: &str) -> String {
        validate("password", pw)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn length_is_counted_in_code_points_after_nfkc() {
        assert!(err_of("Zq7#xLp").contains("at least 8"));
        assert!(validate("password", "Zq7#xLp!").is_ok());
        let long: String = "Zq7#xLp!".repeat(16);
        assert_eq!(long.chars().count(), 128);
        assert!(validate("password", &long).is_ok());
        assert!(err_of(&format!("{long}x")).contains("at most 128"));
        // "ﬀ" (one code point) becomes "ff" (two) under NFKC.
        assert!(validate("password", "ﬀZq7#xL").is_ok());
    }

    #[test]
    fn common_passwords_are_refused_with_the_reason() {
        let msg = err_of("password1");
        assert!(msg.contains("too common"), "{msg}");
    }
}
