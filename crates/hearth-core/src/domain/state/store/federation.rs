//! The store seam's federation area: peers, peer tokens, challenge nonces, the node key's
//! rotation history, and revocation across nodes (DESIGN.md §4.7): the grants a home node
//! made, its outbox of notices, and the foreign sessions a receiving node bound to their
//! home sessions.
use super::StoreError;
use crate::domain::model::{KeyRotation, Peer, PendingNotice};

/// Reads of the federation area.
pub trait FederationRead {
    /// One peer by server_id.
    fn peer(&mut self, server_id: &str) -> Result<Option<Peer>, StoreError>;
    /// Every peer, by name.
    fn peers(&mut self) -> Result<Vec<Peer>, StoreError>;
    /// The (server_id, expiry) of a peer token.
    fn peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError>;
    /// This node's key rotations, oldest first.
    fn key_rotations(&mut self) -> Result<Vec<KeyRotation>, StoreError>;
    /// Up to `limit` notices of the outbox due at `now`, oldest first.
    fn due_notices(&mut self, now: u64, limit: u32) -> Result<Vec<PendingNotice>, StoreError>;
    /// How many notices wait in the outbox.
    fn waiting_notices(&mut self) -> Result<u64, StoreError>;
}

/// Writes of the federation area, inside the caller's one transaction.
pub trait FederationWrite: FederationRead {
    /// Inserts or replaces a peer row.
    fn put_peer(&mut self, p: &Peer) -> Result<(), StoreError>;
    /// Stores a peer token hash for `server_id`.
    fn insert_peer_token(
        &mut self,
        hash: &[u8; 32],
        server_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// Atomic delete-returning: removes the peer token and returns its (server_id, expiry),
    /// so of many callers presenting one token exactly one gets it.
    fn take_peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError>;
    /// Atomic: records a federation nonce; `Conflict` when it was used before. Also forgets
    /// nonces whose tokens expired.
    fn use_nonce(
        &mut self,
        origin: &str,
        nonce: &[u8],
        keep_until: u64,
        now: u64,
    ) -> Result<(), StoreError>;
    /// Appends a key rotation record.
    fn insert_key_rotation(&mut self, r: &KeyRotation) -> Result<(), StoreError>;
    /// Atomic: records that a federation token for `peer` was signed from `home_session` (a
    /// session, or with `token` a personal access token) of `user_id`, only while that
    /// credential exists (its row is locked until the transaction ends, so an ending that
    /// races this write either sees the grant or makes this return false). When the
    /// credential's row is deleted, by any path, the backend's trigger moves its grants into
    /// the outbox in that same write.
    fn grant_federation(
        &mut self,
        home_session: u64,
        token: bool,
        peer: &str,
        user_id: u64,
    ) -> Result<bool, StoreError>;
    /// What the triggers do when a credential's row is deleted, for credentials that stop
    /// without being deleted (a personal access token expired, regenerated, or held by a
    /// disabled account): their grants become notices.
    fn end_grants(&mut self, home_sessions: &[u64]) -> Result<(), StoreError>;
    /// Removes delivered (or abandoned) notices.
    fn delete_notices(&mut self, ids: &[u64]) -> Result<(), StoreError>;
    /// Counts a failed delivery of these notices and sets when to try next.
    fn retry_notices(&mut self, ids: &[u64], next_at: u64) -> Result<(), StoreError>;
    /// Makes every notice for `peer` due now (it linked again).
    fn notices_due_now(&mut self, peer: &str) -> Result<(), StoreError>;
    /// Atomic with [`FederationWrite::end_home_session`]: binds foreign session `session_id`
    /// to the home session it came from, unless `origin` said that home session ended
    /// (then false, and nothing is bound).
    fn bind_foreign_session(
        &mut self,
        session_id: u64,
        origin: &str,
        home_session: u64,
    ) -> Result<bool, StoreError>;
    /// Atomic: records that `origin`'s `home_session` of its user `remote_user` ended (kept
    /// until `keep_until`; older records are forgotten) and deletes the foreign sessions
    /// bound to it. `None` when it was recorded before (a retry or a replay), else the
    /// deleted session ids.
    fn end_home_session(
        &mut self,
        origin: &str,
        remote_user: u64,
        home_session: u64,
        keep_until: u64,
        now: u64,
    ) -> Result<Option<Vec<u64>>, StoreError>;
}
