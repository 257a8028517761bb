//! The store seam's jobs area: node state: id workers, job leases, sealed node secrets, short-lived shared state and gauges.
use super::{Gauges, StoreError};

/// Reads of the jobs area.
pub trait JobsRead {
    /// The node secret `name`, if it exists (read-only; see `WriteTx::node_secret`).
    fn stored_secret(&mut self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The highest snowflake id stored (0 when empty).
    fn highest_id(&mut self) -> Result<u64, StoreError>;
    /// Live sessions, queued mails and the oldest queued mail's time, for metrics.
    fn gauges(&mut self, now: u64) -> Result<Gauges, StoreError>;
    /// The live short-lived value of (`space`, `key`) at `now`.
    fn short_lived(
        &mut self,
        space: &str,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// The stored short-lived rows of (`space`, each of `keys`), live or expired, in the
    /// keys' order: (value, expires at). Not locked: what a [`JobsWrite::swap_short_lived`]
    /// compares against.
    fn short_lived_rows(
        &mut self,
        space: &str,
        keys: &[[u8; 32]],
    ) -> Result<Vec<Option<StoredRow>>, StoreError>;
}

/// A short-lived row as stored: its value and when it expires (unix ms).
pub type StoredRow = (Vec<u8>, u64);

/// A compare-and-set of one short-lived row: (key, the value it must still hold, or `None`
/// for no row, the new value).
pub type Swap = ([u8; 32], Option<Vec<u8>>, Vec<u8>);

/// Writes of the jobs area, inside the caller's one transaction.
pub trait JobsWrite: JobsRead {
    /// The node secret `name`, created from `make` on first use.
    fn node_secret(
        &mut self,
        name: &str,
        make: &mut dyn FnMut() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError>;
    /// Replaces the node secret `name` (a key rotation updates the cluster's public key).
    fn set_node_secret(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Atomic: leases a free snowflake worker number for `holder` until `expires_at`
    /// (expired leases are free), or renews `holder`'s lease on `worker` if given.
    fn lease_id_worker(
        &mut self,
        holder: &str,
        renew: Option<u16>,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<u16>, StoreError>;
    /// Gives a worker lease back.
    fn release_id_worker(&mut self, worker: u16, holder: &str) -> Result<(), StoreError>;
    /// The live short-lived values of (`space`, each of `keys`) at `now`, in the keys'
    /// order, their rows locked until the transaction ends, so a read-change-write of them
    /// runs alone. Callers pass keys sorted, so two writers never deadlock.
    fn short_lived_for_update(
        &mut self,
        space: &str,
        keys: &[[u8; 32]],
        now: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    /// Stores short-lived values (key, value) until `expires_at` (and sweeps some expired
    /// ones), in one statement where the backend can.
    fn put_short_lived(
        &mut self,
        space: &str,
        values: &[([u8; 32], Vec<u8>)],
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError>;
    /// Atomic for each row: stores each swap's new value until `expires_at` where its row
    /// still holds the value the swap expects (`None`: where there is no row), never waiting
    /// on a row another write holds (that swap is not stored), and sweeps some expired rows;
    /// returns, in the swaps' order, which were stored. Sealed values carry a random nonce,
    /// so a row written again since it was read never compares equal.
    fn swap_short_lived(
        &mut self,
        space: &str,
        swaps: &[Swap],
        expires_at: u64,
        now: u64,
    ) -> Result<Vec<bool>, StoreError>;
    /// Atomic: takes or renews the lease of job `name` for `holder` until `expires_at`,
    /// unless another holder's lease is still live at `now`; returns whether `holder` holds it.
    fn hold_job(
        &mut self,
        name: &str,
        holder: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError>;
}
