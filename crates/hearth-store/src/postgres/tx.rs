//! [`Tx`]: one PostgreSQL transaction seen through the store seam, and the query helpers
//! every area uses. The areas' operations are in `accounts.rs`, `sessions.rs`, `codes.rs`,
//! `tokens.rs`, `invites.rs`, `federation.rs` and `jobs.rs`; the larger atomic ones in
//! `gates.rs`.
//!
//! A pool thread drives `tokio-postgres` on a runtime of its own ([`Conn`]) rather than
//! the synchronous `postgres` client, which keeps its async client private: with it, a
//! statement whose answer no one waits for (a transaction's BEGIN, a write whose count is
//! not used) goes out with the next one, and the server takes both in one round trip.
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::{join, join_all};
use postgres::types::{Format, IsNull, ToSql, Type};
use postgres::{Row, Statement};

use crate::domain::state::store::StoreError;

pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One connection of the pool, with the runtime that drives it. Only its pool thread uses
/// it, and nothing runs on the runtime between that thread's statements.
pub(super) struct Conn {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    /// The pool's count of round trips ([`Backend::round_trips`]).
    ///
    /// [`Backend::round_trips`]: crate::domain::state::store::Backend::round_trips
    trips: Arc<AtomicU64>,
}

impl Conn {
    pub(super) fn new(
        rt: tokio::runtime::Runtime,
        client: tokio_postgres::Client,
        connection: impl Future<Output = Result<(), postgres::Error>> + Send + 'static,
        trips: Arc<AtomicU64>,
    ) -> Self {
        rt.spawn(async move {
            // Its end shows as `is_closed`; the statement that meets it reports the error.
            let _ = connection.await;
        });
        Self { rt, client, trips }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Runs `sql` (one or more statements without parameters) and waits for it.
    pub(super) fn batch(&self, sql: &str) -> Result<(), postgres::Error> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.rt.block_on(self.client.batch_execute(sql))
    }
}

/// A statement sent whose answer is not waited for yet: its rows-affected count, or 0.
type Sent<'a> = Pin<Box<dyn Future<Output = Result<u64, postgres::Error>> + Send + 'a>>;

/// A connection seen through the seam: inside a transaction the pool opened for a write,
/// or on its own for a read or a compare-and-set.
pub(super) struct Tx<'a> {
    conn: &'a Conn,
    /// Statements sent, in order, whose answers come before the next one's.
    sent: Vec<Sent<'a>>,
    /// Inside a transaction, where a write's error may wait for the next answer: the
    /// statement after it fails too, and COMMIT rolls back. Outside one, each statement
    /// commits alone, so its error must be seen before the job goes on.
    in_transaction: bool,
}

/// A driver error as the seam's error; a unique violation names `what` was taken.
pub(super) fn fail(e: postgres::Error, what: &'static str) -> StoreError {
    match e.code() {
        Some(c) if *c == postgres::error::SqlState::UNIQUE_VIOLATION => StoreError::Conflict(what),
        _ => backend(e),
    }
}

pub(super) fn backend(e: postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    // The driver's Display says only "db error"; the server's message says what failed.
    match e.as_db_error() {
        Some(db)
            if *db.code() == SqlState::T_R_SERIALIZATION_FAILURE
                || *db.code() == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            super::note_lost_race();
            StoreError::Backend(format!("{} ({})", db.message(), db.code().code()))
        }
        // Class 08 (connection exception) and 57P01-57P03 (the server shuts down or starts).
        Some(db)
            if db.code().code().starts_with("08")
                || matches!(db.code().code(), "57P01" | "57P02" | "57P03") =>
        {
            StoreError::Unreachable(db.message().to_owned())
        }
        Some(db) => StoreError::Backend(format!("{} ({})", db.message(), db.code().code())),
        // No answer from the server at all: the connection is gone.
        None => StoreError::Unreachable(e.to_string()),
    }
}

thread_local! {
    /// The statements prepared on this pool thread's connection, by their SQL: each is
    /// parsed and planned once per connection, and a query is one round trip, not two.
    /// Emptied whenever the thread's connection is made again ([`forget_prepared`]).
    static PREPARED: RefCell<HashMap<String, Statement>> = RefCell::new(HashMap::new());
}

