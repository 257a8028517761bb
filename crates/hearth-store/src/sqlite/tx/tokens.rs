//! The tokens area of the store seam on SQLite: each operation is its table file's function.
use super::Tx;
use crate::domain::model::{AccessToken, Session};
use crate::domain::state::store::{StoreError, TokensRead, TokensWrite};
use crate::sqlite::{access_tokens, sessions};

impl TokensRead for Tx<'_> {
    fn access_token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        access_tokens::by_hash(self.0, hash)
    }
    fn access_token(&mut self, uuid: &str) -> Result<Option<AccessToken>, StoreError> {
        access_tokens::by_uuid(self.0, uuid)
    }
    fn access_tokens_of(&mut self, user_id: u64) -> Result<Vec<AccessToken>, StoreError> {
        access_tokens::list_for_user(self.0, user_id)
    }
}

impl TokensWrite for Tx<'_> {
    fn insert_access_token(&mut self, t: &AccessToken, max: u32) -> Result<bool, StoreError> {
        access_tokens::insert_capped(self.0, t, max)
    }
    fn update_access_token(&mut self, t: &AccessToken) -> Result<(), StoreError> {
        access_tokens::update(self.0, t)
    }
    fn touch_access_token(
        &mut self,
        id: u64,
        now: u64,
        ip: Option<&str>,
    ) -> Result<(), StoreError> {
        access_tokens::touch(self.0, id, now, ip)
    }
    fn delete_access_token(&mut self, id: u64) -> Result<bool, StoreError> {
        access_tokens::delete(self.0, id)
    }
    fn insert_session_for_token(
        &mut self,
        s: &Session,
        token_hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        sessions::insert_for_token(self.0, s, token_hash)
    }
    fn delete_sessions_of_token(&mut self, token_id: u64) -> Result<Vec<u64>, StoreError> {
        sessions::delete_for_token(self.0, token_id)
    }
}
