//! The store seam's tokens area: personal access tokens and the sessions made from them.
use super::StoreError;
use crate::domain::model::{AccessToken, Session};

/// Reads of the tokens area.
pub trait TokensRead {
    /// The personal access token whose value hashes to `hash`.
    fn access_token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<AccessToken>, StoreError>;
    /// A personal access token by uuid.
    fn access_token(&mut self, uuid: &str) -> Result<Option<AccessToken>, StoreError>;
    /// A user's personal access tokens, newest first.
    fn access_tokens_of(&mut self, user_id: u64) -> Result<Vec<AccessToken>, StoreError>;
}

/// Writes of the tokens area, inside the caller's one transaction.
pub trait TokensWrite: TokensRead {
    /// Atomic: inserts a personal access token unless its owner already has `max`; returns
    /// whether it inserted.
    fn insert_access_token(&mut self, t: &AccessToken, max: u32) -> Result<bool, StoreError>;
    /// Writes a token's name, value hash, scopes and expiry (read it in the same
    /// transaction first, so no parallel change is lost).
    fn update_access_token(&mut self, t: &AccessToken) -> Result<(), StoreError>;
    /// Records a use of a token.
    fn touch_access_token(&mut self, id: u64, now: u64, ip: Option<&str>)
        -> Result<(), StoreError>;
    /// Deletes a token; returns whether it existed.
    fn delete_access_token(&mut self, id: u64) -> Result<bool, StoreError>;
    /// Atomic: inserts a session made from token `s.access_token_id` only while that token
    /// still has the value `token_hash` and outlives the session; returns whether it did.
    fn insert_session_for_token(
        &mut self,
        s: &Session,
        token_hash: &[u8; 32],
    ) -> Result<bool, StoreError>;
    /// Deletes every session made from token `token_id`; returns their ids.
    fn delete_sessions_of_token(&mut self, token_id: u64) -> Result<Vec<u64>, StoreError>;
}
