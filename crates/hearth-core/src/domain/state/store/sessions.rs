//! The store seam's sessions area: sessions: made, listed, touched, rotated and ended.
use std::sync::{Arc, Mutex};

use super::StoreError;
use crate::domain::model::{Session, SessionCredential};

/// Sessions a write ended, and whether its commit itself told the other nodes sharing the
/// store (PostgreSQL's NOTIFY, sent with it); otherwise the caller announces them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ended {
    pub ids: Vec<u64>,
    pub nodes_told: bool,
}

/// The answer of a statement a write sent without waiting for it: there by the time the
/// write has committed (or at once, where the backend answers each statement as it runs).
#[derive(Debug)]
pub struct Later<T>(Arc<Mutex<Option<T>>>);

impl<T> Clone for Later<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Later<T> {
    /// An answer yet to come.
    pub fn pending() -> Self {
        Self(Arc::new(Mutex::new(None)))
    }

    /// An answer already here.
    pub fn ready(v: T) -> Self {
        let later = Self::pending();
        later.fill(v);
        later
    }

    /// Gives the answer (the backend, when it comes).
    pub fn fill(&self, v: T) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    }

    /// The answer, once; `None` before it came.
    pub fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Reads of the sessions area.
pub trait SessionsRead {
    /// What the credential check needs of the session whose token hashes to `hash`.
    fn session_credential(
        &mut self,
        hash: &[u8; 32],
    ) -> Result<Option<SessionCredential>, StoreError>;
    /// Up to `limit` live full sessions (every scope, not made from a personal access
    /// token) with ids above `after_id`, in id order, with their token hashes: a page of
    /// what the session index loads at start.
    fn full_sessions(
        &mut self,
        after_id: u64,
        limit: u32,
        now: u64,
    ) -> Result<Vec<([u8; 32], SessionCredential)>, StoreError>;
    /// A session by id.
    fn session(&mut self, id: u64) -> Result<Option<Session>, StoreError>;
    /// How many sessions of `user_id`, and of personal access token `token_id`, are live
    /// at `now` (the session caps count them inside the write that inserts one).
    fn live_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
    ) -> Result<(u32, u32), StoreError>;
    /// A user's sessions, newest first.
    fn sessions_of(&mut self, user_id: u64) -> Result<Vec<Session>, StoreError>;
}

/// Writes of the sessions area, inside the caller's one transaction.
pub trait SessionsWrite: SessionsRead {
    fn insert_session(&mut self, s: &Session) -> Result<(), StoreError>;
    /// Inserts `s`, whose user's row this write holds locked (the caller checked on it
    /// what the session needs, e.g. that the password is still the one verified), and ends
    /// the user's live sessions past the `max_live` most recently active, `s` counted and
    /// never ended: the account's cap, [`crate::domain::sessions::MAX_PER_USER`]. `s` has
    /// no personal access token, so no token's cap applies. The ended sessions are in the
    /// answer once the write commits: where the backend can, the statement goes out with
    /// the write's next statement or its commit, as one round trip, and where other nodes
    /// share the store, the commit tells them ([`Ended::nodes_told`]).
    fn insert_session_capped(
        &mut self,
        s: &Session,
        max_live: u32,
    ) -> Result<Later<Ended>, StoreError>;
    /// Ends the `n` least recently active live sessions of `user_id` (of personal access
    /// token `token_id` only, when given); returns their ids.
    fn end_least_active_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
        n: u32,
    ) -> Result<Vec<u64>, StoreError>;
    /// Deletes the listed sessions of `user_id`; returns the ids that were deleted.
    fn delete_sessions_of(&mut self, user_id: u64, ids: &[u64]) -> Result<Vec<u64>, StoreError>;
    /// Deletes every session of `user_id` except `keep`; returns the deleted ids.
    fn delete_all_sessions_of(
        &mut self,
        user_id: u64,
        keep: Option<u64>,
    ) -> Result<Vec<u64>, StoreError>;
    /// Deletes one session by id; returns whether it existed.
    fn delete_session(&mut self, id: u64) -> Result<bool, StoreError>;
    /// Records activity at `now` (never moves `last_active` back: stamps arrive in batches).
    fn touch_session(&mut self, id: u64, now: u64) -> Result<(), StoreError>;
    /// Atomic compare-and-swap: gives session `id` the token hash `new` only if its hash is
    /// still `presented`; returns whether it did.
    fn swap_session_token(
        &mut self,
        id: u64,
        presented: &[u8; 32],
        new: &[u8; 32],
        now: u64,
    ) -> Result<bool, StoreError>;
}
