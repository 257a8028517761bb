//! Id allocation: snowflake ids (41 bits of milliseconds since the Hearth epoch, 10 bits of
//! worker, 12 bits of sequence). Every id-making process (the node, each CLI command) leases
//! its own worker number from the store, so two processes never mint the same id; ids are
//! unique and increase with time.
use std::sync::Mutex;

use super::store::StoreError;
use super::store_handle::Store;
use crate::clock::SharedClock;

/// How long a worker lease lasts without renewal (the node renews it every minute).
pub const LEASE_MS: u64 = 10 * 60 * 1000;

/// Hands out unique ids.
pub trait IdAllocator: Send + Sync + std::fmt::Debug {
    fn next_id(&self) -> u64;
}

/// A leased worker number; renew it before [`LEASE_MS`] passes, release it when done.
#[derive(Debug, Clone)]
pub struct WorkerLease {
    store: Store,
    clock: SharedClock,
    holder: String,
    worker: u16,
}

impl WorkerLease {
    /// Leases a free worker for `holder` (e.g. "node pid 42", "cli pid 43").
    pub async fn acquire(
        store: &Store,
        clock: SharedClock,
        holder: String,
    ) -> Result<Self, StoreError> {
        let now = clock.now_ms();
        let who = holder.clone();
        let worker = store
            .write(move |tx| tx.lease_id_worker(&who, None, now, now + LEASE_MS))
            .await?
            .ok_or_else(|| StoreError::Backend("all 1024 snowflake workers are leased".into()))?;
        Ok(Self {
            store: store.clone(),
            clock,
            holder,
            worker,
        })
    }

    /// The leased worker number.
    pub fn worker(&self) -> u16 {
        self.worker
    }

    /// Extends the lease; an error means it was lost (another process took it over).
    pub async fn renew(&self) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let (who, worker) = (self.holder.clone(), self.worker);
        let kept = self
            .store
            .write(move |tx| tx.lease_id_worker(&who, Some(worker), now, now + LEASE_MS))
            .await?;
        match kept {
            Some(w) if w == worker => Ok(()),
            _ => Err(StoreError::Backend(format!(
                "the lease on snowflake worker {worker} was lost"
            ))),
        }
    }

    /// Gives the worker back.
    pub async fn release(&self) -> Result<(), StoreError> {
        let (who, worker) = (self.holder.clone(), self.worker);
        self.store
            .write(move |tx| tx.release_id_worker(worker, &who))
            .await
    }
}

/// 2024-01-01T00:00:00Z in unix milliseconds.
const EPOCH_MS: u64 = 1_704_067_200_000;
const WORKER_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

impl IdAllocator for Snowflake {
    fn next_id(&self) -> u64 {
        Snowflake::next_id(self)
    }
}

/// Generates snowflake IDs.
#[derive(Debug)]
pub struct Snowflake {
    clock: SharedClock,
    worker: u64,
    state: Mutex<(u64, u64)>, // (last ms, sequence)
}

impl Snowflake {
    /// A generator for `worker` (only the low 10 bits are used) whose IDs are all greater
    /// than `floor`, the highest ID already stored: a restart, or a clock that stepped back,
    /// can then never repeat an ID.
    pub fn new(clock: SharedClock, worker: u16, floor: u64) -> Self {
        Self {
            clock,
            worker: u64::from(worker) & ((1 << WORKER_BITS) - 1),
            state: Mutex::new((floor >> (WORKER_BITS + SEQ_BITS), floor & SEQ_MASK)),
        }
    }

    /// The next ID. Never repeats: when the sequence of a millisecond is used up, or the clock
    /// steps back, it borrows from the next millisecond instead of waiting.
    pub fn next_id(&self) -> u64 {
        let now = self.clock.now_ms().saturating_sub(EPOCH_MS);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut ms, mut seq) = *state;
        if now > ms {
            ms = now;
            seq = 0;
        } else {
            seq += 1;
            if seq > SEQ_MASK {
                ms += 1;
                seq = 0;
            }
        }
        *state = (ms, seq);
        (ms << (WORKER_BITS + SEQ_BITS)) | (self.worker << SEQ_BITS) | seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn ids_are_unique_and_increasing_within_one_millisecond() {
        let clock = ManualClock::new();
        let gen = Snowflake::new(clock.clone(), 3, 0);
        let ids: Vec<u64> = (0..10_000).map(|_| gen.next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((ids[0] >> SEQ_BITS) & 0x3ff, 3, "worker bits are kept");
        // A restart with the same clock continues above the stored IDs.
        let again = Snowflake::new(clock, 3, *ids.last().unwrap_or(&0));
        assert!(again.next_id() > *ids.last().unwrap_or(&0));
    }
}
