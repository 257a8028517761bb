//! The store seam's federation area: peers, peer tokens, challenge nonces and the node key's rotation history.
use super::StoreError;
use crate::domain::model::{KeyRotation, Peer};

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
}
