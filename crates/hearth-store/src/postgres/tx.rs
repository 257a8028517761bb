//! [`Tx`]: one PostgreSQL transaction seen through the store seam, and the query helpers
//! every area uses. The areas' operations are in `accounts.rs`, `sessions.rs`, `codes.rs`,
//! `tokens.rs`, `invites.rs`, `federation.rs` and `jobs.rs`; the larger atomic ones in
//! `gates.rs`.
use postgres::types::ToSql;
use std::cell::RefCell;
use std::collections::HashMap;

use postgres::{Client, Row, Statement};

use crate::domain::state::store::StoreError;

pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A connection seen through the seam: inside a transaction the pool opened for a write,
/// or on its own for a read.
pub(super) struct Tx<'a>(pub &'a mut Client);

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

impl Tx<'_> {
    fn prepared(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = PREPARED.with(|p| p.borrow().get(sql).cloned()) {
            return Ok(s);
        }
        let s = self.0.prepare(sql)?;
        PREPARED.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < MAX_PREPARED {
                p.insert(sql.to_owned(), s.clone());
            }
        });
        Ok(s)
    }

    pub(super) fn rows(&mut self, sql: &str, p: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let rows = self
            .prepared(sql)
            .and_then(|s| self.0.query(&s, p))
            .map_err(backend);
        super::widen_race();
        rows
    }

    pub(super) fn row(&mut self, sql: &str, p: Params<'_>) -> Result<Option<Row>, StoreError> {
        let row = self
            .prepared(sql)
            .and_then(|s| self.0.query_opt(&s, p))
            .map_err(backend);
        super::widen_race();
        row
    }

    pub(super) fn exec(&mut self, sql: &str, p: Params<'_>) -> Result<u64, StoreError> {
        self.prepared(sql)
            .and_then(|s| self.0.execute(&s, p))
            .map_err(backend)
    }

    pub(super) fn exec_unique(
        &mut self,
        sql: &str,
        p: Params<'_>,
        what: &'static str,
    ) -> Result<u64, StoreError> {
        self.prepared(sql)
            .and_then(|s| self.0.execute(&s, p))
            .map_err(|e| fail(e, what))
    }

    pub(super) fn row_unique(
        &mut self,
        sql: &str,
        p: Params<'_>,
        what: &'static str,
    ) -> Result<Option<Row>, StoreError> {
        let row = self
            .prepared(sql)
            .and_then(|s| self.0.query_opt(&s, p))
            .map_err(|e| fail(e, what));
        super::widen_race();
        row
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
