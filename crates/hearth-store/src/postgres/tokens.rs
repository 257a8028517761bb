//! The tokens area of the store seam on PostgreSQL.
use super::gates;
use super::rows;
use super::tx::{i, Tx};
use crate::domain::model::{AccessToken, Session};
use crate::domain::state::store::{StoreError, TokensRead, TokensWrite};

impl TokensRead for Tx<'_> {
    fn access_token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM access_tokens WHERE token_hash = $1",
            rows::TOKEN
        );
        Ok(self.row(&sql, &[&&hash[..]])?.as_ref().map(rows::token))
    }
    fn access_token(&mut self, uuid: &str) -> Result<Option<AccessToken>, StoreError> {
        let sql = format!("SELECT {} FROM access_tokens WHERE uuid = $1", rows::TOKEN);
        Ok(self.row(&sql, &[&uuid])?.as_ref().map(rows::token))
    }
    fn access_tokens_of(&mut self, user_id: u64) -> Result<Vec<AccessToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM access_tokens WHERE user_id = $1 ORDER BY id DESC",
            rows::TOKEN
        );
        Ok(self
            .rows(&sql, &[&i(user_id)])?
            .iter()
            .map(rows::token)
            .collect())
    }
}

impl TokensWrite for Tx<'_> {
    fn insert_access_token(&mut self, t: &AccessToken, max: u32) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO access_tokens ({}) \
             SELECT $1::bigint, $2::text, $3::bigint, $4::text, $5::bytea, $6::text, $7::bigint, \
                    $8::bigint, NULL, NULL \
             WHERE (SELECT COUNT(*) FROM access_tokens WHERE user_id = $3) < $9",
            rows::TOKEN
        );
        let n = self.exec_unique(
            &sql,
            &[
                &i(t.id),
                &t.uuid,
                &i(t.user_id),
                &t.name,
                &&t.token_hash[..],
                &t.scopes.to_text(),
                &i(t.created_at),
                &i(t.expires_at),
                &i64::from(max),
            ],
            "that token",
        )?;
        Ok(n > 0)
    }
    fn update_access_token(&mut self, t: &AccessToken) -> Result<(), StoreError> {
        self.exec(
            "UPDATE access_tokens SET name = $2, token_hash = $3, scopes = $4, expires_at = $5 \
             WHERE id = $1",
            &[
                &i(t.id),
                &t.name,
                &&t.token_hash[..],
                &t.scopes.to_text(),
                &i(t.expires_at),
            ],
        )?;
        Ok(())
    }
    fn touch_access_token(
        &mut self,
        id: u64,
        now: u64,
        ip: Option<&str>,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE access_tokens SET last_used_at = $2, last_used_ip = $3 WHERE id = $1",
            &[&i(id), &i(now), &ip],
        )?;
        Ok(())
    }
    fn delete_access_token(&mut self, id: u64) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM access_tokens WHERE id = $1", &[&i(id)])? > 0)
    }
    fn insert_session_for_token(
        &mut self,
        s: &Session,
        token_hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        gates::insert_session_where(
            self,
            s,
            "EXISTS (SELECT 1 FROM access_tokens WHERE id = $13 AND user_id = $2 \
             AND token_hash = $14::bytea AND expires_at > $9 AND expires_at >= $11)",
            &&token_hash[..],
        )
    }
    fn delete_sessions_of_token(&mut self, token_id: u64) -> Result<Vec<u64>, StoreError> {
        self.returning_ids(
            "DELETE FROM sessions WHERE access_token_id = $1 RETURNING id",
            &[&i(token_id)],
        )
    }
}
