//! The federation area of the store seam on SQLite: each operation is its table file's function.
use super::Tx;
use crate::domain::model::{KeyRotation, Peer, PendingNotice};
use crate::domain::state::store::{FederationRead, FederationWrite, StoreError};
use crate::sqlite::{key_rotations, nonces, peer_tokens, peers, revocation_notices as notices};

impl FederationRead for Tx<'_> {
    fn peer(&mut self, server_id: &str) -> Result<Option<Peer>, StoreError> {
        peers::get(self.0, server_id)
    }
    fn peers(&mut self) -> Result<Vec<Peer>, StoreError> {
        peers::list(self.0)
    }
    fn peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError> {
        peer_tokens::get(self.0, hash)
    }
    fn key_rotations(&mut self) -> Result<Vec<KeyRotation>, StoreError> {
        key_rotations::list(self.0)
    }
    fn due_notices(&mut self, now: u64, limit: u32) -> Result<Vec<PendingNotice>, StoreError> {
        notices::due(self.0, now, limit)
    }
    fn waiting_notices(&mut self) -> Result<u64, StoreError> {
        notices::waiting(self.0)
    }
}

impl FederationWrite for Tx<'_> {
    fn put_peer(&mut self, p: &Peer) -> Result<(), StoreError> {
        peers::put(self.0, p)
    }
    fn insert_peer_token(
        &mut self,
        hash: &[u8; 32],
        server_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        peer_tokens::insert(self.0, hash, server_id, expires_at)
    }
    fn take_peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError> {
        peer_tokens::take(self.0, hash)
    }
    fn use_nonce(
        &mut self,
        origin: &str,
        nonce: &[u8],
        keep_until: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        nonces::use_once(self.0, origin, nonce, keep_until, now)
    }
    fn insert_key_rotation(&mut self, r: &KeyRotation) -> Result<(), StoreError> {
        key_rotations::insert(self.0, r)
    }
    fn grant_federation(
        &mut self,
        home_session: u64,
        token: bool,
        peer: &str,
        user_id: u64,
    ) -> Result<bool, StoreError> {
        notices::grant(self.0, home_session, token, peer, user_id)
    }
    fn end_grants(&mut self, home_sessions: &[u64]) -> Result<(), StoreError> {
        notices::end_grants(self.0, home_sessions)
    }
    fn delete_notices(&mut self, ids: &[u64]) -> Result<(), StoreError> {
        notices::delete(self.0, ids)
    }
    fn retry_notices(&mut self, ids: &[u64], next_at: u64) -> Result<(), StoreError> {
        notices::retry(self.0, ids, next_at)
    }
    fn notices_due_now(&mut self, peer: &str) -> Result<(), StoreError> {
        notices::due_now(self.0, peer)
    }
    fn bind_foreign_session(
        &mut self,
        session_id: u64,
        origin: &str,
        home_session: u64,
    ) -> Result<bool, StoreError> {
        notices::bind(self.0, session_id, origin, home_session)
    }
    fn end_home_session(
        &mut self,
        origin: &str,
        remote_user: u64,
        home_session: u64,
        keep_until: u64,
        now: u64,
    ) -> Result<Option<Vec<u64>>, StoreError> {
        notices::end(self.0, origin, remote_user, home_session, keep_until, now)
    }
}
