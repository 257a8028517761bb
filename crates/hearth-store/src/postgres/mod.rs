//! The PostgreSQL backend (`[store] url = "postgres://…"`), for several stateless nodes on
//! one database. `tokio-postgres` runs on a small pool of dedicated threads, one connection
//! and one single-threaded runtime each, so no query ever runs on the node's async workers;
//! a statement whose answer can wait goes out with the next one ([`tx`]). Writes of every
//! node run concurrently, each holding only the rows it touches: a write job runs in a
//! SERIALIZABLE transaction, run again from scratch when it loses a serialization race
//! (SQLSTATE 40001) or a deadlock (40P01), so each check that guards a write stays inside
//! its write without one lock for the cluster; jobs of row-locking operations only
//! (short-lived state, a sign-in's final write) run in READ COMMITTED, queueing on their
//! row locks, and jobs of compare-and-set statements (budgets, the sign-in gate) outside
//! any transaction. Reads run beside them, each statement on its own snapshot. A connection that breaks is made again under a shared, capped, jittered
//! backoff; meanwhile calls answer [`StoreError::Unreachable`] (UNAVAILABLE) and the node
//! is not ready. The URL's password never appears in logs or errors.
mod accounts;
mod codes;
mod dispatch;
mod federation;
mod gates;
mod invites;
mod jobs;
mod notices;
mod passkeys;
mod rows;
mod sessions;
mod short_lived;
mod target;
mod tokens;
mod tx;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::{Client, IsolationLevel};
use tx::Conn;

use crate::domain::state::store::{Backend, ReadJob, StoreError, WriteJob};
pub use notices::{PgFeeds, PgNotices, PgRevocations};
pub use target::PgTarget;
use tx::Tx;

/// The advisory lock nodes migrating the schema hold (any fixed number; "hearth" in ASCII).
const MIGRATION_LOCK: i64 = 0x6865_6172_7468;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_schema.sql"),
    include_str!("migrations/0002_job_leases.sql"),
    include_str!("migrations/0003_short_lived.sql"),
    include_str!("migrations/0004_account_changes.sql"),
    include_str!("migrations/0005_sessions_by_activity.sql"),
    include_str!("migrations/0006_second_factors.sql"),
    include_str!("migrations/0007_session_amr.sql"),
    include_str!("migrations/0008_passkeys.sql"),
    include_str!("migrations/0009_revocation_notices.sql"),
    include_str!("migrations/0010_sign_in_indexes.sql"),
    include_str!("migrations/0011_session_counts.sql"),
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// A job for a pool thread: given the connection (or why there is none); says whether the
/// connection turned out unreachable.
type Job = Box<dyn FnOnce(Result<&Conn, StoreError>) -> Result<(), StoreError> + Send>;

