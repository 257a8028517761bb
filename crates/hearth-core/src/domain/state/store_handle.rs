//! [`Store`]: the domain's handle to its backend. Runs jobs in the backend's write and read
//! transactions, hands their answers back, and counts operations for tests and metrics.
use std::fmt;
use std::sync::Arc;

use super::store::{Backend, ReadJob, ReadTx, StoreError, Timings, WriteJob, WriteTx};

/// How a write runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Isolated from every other write; committed only if its caller still waits.
    Isolated,
    /// Row-locking operations only; committed only if its caller still waits.
    Locked,
    /// Row-locking operations only, durable; committed only if its caller still waits.
    Rows,
    /// Row-locking operations only; committed whether or not its caller waits.
    Counted,
    /// Statements each atomic alone, each committed as it runs.
    Each,
}

/// Handle to the store; cheap to clone. Counts operations for tests and metrics.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    reads: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    read_micros: std::sync::atomic::AtomicU64,
    write_micros: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store over `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            counts: Arc::default(),
        }
    }

    /// Runs `f` in one write transaction; commits only if it returns `Ok`, so a failing
    /// request leaves nothing half-written.
    pub async fn write<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnMut(&mut dyn WriteTx) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_job(f, Mode::Isolated).await
    }

    /// [`Store::write`] for a job whose reads all lock their rows, durable (see
    /// [`Backend::write_rows`]): a sign-in's final write.
    pub async fn write_rows<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnMut(&mut dyn WriteTx) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_job(f, Mode::Rows).await
    }

    /// [`Store::write`] for a job of row-locking operations only (see
    /// [`Backend::write_locked`]): short-lived state, whose every change is one locked row.
    pub async fn write_locked<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnMut(&mut dyn WriteTx) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_job(f, Mode::Locked).await
    }

    /// [`Store::write`] for a job of row-locking operations only (see
    /// [`Backend::write_locked`]) that commits even when its caller went away: for the
    /// records that count an attempt (a sign-in slot given back, with its outcome), which
    /// must hold whether or not the client waits.
    pub async fn write_counted<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnMut(&mut dyn WriteTx) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_job(f, Mode::Counted).await
    }

    /// [`Store::write`] for a job whose every write is a compare-and-set (see
    /// [`Backend::write_each`]): each commits as it runs, whether or not the caller waits.
    pub async fn write_each<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnMut(&mut dyn WriteTx) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_job(f, Mode::Each).await
    }

    async fn write_job<R, E, F>(&self, mut f: F, mode: Mode) -> Result<R, E>
    where
        F: FnMut(&mut dyn WriteTx) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        use std::sync::atomic::Ordering;
        // The caller's half: dropped when it goes away.
        let (waiting, caller) = tokio::sync::oneshot::channel::<()>();
        let slot = Arc::new(std::sync::Mutex::new(None));
        let out = slot.clone();
        let job: WriteJob = Box::new(move |tx| {
            let result = f(tx);
            // A caller that went away (its deadline passed, or the client cancelled) gets
            // no answer, so nothing of its request commits: a sign-in that no client
            // receives makes no session.
            let commit = result.is_ok()
                && (matches!(mode, Mode::Counted | Mode::Each) || !waiting.is_closed());
            // A rerun (a lost serialization race) replaces the earlier run's answer.
            *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            commit
        });
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let done = match mode {
            Mode::Isolated => self.backend.write(job).await,
            Mode::Locked | Mode::Counted => self.backend.write_locked(job).await,
            Mode::Rows => self.backend.write_rows(job).await,
            Mode::Each => self.backend.write_each(job).await,
        };
        drop(caller);
        self.counts
            .write_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        done?;
        let result = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        result.ok_or(StoreError::Closed)?
    }

    /// Runs `f` on a read-only snapshot.
    pub async fn read<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut dyn ReadTx) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run_read(f, false).await
    }

    /// Runs `f`, a point lookup by unique key (a few index probes, never a scan), on a
    /// read-only snapshot where the backend serves it cheapest: the per-request credential
    /// lookups of a cache miss. See [`Backend::lookup`].
    pub async fn lookup<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut dyn ReadTx) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run_read(f, true).await
    }

    async fn run_read<R, E, F>(&self, f: F, lookup: bool) -> Result<R, E>
    where
        F: FnOnce(&mut dyn ReadTx) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        use std::sync::atomic::Ordering;
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |tx| {
            let _ = reply.send(f(tx));
        });
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let done = if lookup {
            self.backend.lookup(job).await
        } else {
            self.backend.read(job).await
        };
        self.counts
            .read_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        done?;
        answer.try_recv().map_err(|_| StoreError::Closed)?
    }

    /// Number of read operations so far.
    pub fn reads(&self) -> u64 {
        self.counts.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Number of write transactions so far.
    pub fn writes(&self) -> u64 {
        self.counts
            .writes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// See [`Backend::round_trips`].
    pub fn round_trips(&self) -> u64 {
        self.backend.round_trips()
    }

    /// See [`Backend::scrub`].
    pub async fn scrub(&self) -> Result<(), StoreError> {
        self.backend.scrub().await
    }

    /// Operation counts and times so far.
    pub fn timings(&self) -> Timings {
        use std::sync::atomic::Ordering::Relaxed;
        Timings {
            reads: self.counts.reads.load(Relaxed),
            read_micros: self.counts.read_micros.load(Relaxed),
            writes: self.counts.writes.load(Relaxed),
            write_micros: self.counts.write_micros.load(Relaxed),
        }
    }

    /// Whether the backend can serve.
    pub fn is_ready(&self) -> bool {
        self.backend.is_ready()
    }

    /// Stops accepting writes.
    pub fn close(&self) {
        self.backend.close();
    }
}
