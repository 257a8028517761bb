//! The SQLite backend of the store seam. All writes go through one writer thread, each in
//! one IMMEDIATE transaction; reads use a few read-only connections, each on a thread of
//! its own fed by a queue. Threads of their own rather than tokio's blocking pool: the pool
//! paid a thread hand-off (a futex wake and a context switch) for every read, where a busy
//! reader takes its next read from its queue without one.
//!
//! Point lookups ([`Backend::lookup`]: a credential by its hash, a few unique-index probes)
//! skip even that hand-off: they run on the calling async worker on one of a few inline
//! connections, when one is free, else they queue like any read. A probe takes
//! microseconds, far less than the wake-up it saves; the 200k-distinct-sessions benchmark
//! row gained about a quarter. Scans and lists never run on an async worker.
//!
//! SQL text lives only under this module, and rusqlite types never leave it.
mod access_tokens;
mod account_changes;
mod codes;
mod id_workers;
mod identities;
mod invites;
mod key_rotations;
mod migrations;
mod nonces;
mod outbox;
mod passkeys;
mod peer_tokens;
mod peers;
mod revocation_notices;
mod second_factors;
mod secrets;
mod sessions;
mod sign_in_throttle;
mod tx;
mod users;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use migrations::LATEST as SCHEMA_VERSION;

use crate::config::Synchronous;
use crate::domain::state::store::{Backend, ReadJob, StoreError, WriteJob};
use tx::Tx;

/// A driver error as the seam's. A function, not `From`: both types live in other crates.
pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Makes the database file 0600 (created empty if absent) before SQLite opens it: SQLite
/// gives its `-wal` and `-shm` files the database file's mode, so none of the three is ever
/// readable by other users, whatever the umask or the data dir's mode. They hold password
/// hashes, pending codes and addresses.
fn private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |e: std::io::Error| StoreError::Backend(format!("{}: {e}", path.display()));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    // A database from before this rule may have 0644 files beside it.
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = Path::new(&file);
        if file.exists() {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
    }
    Ok(())
}

/// Maps a UNIQUE violation to [`StoreError::Conflict`] naming `what`.
pub(crate) fn unique(e: rusqlite::Error, what: &'static str) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict(what)
        }
        other => db_err(other),
    }
}

/// Ids as one JSON array parameter, for `IN (SELECT value FROM json_each(?))`: one cached
/// statement whatever the number of ids, and no limit on how many.
pub(crate) fn json_ids(ids: &[u64]) -> String {
    format!(
        "[{}]",
        ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    )
}

/// Reads an optional row: `Ok(None)` when the query returns nothing.
pub(crate) fn optional<T>(r: Result<T, rusqlite::Error>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(db_err(e)),
    }
}

/// One row (or none) of a statement each connection prepares once: the hot reads skip
/// SQLite's parser.
pub(crate) fn cached_row<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    optional(c.prepare_cached(sql).map_err(db_err)?.query_row(params, f))
}