/// The PostgreSQL backend.
pub struct Postgres {
    jobs: Arc<dispatch::Dispatch<Job>>,
    health: Arc<Health>,
    shown: String,
    trips: Arc<AtomicU64>,
    /// A pause between each read and what follows inside a write (tests only, see
    /// [`Postgres::widen_races`]).
    widen: Arc<AtomicU64>,
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
    let fail = tx::backend;
    let mut tx = client.transaction().map_err(fail)?;
    // Nodes starting together migrate one at a time (the only cluster-wide lock).
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
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

/// Whether the database can be reached, shared by the pool's connections: the first
/// connection that fails marks it down (one log line), the first that works again marks it
/// up (one log line). While it is down, a connection is tried again only after a capped,
/// jittered backoff, and calls meanwhile answer [`StoreError::Unreachable`] at once.
struct Health {
    up: AtomicBool,
    shown: String,
    state: Mutex<Outage>,
}

#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    next_try: Option<Instant>,
    backoff: Duration,
    last_error: String,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Health {
    fn outage(&self) -> std::sync::MutexGuard<'_, Outage> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a connection may be tried now (always while up; after the backoff while down).
    fn may_try(&self) -> bool {
        self.up.load(Ordering::Relaxed)
            || self.outage().next_try.is_none_or(|t| Instant::now() >= t)
    }

    /// A connection attempt (or a call on a connection) failed: the next try waits longer.
    fn failed(&self, error: &str) {
        {
            let mut o = self.outage();
            o.backoff = (o.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
            let jitter = o.backoff.mul_f64(rand::random::<f64>() * 0.5);
            o.next_try = Some(Instant::now() + o.backoff / 2 + jitter);
        }
        self.down(error);
    }

    /// The database cannot be reached (`error` as the driver said it).
    fn down(&self, error: &str) {
        let mut o = self.outage();
        o.last_error = error.chars().take(300).collect();
        if self.up.swap(false, Ordering::Relaxed) {
            o.since = Some(Instant::now());
            tracing::error!(database = %self.shown, error, "PostgreSQL cannot be reached; calls that need it answer UNAVAILABLE until it can (retrying with backoff)");
        }
    }

    fn worked(&self) {
        if self.up.load(Ordering::Relaxed) {
            return;
        }
        let mut o = self.outage();
        if !self.up.swap(true, Ordering::Relaxed) {
            let down = o.since.map(|s| s.elapsed()).unwrap_or_default();
            tracing::warn!(database = %self.shown, down_secs = down.as_secs_f64(), "PostgreSQL can be reached again");
        }
        *o = Outage::default();
    }

    fn unreachable(&self) -> StoreError {
        StoreError::Unreachable(self.outage().last_error.clone())
    }
}

/// One pooled connection: made again after it breaks, under the shared [`Health`].
struct Pooled {
    target: PgTarget,
    trips: Arc<AtomicU64>,
    client: Option<Conn>,
    health: Arc<Health>,
}

impl Pooled {
    /// The connection, reconnecting if it broke and the backoff allows.
    fn get(&mut self) -> Result<&Conn, StoreError> {
        if self.client.as_ref().is_some_and(Conn::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            // Statements prepared on the old connection died with it.
            tx::forget_prepared();
            if !self.health.may_try() {
                return Err(self.health.unreachable());
            }
            match pool_connection(&self.target, &self.trips) {
                Ok(c) => self.client = Some(c),
                Err(e) => {
                    self.health.failed(&raw(e));
                    return Err(self.health.unreachable());
                }
            }
        }
        self.client.as_ref().ok_or(StoreError::Closed)
    }

    /// Notes what a job's outcome says about the connection it ran on (none: it did not).
    fn after(&mut self, outcome: &Result<(), StoreError>) {
        if self.client.is_none() {
            return;
        }
        match outcome {
            Err(StoreError::Unreachable(e)) => {
                self.health.failed(e);
                self.client = None;
            }
            _ if self.client.as_ref().is_some_and(Conn::is_closed) => {
                self.health.failed("the connection was closed");
                self.client = None;
            }
            _ => self.health.worked(),
        }
    }
}

thread_local! {
    /// Set by the error mapping when a statement lost a serialization race or a deadlock:
    /// the transaction is run again. A pool thread runs one job at a time, so the flag
    /// belongs to the job it runs.
    static LOST_RACE: Cell<bool> = const { Cell::new(false) };
    /// The pause after each read inside a write, in µs (0: none).
    static WIDEN_MICROS: Cell<u64> = const { Cell::new(0) };
}

/// Notes a lost race (see [`LOST_RACE`]).
pub(super) fn note_lost_race() {
    LOST_RACE.with(|l| l.set(true));
}

/// Pauses after a read inside a write when races are widened (tests only).
pub(super) fn widen_race() {
    let micros = WIDEN_MICROS.with(Cell::get);
    if micros > 0 {
        std::thread::sleep(Duration::from_micros(micros));
    }
}

/// What every pool connection starts with: commits do not wait for the disk unless their
/// transaction says so. The row-locked jobs (budgets that queue, a sign-in slot given
/// back) and the compare-and-set ones ([`Backend::write_each`], which run outside a
/// transaction, so no `SET LOCAL` can reach them) keep it; every other write sets
/// `synchronous_commit` back to the server's own setting for its transaction
/// (docs/SECURITY.md).
const NOT_DURABLE: &str = "SET synchronous_commit TO off";

/// A new connection of the pool.
fn pool_connection(target: &PgTarget, trips: &Arc<AtomicU64>) -> Result<Conn, StoreError> {
    let conn = target.connect_pool(trips)?;
    conn.batch(NOT_DURABLE).map_err(failed)?;
    Ok(conn)
}

/// Runs of a write that lost a serialization race before it gives up (UNAVAILABLE).
const WRITE_ATTEMPTS: u32 = 40;

/// The short, jittered pause before running again a write that lost its `attempt`-th race:
/// doubling from 0.2 ms up to 51 ms, then jittered by ±50%, so the winners finish first.
fn pause_after_lost_race(attempt: u32) {
    let pause = Duration::from_micros(200 << attempt.min(8));
    std::thread::sleep(pause.mul_f64(0.5 + rand::random::<f64>()));
}

impl Postgres {
    /// Connects `connections` clients to `target`, applies migrations and starts the pool.
    /// Blocking: call before serving, or from a blocking context.
    pub fn open(target: &PgTarget, connections: usize) -> Result<Self, StoreError> {
        let shown = target.shown().to_owned();
        let trips = Arc::new(AtomicU64::new(0));
        // The driver runs its own runtime: connect on a plain thread, outside any async one.
        let clients = std::thread::scope(|s| {
            s.spawn(|| {
                migrate(&mut target.connect()?, &shown)?;
                (0..connections.max(1))
                    .map(|_| pool_connection(target, &trips))
                    .collect::<Result<Vec<_>, _>>()
            })
            .join()
            .map_err(|_| StoreError::Backend("connecting to PostgreSQL panicked".into()))?
        })?;
        let health = Arc::new(Health {
            up: AtomicBool::new(true),
            shown: shown.clone(),
            state: Mutex::default(),
        });
        let widen = Arc::new(AtomicU64::new(0));
        let jobs = Arc::new(dispatch::Dispatch::<Job>::new());
        for (n, client) in clients.into_iter().enumerate() {
            let jobs = jobs.clone();
            let mut pooled = Pooled {
                target: target.clone(),
                trips: trips.clone(),
                client: Some(client),
                health: health.clone(),
            };
            std::thread::Builder::new()
                .name(format!("hearth-postgres-{n}"))
                .spawn(move || {
                    while let Some(job) = jobs.next() {
                        let outcome = match pooled.get() {
                            Ok(client) => job(Ok(client)),
                            Err(e) => job(Err(e)),
                        };
                        pooled.after(&outcome);
                    }
                })
                .map_err(|_| StoreError::Closed)?;
        }
        Self::probe(target, &health);
        Ok(Self {
            jobs,
            health,
            shown,
            trips,
            widen,
        })
    }

    /// Asks the database every second on a connection of its own, so an outage shows in
    /// `/readyz` even while no call comes, and its end lets the pool reconnect at once.
    /// Stops when the backend is dropped.
    fn probe(target: &PgTarget, health: &Arc<Health>) {
        let (weak, target) = (Arc::downgrade(health), target.clone());
        let _ = std::thread::Builder::new()
            .name("hearth-postgres-probe".into())
            .spawn(move || {
                let mut client: Option<Client> = None;
                while let Some(health) = weak.upgrade() {
                    if client.as_ref().is_some_and(Client::is_closed) {
                        client = None;
                    }
                    let asked = match client.as_mut() {
                        Some(c) => c.simple_query("SELECT 1").map(|_| ()).map_err(failed),
                        None => target.connect().map(|c| client = Some(c)),
                    };
                    match asked {
                        Ok(()) => health.worked(),
                        Err(e) => {
                            client = None;
                            health.down(&raw(e));
                        }
                    }
                    drop(health);
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
    }

    /// Tests only: pauses `pause` after every read inside a write transaction, so an
    /// operation that reads and then writes without holding what it read loses its race
    /// for certain (the conformance suite's widened mode).
    pub fn widen_races(self, pause: Duration) -> Self {
        self.widen
            .store(pause.as_micros() as u64, Ordering::Relaxed);
        self
    }

    async fn run(
        &self,
        f: impl FnOnce(&Conn) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |client| {
            let outcome = client.and_then(f);
            // The pool thread learns from the outcome whether the connection still works.
            let seen = match &outcome {
                Err(StoreError::Unreachable(e)) => Err(StoreError::Unreachable(e.clone())),
                _ => Ok(()),
            };
            let _ = reply.send(outcome);
            seen
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `job` in a write transaction of `isolation`, again (from scratch) while it
    /// loses serialization races or deadlocks, with a short jittered pause between runs.
    fn write_with(
        &self,
        isolation: IsolationLevel,
        durable: bool,
        mut job: WriteJob,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + '_ {
        let widen = self.widen.load(Ordering::Relaxed);
        self.run(move |conn| {
            WIDEN_MICROS.with(|w| w.set(widen));
            let done = Self::attempts(conn, isolation, durable, &mut job);
            WIDEN_MICROS.with(|w| w.set(0));
            done
        })
    }

    fn attempts(
        conn: &Conn,
        isolation: IsolationLevel,
        durable: bool,
        job: &mut WriteJob,
    ) -> Result<(), StoreError> {
        // The transaction opens with its settings, sent with the job's first statement. Row-locked jobs keep
        // budgets and the sign-in gate: a crash of the database may forget their last
        // fraction of a second (budgets refill, an in-flight count goes stale, the last
        // failures of a sign-in are not counted), which is worth not waiting for the disk
        // while holding a hot row (docs/SECURITY.md). Every other write waits for its commit.
        // `DEFAULT` is the server's (or the role's, or the URL's) setting: what the
        // connection would have without its own `SET` ([`NOT_DURABLE`]).
        let begin = match (isolation, durable) {
            (IsolationLevel::Serializable, _) => {
                "START TRANSACTION ISOLATION LEVEL SERIALIZABLE; SET LOCAL synchronous_commit TO DEFAULT"
            }
            (_, true) => {
                "START TRANSACTION ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit TO DEFAULT"
            }
            (_, false) => "START TRANSACTION ISOLATION LEVEL READ COMMITTED",
        };
        for attempt in 1..=WRITE_ATTEMPTS {
            LOST_RACE.with(|l| l.set(false));
            let mut tx = Tx::begin(conn, begin);
            let commit = catch_unwind(AssertUnwindSafe(|| job(&mut tx)));
            let done = match commit {
                Ok(true) if !LOST_RACE.with(Cell::get) => tx.commit().map_err(failed),
                _ => end(tx),
            };
            if commit.is_err() {
                done?;
                return Err(StoreError::Backend(
                    "a write job panicked; it was rolled back".into(),
                ));
            }
            if !LOST_RACE.with(Cell::get) {
                return done;
            }
            pause_after_lost_race(attempt);
        }
        // Contention, not a lost connection: the pool keeps its connection and readiness.
        Err(StoreError::Contended)
    }
}

fn failed(e: postgres::Error) -> StoreError {
    tx::backend(e)
}

/// Rolls back the open transaction. A connection that cannot is given up (the pool makes
/// a new one): left inside a transaction, it would fold the next job into this one.
fn end(tx: Tx<'_>) -> Result<(), StoreError> {
    tx.rollback()
        .map_err(|e| StoreError::Unreachable(format!("could not roll back: {}", raw(failed(e)))))
}

/// What went wrong, without the wrapping of an earlier report.
fn raw(e: StoreError) -> String {
    match e {
        StoreError::Unreachable(m) | StoreError::Backend(m) => m,
        other => other.to_string(),
    }
}

#[async_trait::async_trait]
impl Backend for Postgres {
    async fn write(&self, job: WriteJob) -> Result<(), StoreError> {
        self.write_with(IsolationLevel::Serializable, true, job)
            .await
    }

    async fn write_locked(&self, job: WriteJob) -> Result<(), StoreError> {
        // Each operation of such a job locks its rows: read committed suffices, and hot
        // rows queue on their locks instead of failing serialization.
        self.write_with(IsolationLevel::ReadCommitted, false, job)
            .await
    }

    async fn write_rows(&self, job: WriteJob) -> Result<(), StoreError> {
        self.write_with(IsolationLevel::ReadCommitted, true, job)
            .await
    }

    async fn write_each(&self, mut job: WriteJob) -> Result<(), StoreError> {
        let widen = self.widen.load(Ordering::Relaxed);
        self.run(move |conn| {
            WIDEN_MICROS.with(|w| w.set(widen));
            let mut done = Ok(());
            // No BEGIN and no COMMIT: two round trips fewer. A statement that lost a
            // deadlock was undone whole, and the job is run again.
            for attempt in 1..=WRITE_ATTEMPTS {
                LOST_RACE.with(|l| l.set(false));
                done = catch_unwind(AssertUnwindSafe(|| {
                    job(&mut Tx::each(conn));
                }))
                .map_err(|_| StoreError::Backend("a write job panicked".into()));
                if done.is_err() || !LOST_RACE.with(Cell::get) {
                    break;
                }
                pause_after_lost_race(attempt);
            }
            WIDEN_MICROS.with(|w| w.set(0));
            done
        })
        .await
    }

    async fn read(&self, job: ReadJob) -> Result<(), StoreError> {
        // No transaction: under READ COMMITTED (PostgreSQL's default) a transaction gives
        // each statement its own snapshot anyway, so BEGIN and COMMIT would only cost two
        // round trips. A read job is handed only the seam's reads (`ReadTx`).
        self.run(move |conn| {
            catch_unwind(AssertUnwindSafe(|| job(&mut Tx::each(conn))))
                .map_err(|_| StoreError::Backend("a read job panicked".into()))
        })
        .await
    }

    fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    fn is_ready(&self) -> bool {
        self.health.up.load(Ordering::Relaxed) && self.jobs.is_open()
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        // PostgreSQL reuses the space of deleted rows itself (autovacuum); nothing to do.
        Ok(())
    }

    fn close(&self) {
        self.jobs.close();
    }
}
