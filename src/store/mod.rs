//! SQLite storage. All writes go through one writer thread, each in one IMMEDIATE transaction;
//! reads use a small pool of connections on tokio's blocking pool. No SQLite call ever runs
//! on an async worker thread. SQL text lives only under this module.
pub mod codes;
pub mod key_rotations;
mod migrations;
pub mod nonces;
pub mod outbox;
pub mod peer_tokens;
pub mod peers;
pub mod secrets;
pub mod sessions;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

/// A storage failure. Callers map it to INTERNAL unless a variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A UNIQUE constraint failed (the column is named).
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The database belongs to a newer Hearth.
    #[error("the database {path} has schema version {found}, but this Hearth knows only up to {known}: it was written by a newer Hearth. Run that version, or restore a backup")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// The writer thread or reader pool is gone (shutting down).
    #[error("the database is closed")]
    Closed,
}

impl StoreError {
    /// Maps a UNIQUE violation to [`StoreError::Conflict`] naming `what`.
    pub(crate) fn unique(e: rusqlite::Error, what: &'static str) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::Conflict(what)
            }
            other => StoreError::Sqlite(other),
        }
    }
}

type WriteJob = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Option<mpsc::Sender<WriteJob>>>,
    readers: Mutex<Vec<Connection>>,
    permits: tokio::sync::Semaphore,
    reads: AtomicU64,
    writes: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("reads", &self.reads())
            .finish_non_exhaustive()
    }
}

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies migrations and starts the
    /// writer thread. Blocking: call before serving, or from a blocking context.
    pub fn open(path: &Path, readers: usize) -> Result<Self, StoreError> {
        let mut writer = Connection::open(path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        configure(&writer)?;
        migrations::apply(&mut writer, path)?;
        let readers = (0..readers.max(1))
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&c)?;
                Ok(c)
            })
            .collect::<Result<Vec<_>, rusqlite::Error>>()?;
        let (tx, rx) = mpsc::channel::<WriteJob>();
        std::thread::Builder::new()
            .name("hearth-sqlite-writer".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut writer);
                }
            })
            .map_err(|_| StoreError::Closed)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(Some(tx)),
                permits: tokio::sync::Semaphore::new(readers.len()),
                readers: Mutex::new(readers),
                reads: AtomicU64::new(0),
                writes: AtomicU64::new(0),
            }),
        })
    }

    /// Runs `f` in one IMMEDIATE transaction on the writer thread; commits only if it
    /// returns `Ok`, so a failing request leaves nothing half-written.
    pub async fn write<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let result = (|| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(StoreError::from)?;
                let value = f(&tx)?;
                tx.commit().map_err(StoreError::from)?;
                Ok(value)
            })();
            let _ = reply.send(result);
        });
        let sender = self
            .inner
            .writer
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)?;
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` with a pooled read-only connection on the blocking pool.
    pub async fn read<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Connection) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner
                .readers
                .lock()
                .map_err(|_| StoreError::Closed)?
                .pop()
                .ok_or(StoreError::Closed)?;
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Number of read operations so far (for tests and metrics).
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    /// Number of write transactions so far.
    pub fn writes(&self) -> u64 {
        self.inner.writes.load(Ordering::Relaxed)
    }

    /// Stops accepting writes; the writer thread ends when queued jobs are done.
    pub fn close(&self) {
        if let Ok(mut w) = self.inner.writer.lock() {
            w.take();
        }
    }
}

/// The highest snowflake id stored in any table that holds them (0 when empty).
pub fn highest_id(c: &Connection) -> Result<u64, StoreError> {
    let max: Option<i64> = c.query_row(
        "SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM users UNION ALL SELECT MAX(id) FROM sessions)",
        [],
        |r| r.get(0),
    )?;
    Ok(max.unwrap_or(0) as u64)
}

/// Reads an optional row: `Ok(None)` when the query returns nothing.
pub(crate) fn optional<T>(r: Result<T, rusqlite::Error>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