/// Statements one connection keeps at most (every operation's SQL fits many times over).
const MAX_PREPARED: usize = 512;

/// Forgets this thread's prepared statements (its connection is gone).
pub(super) fn forget_prepared() {
    PREPARED.with(|p| p.borrow_mut().clear());
}

/// A parameter already encoded, so a statement sent now need not borrow its caller's
/// values until its answer comes.
#[derive(Debug)]
struct Encoded(Option<Bytes>, Format);

impl ToSql for Encoded {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match &self.0 {
            Some(b) => {
                out.extend_from_slice(b);
                IsNull::No
            }
            None => IsNull::Yes,
        })
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    /// The value was checked against the statement's type when it was encoded.
    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.to_sql(ty, out)
    }

    fn encode_format(&self, _: &Type) -> Format {
        self.1
    }
}

impl<'a> Tx<'a> {
    /// Statements on `conn`, each committing alone.
    pub(super) fn each(conn: &'a Conn) -> Self {
        Self {
            conn,
            sent: Vec::new(),
            in_transaction: false,
        }
    }

    /// A transaction opened by `begin`, which goes out with the job's first statement.
    pub(super) fn begin(conn: &'a Conn, begin: &'static str) -> Self {
        let mut tx = Self {
            in_transaction: true,
            ..Self::each(conn)
        };
        let client = &conn.client;
        tx.send(Box::pin(async move {
            client.batch_execute(begin).await.map(|()| 0)
        }));
        tx
    }

    /// Commits, sent with what is still unanswered: the first error of them all is the
    /// outcome (COMMIT after an error rolls back).
    pub(super) fn commit(mut self) -> Result<(), postgres::Error> {
        let client = &self.conn.client;
        self.wait(client.batch_execute("COMMIT"))
    }

    /// Rolls back, sent with what is still unanswered, whose errors no longer matter.
    pub(super) fn rollback(mut self) -> Result<(), postgres::Error> {
        let client = &self.conn.client;
        self.settle(client.batch_execute("ROLLBACK")).1
    }

