//! The sessions area of the store seam on PostgreSQL.
use super::gates;
use super::rows;
use super::tx::{i, Tx};
use crate::domain::model::{Session, SessionCredential};
use crate::domain::state::store::{Ended, Later, SessionsRead, SessionsWrite, StoreError};

impl SessionsRead for Tx<'_> {
    fn session_credential(
        &mut self,
        hash: &[u8; 32],
    ) -> Result<Option<SessionCredential>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE token_hash = $1",
            rows::SESSION_CREDENTIAL
        );
        Ok(self
            .row(&sql, &[&&hash[..]])?
            .as_ref()
            .map(rows::session_credential))
    }
    fn full_sessions(
        &mut self,
        after_id: u64,
        limit: u32,
        now: u64,
    ) -> Result<Vec<([u8; 32], SessionCredential)>, StoreError> {
        let rows = self.rows(
            "SELECT token_hash, id, user_id, last_active, expires_at FROM sessions \
             WHERE id > $1 AND expires_at > $2 AND scopes IS NULL AND access_token_id IS NULL \
             ORDER BY id LIMIT $3",
            &[&i(after_id), &i(now), &i64::from(limit)],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let hash: Vec<u8> = r.get(0);
                (
                    hash.try_into().unwrap_or([0; 32]),
                    SessionCredential {
                        id: r.get::<_, i64>(1) as u64,
                        user_id: r.get::<_, i64>(2) as u64,
                        last_active: r.get::<_, i64>(3) as u64,
                        expires_at: r.get::<_, i64>(4) as u64,
                        scopes: crate::domain::scopes::ScopeSet::ALL,
                    },
                )
            })
            .collect())
    }
    fn session(&mut self, id: u64) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {} FROM sessions WHERE id = $1", rows::SESSION);
        Ok(self.row(&sql, &[&i(id)])?.as_ref().map(rows::session))
    }
    fn live_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
    ) -> Result<(u32, u32), StoreError> {
        let row = self.row(
            "SELECT (SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND expires_at > $3), \
                    (SELECT COUNT(*) FROM sessions WHERE $2::bigint IS NOT NULL \
                       AND access_token_id = $2 AND expires_at > $3)",
            &[&i(user_id), &token_id.map(i), &i(now)],
        )?;
        Ok(row.map_or((0, 0), |r| {
            (r.get::<_, i64>(0) as u32, r.get::<_, i64>(1) as u32)
        }))
    }
    fn sessions_of(&mut self, user_id: u64) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE user_id = $1 ORDER BY id DESC",
            rows::SESSION
        );
        Ok(self
            .rows(&sql, &[&i(user_id)])?
            .iter()
            .map(rows::session)
            .collect())
    }
}

impl SessionsWrite for Tx<'_> {
    fn insert_session(&mut self, s: &Session) -> Result<(), StoreError> {
        gates::insert_session_where(self, s, gates::UNCONDITIONAL, &"").map(|_| ())
    }
    fn insert_session_capped(
        &mut self,
        s: &Session,
        max_live: u32,
    ) -> Result<Later<Ended>, StoreError> {
        let ended = Later::pending();
        gates::insert_session_trimming(self, s, max_live, ended.clone())?;
        Ok(ended)
    }
    fn end_least_active_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
        n: u32,
    ) -> Result<Vec<u64>, StoreError> {
        self.returning_ids(
            "DELETE FROM sessions WHERE user_id = $1 AND id IN (SELECT id FROM sessions \
                 WHERE user_id = $1 AND expires_at > $2 \
                   AND ($3::bigint IS NULL OR access_token_id = $3) \
                 ORDER BY last_active, id LIMIT $4) \
             RETURNING id",
            &[&i(user_id), &i(now), &token_id.map(i), &i64::from(n)],
        )
    }
    fn delete_sessions_of(&mut self, user_id: u64, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|v| *v as i64).collect();
        self.returning_ids(
            "DELETE FROM sessions WHERE user_id = $1 AND id = ANY($2) RETURNING id",
            &[&i(user_id), &ids],
        )
    }
    fn delete_all_sessions_of(
        &mut self,
        user_id: u64,
        keep: Option<u64>,
    ) -> Result<Vec<u64>, StoreError> {
        let keep = keep.map_or(-1, |k| k as i64);
        self.returning_ids(
            "DELETE FROM sessions WHERE user_id = $1 AND id != $2 RETURNING id",
            &[&i(user_id), &keep],
        )
    }
    fn delete_session(&mut self, id: u64) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM sessions WHERE id = $1", &[&i(id)])? > 0)
    }
    fn touch_session(&mut self, id: u64, now: u64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET last_active = GREATEST(last_active, $2) WHERE id = $1",
            &[&i(id), &i(now)],
        )?;
        Ok(())
    }
    fn swap_session_token(
        &mut self,
        id: u64,
        presented: &[u8; 32],
        new: &[u8; 32],
        now: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE sessions SET token_hash = $3, last_active = $4 WHERE id = $1 AND token_hash = $2",
            &[&i(id), &&presented[..], &&new[..], &i(now)],
        )? > 0)
    }
}
