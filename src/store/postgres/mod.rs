//! The PostgreSQL backend (`[store] url = "postgres://…"`), for several stateless nodes on
//! one database. The `postgres` driver (the synchronous client of rust-postgres) runs on a
//! small pool of dedicated threads, one connection each, so no query ever runs on an async
//! worker. Every write transaction first takes one transaction-scoped advisory lock: writes
//! are serialised across every node as SQLite's single writer serialises them in one
//! process, so each check that guards a write stays inside its write. Reads run in
//! read-only transactions beside them. The URL's password never appears in logs or errors.
mod gates;
mod notices;
mod read;
mod rows;
mod target;
mod write;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use postgres::Client;

use crate::domain::state::store::{Backend, ReadJob, StoreError, WriteJob};
pub use notices::{PgFeeds, PgRevocations};
use read::Tx;
pub use target::PgTarget;

/// The advisory lock every write transaction holds (any fixed number; "hearth" in ASCII).
const WRITE_LOCK: i64 = 0x6865_6172_7468;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_schema.sql"),
    include_str!("migrations/0002_job_leases.sql"),
    include_str!("migrations/0003_short_lived.sql"),
    include_str!("migrations/0004_account_changes.sql"),
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// The PostgreSQL backend.
pub struct Postgres {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    alive: Arc<AtomicUsize>,
    shown: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Postgres({})", self.shown)
    }
}

/// `user@host:port/db` of a URL, without its password.
pub fn describe(url: &str) -> String {
    let Ok(c) = postgres::Config::from_str(url) else {
        return "(an unreadable postgres URL)".into();
    };
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or_default(),
        c.get_dbname().unwrap_or_default()
    )
}

fn migrate(client: &mut Client, shown: &str) -> Result<(), StoreError> {
    let fail = read::backend;
    let mut tx = client.transaction().map_err(fail)?;
    // Nodes starting together migrate one at a time.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .map_err(fail)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS hearth_schema (version BIGINT NOT NULL)")
        .map_err(fail)?;
    let found: i64 = tx
        .query_opt("SELECT MAX(version) FROM hearth_schema", &[])
        .map_err(fail)?
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .unwrap_or(0);
    if found > LATEST {
        return Err(StoreError::TooNew {
            path: shown.into(),
            found,
            known: LATEST,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).map_err(fail)?;
        tx.execute(
            "INSERT INTO hearth_schema (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )
        .map_err(fail)?;
    }
    tx.commit().map_err(fail)
}

impl Postgres {
    /// Connects `connections` clients to `target`, applies migrations and starts the pool.
    /// Blocking: call before serving, or from a blocking context.
    pub fn open(target: &PgTarget, connections: usize) -> Result<Self, StoreError> {
        let shown = target.shown().to_owned();
        // The driver runs its own runtime: connect on a plain thread, outside any async one.
        let clients = std::thread::scope(|s| {
            s.spawn(|| {
                let mut first = target.connect()?;
                migrate(&mut first, &shown)?;
                let mut clients = vec![first];
                for _ in 1..connections.max(1) {
                    clients.push(target.connect()?);
                }
                Ok::<_, StoreError>(clients)
            })
            .join()
            .map_err(|_| StoreError::Backend("connecting to PostgreSQL panicked".into()))?
        })?;
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let alive = Arc::new(AtomicUsize::new(clients.len()));
        for (n, mut client) in clients.into_iter().enumerate() {
            let (rx, alive) = (rx.clone(), alive.clone());
            std::thread::Builder::new()
                .name(format!("hearth-postgres-{n}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => break,
                        };
                        match job {
                            Ok(job) => job(&mut client),
                            Err(_) => break,
                        }
                        if client.is_closed() {
                            break;
                        }
                    }
                    alive.fetch_sub(1, Ordering::Relaxed);
                })
                .map_err(|_| StoreError::Closed)?;
        }
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
            alive,
            shown,
        })
    }

    async fn run(
        &self,
        f: impl FnOnce(&mut Client) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |client| {
            let _ = reply.send(f(client));
        });
        let sender = self
            .jobs
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn failed(e: postgres::Error) -> StoreError {
    read::backend(e)
}

#[async_trait::async_trait]
impl Backend for Postgres {
    async fn write(&self, job: WriteJob) -> Result<(), StoreError> {
        self.run(move |client| {
            let mut tx = client.transaction().map_err(failed)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .map_err(failed)?;
            let commit =
                catch_unwind(AssertUnwindSafe(|| job(&mut Tx(&mut tx)))).map_err(|_| {
                    StoreError::Backend("a write job panicked; it was rolled back".into())
                })?;
            match commit {
                true => tx.commit().map_err(failed),
                false => tx.rollback().map_err(failed),
            }
        })
        .await
    }

    async fn read(&self, job: ReadJob) -> Result<(), StoreError> {
        self.run(move |client| {
            let mut tx = client
                .build_transaction()
                .read_only(true)
                .start()
                .map_err(failed)?;
            catch_unwind(AssertUnwindSafe(|| job(&mut Tx(&mut tx))))
                .map_err(|_| StoreError::Backend("a read job panicked".into()))?;
            tx.commit().map_err(failed)
        })
        .await
    }

    fn is_ready(&self) -> bool {
        self.alive.load(Ordering::Relaxed) > 0
            && self.jobs.lock().map(|j| j.is_some()).unwrap_or(false)
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        // PostgreSQL reuses the space of deleted rows itself (autovacuum); nothing to do.
        Ok(())
    }

    fn close(&self) {
        if let Ok(mut j) = self.jobs.lock() {
            j.take();
        }
    }
}