    /// Hands `f` its first poll, which sends its statement, and keeps it for its answer.
    fn send(&mut self, mut f: Sent<'a>) {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        if let Poll::Ready(done) = f.as_mut().poll(&mut cx) {
            f = Box::pin(std::future::ready(done));
        }
        self.sent.push(f);
    }

    /// Waits for `f` and for everything sent before it, in one round trip; an earlier
    /// statement's error comes first (it is why a later one failed).
    fn wait<T>(
        &mut self,
        f: impl Future<Output = Result<T, postgres::Error>>,
    ) -> Result<T, postgres::Error> {
        let (before, this) = self.settle(f);
        before?;
        this
    }

    /// Sends `f` after everything sent before it and waits for all of their answers in
    /// one round trip: the first error of those sent before, and `f`'s own outcome.
    fn settle<T>(
        &mut self,
        f: impl Future<Output = Result<T, postgres::Error>>,
    ) -> (Result<(), postgres::Error>, Result<T, postgres::Error>) {
        let sent = std::mem::take(&mut self.sent);
        self.conn.trips.fetch_add(1, Ordering::Relaxed);
        self.conn.rt.block_on(async move {
            let (before, this) = join(join_all(sent), f).await;
            (before.into_iter().try_for_each(|r| r.map(drop)), this)
        })
    }

    fn prepared(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = PREPARED.with(|p| p.borrow().get(sql).cloned()) {
            return Ok(s);
        }
        let client = &self.conn.client;
        let s = self.wait(client.prepare(sql))?;
        PREPARED.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < MAX_PREPARED {
                p.insert(sql.to_owned(), s.clone());
            }
        });
        Ok(s)
    }

    fn query(&mut self, sql: &str, p: Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let s = self.prepared(sql)?;
        let client = &self.conn.client;
        self.wait(client.query(&s, p))
    }

    fn query_opt(&mut self, sql: &str, p: Params<'_>) -> Result<Option<Row>, postgres::Error> {
        let s = self.prepared(sql)?;
        let client = &self.conn.client;
        self.wait(client.query_opt(&s, p))
    }

    fn execute(&mut self, sql: &str, p: Params<'_>) -> Result<u64, postgres::Error> {
        let s = self.prepared(sql)?;
        let client = &self.conn.client;
        self.wait(client.execute(&s, p))
    }

    pub(super) fn rows(&mut self, sql: &str, p: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let rows = self.query(sql, p).map_err(backend);
        super::widen_race();
        rows
    }

    pub(super) fn row(&mut self, sql: &str, p: Params<'_>) -> Result<Option<Row>, StoreError> {
        let row = self.query_opt(sql, p).map_err(backend);
        super::widen_race();
        row
    }

    pub(super) fn exec(&mut self, sql: &str, p: Params<'_>) -> Result<u64, StoreError> {
        self.execute(sql, p).map_err(backend)
    }

    /// Runs a write whose count no one needs. Inside a transaction it goes out with the
    /// next statement (or the COMMIT), and its error, if any, is that statement's.
    pub(super) fn exec_later(&mut self, sql: &str, p: Params<'_>) -> Result<(), StoreError> {
        if !self.in_transaction {
            return self.exec(sql, p).map(drop);
        }
        let (s, encoded) = self.encoded(sql, p)?;
        let client = &self.conn.client;
        self.send(Box::pin(
            async move { client.execute_raw(&s, encoded).await },
        ));
        Ok(())
    }

    /// Runs a statement whose rows no one needs before the commit: inside a transaction it
    /// goes out with the next statement (or the COMMIT), and `answer` gets its rows when
    /// they come; its error, if any, is that statement's. Outside one it runs now.
    pub(super) fn rows_later(
        &mut self,
        sql: &str,
        p: Params<'_>,
        answer: impl FnOnce(Vec<Row>) + Send + 'a,
    ) -> Result<(), StoreError> {
        if !self.in_transaction {
            answer(self.rows(sql, p)?);
            return Ok(());
        }
        let (s, encoded) = self.encoded(sql, p)?;
        let client = &self.conn.client;
        self.send(Box::pin(async move {
            use futures_util::TryStreamExt;
            let rows: Vec<Row> = client.query_raw(&s, encoded).await?.try_collect().await?;
            let n = rows.len() as u64;
            answer(rows);
            Ok(n)
        }));
        Ok(())
    }

    /// `sql` prepared, with `p` encoded for it now, so a statement sent now need not
    /// borrow its caller's values until its answer comes.
    fn encoded(
        &mut self,
        sql: &str,
        p: Params<'_>,
    ) -> Result<(Statement, Vec<Encoded>), StoreError> {
        let s = self.prepared(sql).map_err(backend)?;
        if p.len() != s.params().len() {
            return Err(StoreError::Backend(format!(
                "a statement takes {} parameters, not {}",
                s.params().len(),
                p.len()
            )));
        }
        let encoded = s
            .params()
            .iter()
            .zip(p)
            .map(|(ty, v)| {
                let mut out = BytesMut::new();
                let value = match v.to_sql_checked(ty, &mut out)? {
                    IsNull::Yes => None,
                    IsNull::No => Some(out.freeze()),
                };
                Ok(Encoded(value, v.encode_format(ty)))
            })
            .collect::<Result<Vec<_>, Box<dyn std::error::Error + Sync + Send>>>()
            .map_err(|e| StoreError::Backend(format!("a parameter of a statement: {e}")))?;
        Ok((s, encoded))
    }

    pub(super) fn exec_unique(
        &mut self,
        sql: &str,
        p: Params<'_>,
        what: &'static str,
    ) -> Result<u64, StoreError> {
        self.execute(sql, p).map_err(|e| fail(e, what))
    }

    pub(super) fn ids(&mut self, sql: &str, p: Params<'_>) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .rows(sql, p)?
            .iter()
            .map(|r| r.get::<_, i64>(0) as u64)
            .collect())
    }

    pub(super) fn returning_ids(
        &mut self,
        sql: &str,
        p: Params<'_>,
    ) -> Result<Vec<u64>, StoreError> {
        self.ids(sql, p)
    }
}

pub(super) fn i(v: u64) -> i64 {
    v as i64
}

/// Text for mail whose body was dropped (as SQLite's outbox writes it).
pub(super) const REDACTED: &str = "(redacted: delivered or expired)";

/// The SQL for "this invite can still be used at $2".
pub(super) const LIVE: &str =
    "revoked_at IS NULL AND expires_at > $2 AND (max_uses IS NULL OR uses < max_uses)";
