//! The store seam: the domain reads and writes state only through [`ReadTx`] and [`WriteTx`],
//! run by a [`Backend`] (`hearth-store`: SQLite, or PostgreSQL for a cluster). Each rule that guards a write is one
//! named atomic operation here, so no rule depends on one writer ordering reads and writes.
mod accounts;
mod codes;
mod federation;
mod invites;
mod jobs;
mod passkeys;
mod sessions;
mod tokens;

pub use accounts::{AccountsRead, AccountsWrite, SignInHeld};
pub use codes::{CodesRead, CodesWrite};
pub use federation::{FederationRead, FederationWrite};
pub use invites::{InvitesRead, InvitesWrite};
pub use jobs::{JobsRead, JobsWrite, StoredRow, Swap};
pub use passkeys::{PasskeysRead, PasskeysWrite};
pub use sessions::{Ended, Later, SessionsRead, SessionsWrite};
use std::fmt;
use std::path::PathBuf;
pub use tokens::{TokensRead, TokensWrite};

/// A storage failure. Callers map it to INTERNAL unless a variant says otherwise.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend said no (its message; never a secret).
    #[error("database error: {0}")]
    Backend(String),
    /// A uniqueness rule failed (the thing is named).
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The database belongs to a newer Hearth.
    #[error("the database {path} has schema version {found}, but this Hearth knows only up to {known}: it was written by a newer Hearth. Run that version, or restore a backup")]
    TooNew {
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// The backend is gone (shutting down, or its writer died).
    #[error("the database is closed")]
    Closed,
    /// The database cannot be reached right now (a lost connection, a restart); calls
    /// answer UNAVAILABLE while the backend reconnects.
    #[error("the database cannot be reached: {0}")]
    Unreachable(String),
    /// A write lost its race with parallel writes of the same rows too often; trying again
    /// later may succeed.
    #[error("the database kept refusing this write under contention")]
    Contended,
}

/// Every read operation: the areas' read traits together (each area in its own file, so a
/// backend implements and a reader finds one area at a time).
pub trait ReadTx:
    AccountsRead
    + SessionsRead
    + CodesRead
    + TokensRead
    + InvitesRead
    + FederationRead
    + JobsRead
    + PasskeysRead
{
}
impl<
        T: ?Sized
            + AccountsRead
            + SessionsRead
            + CodesRead
            + TokensRead
            + InvitesRead
            + FederationRead
            + JobsRead
            + PasskeysRead,
    > ReadTx for T
{
}

/// Every write operation, each inside the caller's one transaction.
pub trait WriteTx:
    ReadTx
    + AccountsWrite
    + SessionsWrite
    + CodesWrite
    + TokensWrite
    + InvitesWrite
    + FederationWrite
    + JobsWrite
    + PasskeysWrite
{
}
impl<
        T: ?Sized
            + ReadTx
            + AccountsWrite
            + SessionsWrite
            + CodesWrite
            + TokensWrite
            + InvitesWrite
            + FederationWrite
            + JobsWrite
            + PasskeysWrite,
    > WriteTx for T
{
}

/// Figures the store keeps for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Sessions not yet expired.
    pub active_sessions: u64,
    /// Mails waiting to be delivered.
    pub outbox_depth: u64,
    /// When the oldest of them was queued (unix ms).
    pub outbox_oldest: Option<u64>,
}

/// Time spent in store operations, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Read operations so far.
    pub reads: u64,
    /// Their total time (µs), queueing included.
    pub read_micros: u64,
    /// Write transactions so far.
    pub writes: u64,
    /// Their total time (µs), queueing for the writer included.
    pub write_micros: u64,
}

/// A job for the backend's writer: returns true to commit, false to roll back. A backend
/// may run it more than once, each time in a fresh transaction (PostgreSQL retries one that
/// lost a serialization race); only the last run's transaction commits.
pub type WriteJob = Box<dyn FnMut(&mut dyn WriteTx) -> bool + Send>;
/// A job for one of the backend's readers.
pub type ReadJob = Box<dyn FnOnce(&mut dyn ReadTx) + Send>;

/// What a storage backend provides: one write transaction at a time per job, and reads.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Runs `job` in one write transaction, isolated from every other (serializable);
    /// commits if it returns true.
    async fn write(&self, job: WriteJob) -> Result<(), StoreError>;
    /// Runs `job`, whose operations each lock the rows they read and write (the
    /// `*_for_update` operations of [`WriteTx`] and single-statement ones), in one write
    /// transaction that needs no further isolation: hot rows (a client's budget, the
    /// sign-in gate) queue on their row locks instead of retrying. By default, [`Backend::write`].
    async fn write_locked(&self, job: WriteJob) -> Result<(), StoreError> {
        self.write(job).await
    }
    /// [`Backend::write_locked`] whose commit is as durable as [`Backend::write`]'s: for a
    /// job whose reads all lock their rows and that writes what must not be lost (a
    /// sign-in's session, behind its user's row lock).
    async fn write_rows(&self, job: WriteJob) -> Result<(), StoreError> {
        self.write(job).await
    }
    /// Runs `job`, whose every write is one statement atomic by itself (a compare-and-set,
    /// [`WriteTx::swap_short_lived`]), where it costs least: on PostgreSQL outside any
    /// transaction, each statement committing as it runs, so the job's answer cannot roll
    /// anything back. Not durable, like [`Backend::write_locked`]. By default,
    /// [`Backend::write_locked`].
    async fn write_each(&self, job: WriteJob) -> Result<(), StoreError> {
        self.write_locked(job).await
    }
    /// Runs `job` on a read-only snapshot.
    async fn read(&self, job: ReadJob) -> Result<(), StoreError>;
    /// Runs `job`, a point lookup (a few probes of unique indexes, never a scan), where it
    /// costs least. By default it is just a read.
    async fn lookup(&self, job: ReadJob) -> Result<(), StoreError> {
        self.read(job).await
    }
    /// Whether the backend can still serve (the writer is alive).
    fn is_ready(&self) -> bool;
    /// Round trips to a database server so far: each time a connection waited for an
    /// answer (0 for an embedded database).
    fn round_trips(&self) -> u64 {
        0
    }
    /// Makes sure rewritten or deleted data no longer lingers in the backend's files (for
    /// SQLite: checkpoints and truncates the write-ahead log).
    async fn scrub(&self) -> Result<(), StoreError>;
    /// Stops accepting writes.
    fn close(&self);
}