/// Runs a statement each connection prepares once (the sign-in path's writes).
pub(crate) fn cached_exec(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, rusqlite::Error> {
    c.prepare_cached(sql)?.execute(params)
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;
type ReaderJob = Box<dyn FnOnce(&Connection) + Send>;

/// Bytes the write-ahead log's file keeps once a checkpoint lets it start over. A burst
/// grows it (the benchmark's activity stamps over a million sessions left it ~60 MB), and
/// without a limit the file stays that size for good.
const WAL_SIZE_LIMIT: u64 = 16 << 20;

/// Reads queued on one reader before the next reader gets them.
const SHORT_QUEUE: usize = 4;

/// One reader thread: its queue, and how many reads wait in it or run.
struct Reader {
    queue: mpsc::Sender<ReaderJob>,
    waiting: Arc<AtomicUsize>,
}

/// The SQLite backend.
pub struct Sqlite {
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_alive: Arc<AtomicBool>,
    readers: Vec<Reader>,
    /// Connections for point lookups on the caller's thread; one per reader.
    inline: Vec<Mutex<Connection>>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sqlite")
    }
}

fn configure(conn: &Connection, sync: Synchronous) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let sync = match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // Deleted and rewritten content (codes in mail, old token hashes) is overwritten.
    conn.pragma_update(None, "secure_delete", "ON")?;
    // Room for every hot statement (`cached_row`, `cached_exec`).
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path`, applies migrations and starts the
    /// writer thread. Blocking: call before serving, or from a blocking context.
    pub fn open(path: &Path, readers: usize, sync: Synchronous) -> Result<Self, StoreError> {
        private_file(path)?;
        let mut writer = Connection::open(path).map_err(db_err)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        writer
            .pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT as i64)
            .map_err(db_err)?;
        configure(&writer, sync).map_err(db_err)?;
        migrations::apply(&mut writer, path)?;
        let read_only = || {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&c, sync)?;
            Ok::<_, rusqlite::Error>(c)
        };
        let readers = (0..readers.max(1))
            .map(|_| read_only())
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        let inline = (0..readers.len())
            .map(|_| read_only().map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        std::thread::Builder::new()
            .name("hearth-sqlite-writer".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut writer);
                }
                flag.store(false, Ordering::Relaxed);
            })
            .map_err(|_| StoreError::Closed)?;
        let readers = readers
            .into_iter()
            .enumerate()
            .map(|(n, conn)| {
                let (queue, jobs) = mpsc::channel::<ReaderJob>();
                std::thread::Builder::new()
                    .name(format!("hearth-sqlite-reader-{n}"))
                    .spawn(move || {
                        while let Ok(job) = jobs.recv() {
                            job(&conn);
                        }
                    })
                    .map_err(|_| StoreError::Closed)?;
                Ok(Reader {
                    queue,
                    waiting: Arc::default(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            writer: Mutex::new(Some(tx)),
            writer_alive: alive,
            readers,
            inline,
        })
    }
}

impl Sqlite {
    /// Runs `f` on the writer thread, after the jobs queued before it.
    async fn on_writer(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        let sender = self
            .writer
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Runs one write job in an IMMEDIATE transaction. A panic inside the job fails that job
/// (rolled back) and leaves the writer serving.
fn run_write(conn: &mut Connection, mut job: WriteJob) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let commit = catch_unwind(AssertUnwindSafe(|| job(&mut Tx(&tx))))
        .map_err(|_| StoreError::Backend("a write job panicked; it was rolled back".into()))?;
    if commit {
        tx.commit().map_err(db_err)?;
    }
    Ok(())
}

/// Runs one read job; a panic inside it fails that job alone.
fn run_read(conn: &Connection, job: ReadJob) -> Result<(), StoreError> {
    catch_unwind(AssertUnwindSafe(|| job(&mut Tx(conn))))
        .map_err(|_| StoreError::Backend("a read job panicked".into()))
}

#[async_trait::async_trait]
impl Backend for Sqlite {
    async fn write(&self, job: WriteJob) -> Result<(), StoreError> {
        self.on_writer(move |conn| run_write(conn, job)).await
    }

    async fn lookup(&self, job: ReadJob) -> Result<(), StoreError> {
        // try_lock: a lookup never waits for another; with every inline connection busy
        // it queues on a reader instead.
        if let Some(conn) = self.inline.iter().find_map(|c| c.try_lock().ok()) {
            return run_read(&conn, job);
        }
        self.read(job).await
    }

    async fn read(&self, job: ReadJob) -> Result<(), StoreError> {
        // The first reader with a short queue, else the shortest: under load the first
        // reader stays awake draining its queue, and a slow read holds up only the reads
        // queued behind it.
        let waiting = |r: &&Reader| r.waiting.load(Ordering::Relaxed);
        let reader = self
            .readers
            .iter()
            .find(|r| waiting(r) < SHORT_QUEUE)
            .or_else(|| self.readers.iter().min_by_key(waiting))
            .ok_or(StoreError::Closed)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let count = reader.waiting.clone();
        count.fetch_add(1, Ordering::Relaxed);
        let run: ReaderJob = Box::new(move |conn| {
            let result = run_read(conn, job);
            count.fetch_sub(1, Ordering::Relaxed);
            let _ = reply.send(result);
        });
        if reader.queue.send(run).is_err() {
            reader.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Closed);
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        self.on_writer(|conn| {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(db_err)
        })
        .await
    }

    fn is_ready(&self) -> bool {
        self.writer_alive.load(Ordering::Relaxed)
            && self.writer.lock().map(|w| w.is_some()).unwrap_or(false)
    }

    fn close(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::state::Store;

    fn open(dir: &Path, sync: Synchronous) -> Sqlite {
        Sqlite::open(&dir.join("t.sqlite3"), 1, sync).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `f` on the writer's connection, outside any write job.
    async fn on_writer_raw<T: Send + 'static>(
        db: &Sqlite,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> T {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        let sender = db.writer.lock().ok().and_then(|w| w.clone());
        sender
            .map(|s| s.send(job))
            .unwrap_or_else(|| panic!("writer"))
            .unwrap_or_else(|e| panic!("{e}"));
        answer
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn writer_pragma(db: &Sqlite, name: &'static str) -> i64 {
        on_writer_raw(db, move |c| c.pragma_query_value(None, name, |r| r.get(0))).await
    }

    /// Runs `sql` on the writer, each statement in its own transaction.
    async fn writer_exec(db: &Sqlite, sql: &'static str) {
        on_writer_raw(db, move |c| c.execute_batch(sql)).await;
    }

    #[tokio::test]
    async fn synchronous_full_is_the_default_and_normal_is_honoured() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sync = crate::config::Config::default().store.synchronous;
        assert_eq!(sync, Synchronous::Full);
        assert_eq!(
            writer_pragma(&open(dir.path(), sync), "synchronous").await,
            2
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let normal = open(dir.path(), Synchronous::Normal);
        assert_eq!(writer_pragma(&normal, "synchronous").await, 1);
        assert_eq!(writer_pragma(&normal, "secure_delete").await, 1);
    }

    #[tokio::test]
    async fn the_write_ahead_log_shrinks_back_after_a_large_write() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = open(dir.path(), Synchronous::Normal);
        let wal = || {
            std::fs::metadata(dir.path().join("t.sqlite3-wal"))
                .map(|m| m.len())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        // One transaction of more than the limit: the log must hold it whole.
        writer_exec(
            &db,
            "CREATE TABLE big (b BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 96) \
             INSERT INTO big SELECT randomblob(256 * 1024) FROM n;",
        )
        .await;
        assert!(wal() > WAL_SIZE_LIMIT, "the log grew: {}", wal());
        // The next write starts the log over, and cuts its file back to the limit.
        writer_exec(&db, "DELETE FROM big WHERE rowid = 1;").await;
        assert!(wal() <= WAL_SIZE_LIMIT, "the log kept {} bytes", wal());
    }

    #[tokio::test]
    #[allow(clippy::panic)]
    async fn a_panicking_write_fails_alone_and_the_writer_keeps_serving() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::new(Arc::new(open(dir.path(), Synchronous::Full)));
        let r = store
            .write(|tx| {
                tx.put_peer(&crate::domain::model::Peer {
                    server_id: "half.example.org".into(),
                    ..Default::default()
                })?;
                if tx.peers()?.len() == 1 {
                    panic!("a bug in a write job");
                }
                Ok::<_, StoreError>(())
            })
            .await;
        assert!(r.is_err());
        assert!(store.is_ready(), "the writer survived");
        let peers = store.read(|tx| tx.peers()).await.unwrap_or_default();
        assert!(peers.is_empty(), "the panicking job was rolled back");
        store
            .write(|tx| tx.use_nonce("a.example.org", b"n", 1, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn reads_run_on_reader_threads_and_survive_a_panicking_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = Sqlite::open(&dir.path().join("t.sqlite3"), 2, Synchronous::Full)
            .unwrap_or_else(|e| panic!("{e}"));
        let store = Store::new(Arc::new(db));
        let thread = store
            .read(|_| Ok::<_, StoreError>(std::thread::current().name().map(str::to_owned)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            thread.is_some_and(|n| n.starts_with("hearth-sqlite-reader-")),
            "never on an async worker"
        );
        let r = store
            .read(|tx| {
                if tx.peers()?.is_empty() {
                    panic!("a bug in a read job");
                }
                Ok::<_, StoreError>(())
            })
            .await;
        assert!(r.is_err());
        // Every reader still answers (more reads than readers, in parallel).
        let reads = (0..8).map(|_| store.read(|tx| tx.peers()));
        for r in futures_util::future::join_all(reads).await {
            assert!(r.is_ok());
        }
    }

    #[test]
    fn the_bundled_sqlite_has_no_global_page_cache_or_allocation_lock() {
        // .cargo/config.toml sets these; without them every connection's page fetches and
        // every SQLite allocation take a process-wide mutex.
        let c = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        let mut stmt = c
            .prepare("PRAGMA compile_options")
            .unwrap_or_else(|e| panic!("{e}"));
        let options: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    fn thread_name() -> Option<String> {
        std::thread::current().name().map(str::to_owned)
    }

    #[tokio::test]
    #[allow(clippy::panic)]
    async fn a_lookup_runs_on_the_caller_unless_every_inline_connection_is_busy() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = Arc::new(
            Sqlite::open(&dir.path().join("t.sqlite3"), 2, Synchronous::Full)
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let store = Store::new(db.clone());
        let caller = thread_name();
        let ran = store
            .lookup(|_| Ok::<_, StoreError>(thread_name()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ran, caller, "no hand-off to a reader thread");

        // A panicking lookup fails alone; its connection serves the next one.
        let r = store
            .lookup(|tx| {
                if tx.peers()?.is_empty() {
                    panic!("a bug in a lookup");
                }
                Ok::<_, StoreError>(())
            })
            .await;
        assert!(r.is_err());
        assert!(store.lookup(|tx| tx.peers()).await.is_ok());
        assert!(
            db.inline.iter().all(|c| c.try_lock().is_ok()),
            "none poisoned"
        );

        // With every inline connection held (by another thread), a lookup queues on a
        // reader instead of waiting.
        let (held, release) = (mpsc::channel(), mpsc::channel::<()>());
        let holder = {
            let (db, held, release) = (db.clone(), held.0, release.1);
            std::thread::spawn(move || {
                let guards: Vec<_> = db.inline.iter().filter_map(|c| c.try_lock().ok()).collect();
                let _ = held.send(guards.len());
                let _ = release.recv();
            })
        };
        assert_eq!(held.1.recv().ok(), Some(2));
        let ran = store
            .lookup(|_| Ok::<_, StoreError>(thread_name()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(ran.is_some_and(|n| n.starts_with("hearth-sqlite-reader-")));
        let _ = release.0.send(());
        assert!(holder.join().is_ok());
    }
}
