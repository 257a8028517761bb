//! The federation area of the store seam on SQLite: each operation is its table file's function.
use super::Tx;
use crate::domain::model::{KeyRotation, Peer};
use crate::domain::state::store::{FederationRead, FederationWrite, StoreError};
use crate::sqlite::{key_rotations, nonces, peer_tokens, peers};

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
}
