//! The sessions area of the store seam on SQLite: each operation is its table file's function.
use super::Tx;
use crate::domain::model::{Session, SessionCredential};
use crate::domain::state::store::{Ended, Later, SessionsRead, SessionsWrite, StoreError};
use crate::sqlite::sessions;

impl SessionsRead for Tx<'_> {
    fn session_credential(
        &mut self,
        hash: &[u8; 32],
    ) -> Result<Option<SessionCredential>, StoreError> {
        sessions::credential(self.0, hash)
    }
    fn full_sessions(
        &mut self,
        after_id: u64,
        limit: u32,
        now: u64,
    ) -> Result<Vec<([u8; 32], SessionCredential)>, StoreError> {
        sessions::full_page(self.0, after_id, limit, now)
    }
    fn session(&mut self, id: u64) -> Result<Option<Session>, StoreError> {
        sessions::by_id(self.0, id)
    }
    fn sessions_of(&mut self, user_id: u64) -> Result<Vec<Session>, StoreError> {
        sessions::list_for_user(self.0, user_id)
    }
    fn live_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
    ) -> Result<(u32, u32), StoreError> {
        sessions::live(self.0, user_id, token_id, now)
    }
}

impl SessionsWrite for Tx<'_> {
    fn insert_session(&mut self, s: &Session) -> Result<(), StoreError> {
        sessions::insert(self.0, s)
    }
    fn insert_session_capped(
        &mut self,
        s: &Session,
        max_live: u32,
    ) -> Result<Later<Ended>, StoreError> {
        sessions::insert(self.0, s)?;
        let past = sessions::past_most_active(self.0, s, max_live.saturating_sub(1))?;
        let ids = sessions::delete_for_user(self.0, s.user_id, &past)?;
        // One node per database file: no other node to tell.
        Ok(Later::ready(Ended {
            ids,
            nodes_told: false,
        }))
    }
    fn end_least_active_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
        n: u32,
    ) -> Result<Vec<u64>, StoreError> {
        let ids = sessions::least_active(self.0, user_id, token_id, now, n)?;
        sessions::delete_for_user(self.0, user_id, &ids)
    }
    fn delete_sessions_of(&mut self, user_id: u64, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
        sessions::delete_for_user(self.0, user_id, ids)
    }
    fn delete_all_sessions_of(
        &mut self,
        user_id: u64,
        keep: Option<u64>,
    ) -> Result<Vec<u64>, StoreError> {
        sessions::delete_all_for_user(self.0, user_id, keep)
    }
    fn delete_session(&mut self, id: u64) -> Result<bool, StoreError> {
        sessions::delete(self.0, id)
    }
    fn touch_session(&mut self, id: u64, now: u64) -> Result<(), StoreError> {
        sessions::touch(self.0, id, now)
    }
    fn swap_session_token(
        &mut self,
        id: u64,
        presented: &[u8; 32],
        new: &[u8; 32],
        now: u64,
    ) -> Result<bool, StoreError> {
        sessions::swap_token(self.0, id, presented, new, now)
    }
}
