//! argon2id on a fixed set of threads, each reusing one pre-allocated memory buffer. A
//! verification with the default cost needs ~19 MiB; allocating it per call on whichever
//! blocking-pool thread runs it leaves that memory in the allocator's per-thread arenas, and
//! resident memory climbs to gigabytes during sign-in bursts. Here it is allocated once per
//! thread and reused, so the pool's memory is `threads × m_cost` for the node's lifetime.
//!
//! Nodes of one process (tests, benchmarks, an embedding) share one pool per size: the
//! thread count bounds the hashes a host's cores run at once, and N nodes with N pools ran
//! N × cores of them. Oversubscribed argon2 loses to its own switching: on 2 cores a scratch
//! program measured 130 hashes/s with 2 threads, 117 with 5 and 113 with 6.
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::DomainError;

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The pool. Dropping it lets its threads end once queued work is done.
#[derive(Debug)]
pub struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

fn internal(what: &str, e: impl std::fmt::Display) -> DomainError {
    DomainError::internal(format!("{what}: {e}"))
}

impl HashPool {
    /// Starts `threads` workers, each with memory for `params`, and returns once every
    /// worker holds its memory: a node's resident memory is all there when it is ready,
    /// not growing by the pool's size while it already serves.
    pub fn new(threads: usize, params: &Params) -> Result<Self, DomainError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let (held, holding) = mpsc::channel::<()>();
        let threads = threads.max(1);
        for i in 0..threads {
            let rx = rx.clone();
            let held = held.clone();
            let blocks = params.block_count();
            std::thread::Builder::new()
                .name(format!("hearth-argon2-{i}"))
                .spawn(move || {
                    let mut memory = vec![Block::default(); blocks];
                    let _ = held.send(());
                    drop(held);
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| internal("starting the argon2 threads", e))?;
        }
        drop(held);
        for _ in 0..threads {
            holding
                .recv()
                .map_err(|e| internal("allocating the argon2 threads' memory", e))?;
        }
        Ok(Self {
            jobs: Mutex::new(tx),
        })
    }

    /// The pool of `threads` workers with memory for `params` that every node of this
    /// process shares, started by the first node that asks for it; its threads end when the
    /// last of those nodes drops it.
    pub fn shared(threads: usize, params: &Params) -> Result<Arc<Self>, DomainError> {
        type Pools = Vec<((usize, usize), Weak<HashPool>)>;
        static POOLS: Mutex<Pools> = Mutex::new(Vec::new());
        let key = (threads.max(1), params.block_count());
        let mut pools = POOLS.lock().map_err(|e| internal("argon2 pools", e))?;
        pools.retain(|(_, pool)| pool.strong_count() > 0);
        if let Some(pool) = pools
            .iter()
            .filter(|(k, _)| *k == key)
            .find_map(|(_, pool)| pool.upgrade())
        {
            return Ok(pool);
        }
        let pool = Arc::new(Self::new(threads, params)?);
        pools.push((key, Arc::downgrade(&pool)));
        Ok(pool)
    }

    /// Runs `f` on a pool thread with its memory.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> R + Send + 'static,
    ) -> Result<R, DomainError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = reply.send(f(memory));
        });
        self.jobs
            .lock()
            .map_err(|e| internal("argon2 pool", e))?
            .send(job)
            .map_err(|e| internal("argon2 pool", e))?;
        answer
            .await
            .map_err(|_| DomainError::internal("the argon2 pool stopped"))
    }
}

/// Hashes `password` with `params` into a PHC string, using `memory`.
pub fn hash(
    memory: &mut Vec<Block>,
    params: &Params,
    password: &[u8],
) -> Result<String, DomainError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut raw = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut raw)
        .map_err(|e| internal("salt", e))?;
    let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
    fit(memory, params);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, salt_bytes, &mut out[..], &mut memory[..])
        .map_err(|e| internal("argon2", e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| internal("argon2 parameters", e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out[..]).map_err(|e| internal("argon2 output", e))?),
    };
    Ok(phc.to_string())
}

/// Verifies `password` against a PHC string, using `memory`. Returns whether it matched and
/// the parameters the stored hash was made with.
pub fn verify(
    memory: &mut Vec<Block>,
    phc: &str,
    password: &[u8],
) -> Result<(bool, Params, Algorithm), DomainError> {
    let parsed = PasswordHash::new(phc).map_err(|e| internal("stored password hash", e))?;
    let algorithm =
        Algorithm::try_from(parsed.algorithm).map_err(|e| internal("stored password hash", e))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| internal("stored password hash", e))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|e| internal("stored password hash", e))?;
    let salt = parsed
        .salt
        .ok_or_else(|| DomainError::internal("stored password hash has no salt"))?;
    let mut raw = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut raw)
        .map_err(|e| internal("stored password hash", e))?;
    let expected = parsed
        .hash
        .ok_or_else(|| DomainError::internal("stored password hash has no hash"))?;
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    fit(memory, &params);
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password, salt_bytes, &mut out, &mut memory[..])
        .map_err(|e| internal("argon2", e))?;
    Ok((
        bool::from(out.as_slice().ct_eq(expected.as_bytes())),
        params,
        algorithm,
    ))
}

/// Grows `memory` for a stored hash made with a higher cost (an old parameter set); the
/// configured cost was allocated up front.
fn fit(memory: &mut Vec<Block>, params: &Params) {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_with_the_stock_verifier_and_back() {
        use argon2::password_hash::PasswordVerifier;
        let params = Params::new(256, 1, 1, None).unwrap_or_else(|e| panic!("{e}"));
        let pool = HashPool::new(2, &params).unwrap_or_else(|e| panic!("{e}"));
        let p = params.clone();
        let phc = pool
            .run(move |m| hash(m, &p, b"hunter2 hunter2"))
            .await
            .and_then(|r| r)
            .unwrap_or_else(|e| panic!("{e}"));
        let parsed = PasswordHash::new(&phc).unwrap_or_else(|e| panic!("{e}"));
        assert!(Argon2::default()
            .verify_password(b"hunter2 hunter2", &parsed)
            .is_ok());
        let (ok, _, _) = pool
            .run({
                let phc = phc.clone();
                move |m| verify(m, &phc, b"hunter2 hunter2")
            })
            .await
            .and_then(|r| r)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(ok);
        let (ok, _, _) = pool
            .run(move |m| verify(m, &phc, b"hunter3 hunter3"))
            .await
            .and_then(|r| r)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!ok);
    }

    #[test]
    fn nodes_of_one_process_share_a_pool_of_one_size_until_the_last_drops_it() {
        let params = Params::new(264, 1, 1, None).unwrap_or_else(|e| panic!("{e}"));
        let other = Params::new(272, 1, 1, None).unwrap_or_else(|e| panic!("{e}"));
        let shared = |t, p: &Params| HashPool::shared(t, p).unwrap_or_else(|e| panic!("{e}"));
        let a = shared(3, &params);
        let b = shared(3, &params);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &shared(2, &params)));
        assert!(!Arc::ptr_eq(&a, &shared(3, &other)));
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
    }
}
