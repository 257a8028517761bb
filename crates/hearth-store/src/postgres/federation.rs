//! The federation area of the store seam on PostgreSQL.
use super::rows;
use super::tx::{i, Tx};
use crate::domain::model::{KeyRotation, Peer, PendingNotice};
use crate::domain::state::store::{FederationRead, FederationWrite, StoreError};

impl FederationRead for Tx<'_> {
    fn peer(&mut self, server_id: &str) -> Result<Option<Peer>, StoreError> {
        let sql = format!("SELECT {} FROM peers WHERE server_id = $1", rows::PEER);
        Ok(self.row(&sql, &[&server_id])?.as_ref().map(rows::peer))
    }
    fn peers(&mut self) -> Result<Vec<Peer>, StoreError> {
        let sql = format!("SELECT {} FROM peers ORDER BY server_id", rows::PEER);
        Ok(self.rows(&sql, &[])?.iter().map(rows::peer).collect())
    }
    fn peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError> {
        let r = self.row(
            "SELECT server_id, expires_at FROM peer_tokens WHERE token_hash = $1",
            &[&&hash[..]],
        )?;
        Ok(r.map(|r| (r.get(0), r.get::<_, i64>(1) as u64)))
    }
    fn key_rotations(&mut self) -> Result<Vec<KeyRotation>, StoreError> {
        let rows = self.rows(
            "SELECT old_key, new_key, at, sig FROM key_rotations ORDER BY seq",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| KeyRotation {
                old_key: r.get::<_, Vec<u8>>(0).try_into().unwrap_or([0; 32]),
                new_key: r.get::<_, Vec<u8>>(1).try_into().unwrap_or([0; 32]),
                at: r.get::<_, i64>(2) as u64,
                sig: r.get(3),
            })
            .collect())
    }
    fn due_notices(&mut self, now: u64, limit: u32) -> Result<Vec<PendingNotice>, StoreError> {
        let rows = self.rows(
            "SELECT id, peer, user_id, home_session, created_at, attempts \
             FROM revocation_notices WHERE next_at <= $1 ORDER BY id LIMIT $2",
            &[&i(now), &i64::from(limit)],
        )?;
        Ok(rows
            .iter()
            .map(|r| PendingNotice {
                id: r.get::<_, i64>(0) as u64,
                peer: r.get(1),
                user_id: r.get::<_, i64>(2) as u64,
                home_session: r.get::<_, i64>(3) as u64,
                created_at: r.get::<_, i64>(4) as u64,
                attempts: r.get::<_, i32>(5) as u32,
            })
            .collect())
    }
    fn waiting_notices(&mut self) -> Result<u64, StoreError> {
        let r = self.row("SELECT COUNT(*) FROM revocation_notices", &[])?;
        Ok(r.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }
}

impl FederationWrite for Tx<'_> {
    fn put_peer(&mut self, p: &Peer) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO peers ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (server_id) DO UPDATE SET pinned_key = excluded.pinned_key, \
             previous_key = excluded.previous_key, \
             previous_retired_at = excluded.previous_retired_at, url = excluded.url, \
             linked = excluded.linked, state = excluded.state, \
             last_error = excluded.last_error, link_expires_at = excluded.link_expires_at, \
             updated_at = excluded.updated_at",
            rows::PEER
        );
        self.exec(
            &sql,
            &[
                &p.server_id,
                &p.pinned_key.map(|k| k.to_vec()),
                &p.previous_key.map(|(k, _)| k.to_vec()),
                &p.previous_key.map(|(_, at)| at as i64),
                &p.url,
                &p.linked,
                &p.state,
                &p.last_error,
                &p.link_expires_at.map(i),
                &i(p.updated_at),
            ],
        )?;
        Ok(())
    }
    fn insert_peer_token(
        &mut self,
        hash: &[u8; 32],
        server_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO peer_tokens (token_hash, server_id, expires_at) VALUES ($1, $2, $3)",
            &[&&hash[..], &server_id, &i(expires_at)],
        )?;
        Ok(())
    }
    fn take_peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError> {
        let r = self.row(
            "DELETE FROM peer_tokens WHERE token_hash = $1 RETURNING server_id, expires_at",
            &[&&hash[..]],
        )?;
        Ok(r.map(|r| (r.get(0), r.get::<_, i64>(1) as u64)))
    }
    fn use_nonce(
        &mut self,
        origin: &str,
        nonce: &[u8],
        keep_until: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        self.exec("DELETE FROM used_nonces WHERE expires_at < $1", &[&i(now)])?;
        self.exec_unique(
            "INSERT INTO used_nonces (origin, nonce, expires_at) VALUES ($1, $2, $3)",
            &[&origin, &nonce, &i(keep_until)],
            "this token's nonce",
        )?;
        Ok(())
    }
    fn insert_key_rotation(&mut self, r: &KeyRotation) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO key_rotations (old_key, new_key, at, sig) VALUES ($1, $2, $3, $4)",
            &[&&r.old_key[..], &&r.new_key[..], &i(r.at), &r.sig],
        )?;
        Ok(())
    }
    fn grant_federation(
        &mut self,
        home_session: u64,
        token: bool,
        peer: &str,
        user_id: u64,
    ) -> Result<bool, StoreError> {
        // The credential's row stays locked until commit: a delete waits for this grant and
        // its trigger then sees it, or the delete went first and the grant is refused.
        let lock = match token {
            true => "SELECT 1 FROM access_tokens WHERE id = $1 FOR SHARE",
            false => "SELECT 1 FROM sessions WHERE id = $1 FOR SHARE",
        };
        if self.row(lock, &[&i(home_session)])?.is_none() {
            return Ok(false);
        }
        self.exec(
            "INSERT INTO federation_grants (home_session, peer, user_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            &[&i(home_session), &peer, &i(user_id)],
        )?;
        Ok(true)
    }
    fn end_grants(&mut self, home_sessions: &[u64]) -> Result<(), StoreError> {
        let ids: Vec<i64> = home_sessions.iter().map(|&v| i(v)).collect();
        self.exec(
            "WITH gone AS (DELETE FROM federation_grants WHERE home_session = ANY($1) \
             RETURNING peer, user_id, home_session) \
             INSERT INTO revocation_notices (peer, user_id, home_session, created_at) \
             SELECT peer, user_id, home_session, \
             (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT FROM gone",
            &[&ids],
        )?;
        Ok(())
    }
    fn delete_notices(&mut self, ids: &[u64]) -> Result<(), StoreError> {
        let ids: Vec<i64> = ids.iter().map(|&v| i(v)).collect();
        self.exec("DELETE FROM revocation_notices WHERE id = ANY($1)", &[&ids])?;
        Ok(())
    }
    fn retry_notices(&mut self, ids: &[u64], next_at: u64) -> Result<(), StoreError> {
        let ids: Vec<i64> = ids.iter().map(|&v| i(v)).collect();
        self.exec(
            "UPDATE revocation_notices SET attempts = attempts + 1, next_at = $2 \
             WHERE id = ANY($1)",
            &[&ids, &i(next_at)],
        )?;
        Ok(())
    }
    fn notices_due_now(&mut self, peer: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE revocation_notices SET next_at = 0 WHERE peer = $1 AND next_at > 0",
            &[&peer],
        )?;
        Ok(())
    }
    fn bind_foreign_session(
        &mut self,
        session_id: u64,
        origin: &str,
        home_session: u64,
    ) -> Result<bool, StoreError> {
        self.lock_home_session(origin, home_session)?;
        let ended = self.row(
            "SELECT 1 FROM ended_home_sessions WHERE origin = $1 AND home_session = $2",
            &[&origin, &i(home_session)],
        )?;
        if ended.is_some() {
            return Ok(false);
        }
        self.exec(
            "INSERT INTO foreign_sessions (session_id, origin, home_session) VALUES ($1, $2, $3)",
            &[&i(session_id), &origin, &i(home_session)],
        )?;
        Ok(true)
    }
    fn end_home_session(
        &mut self,
        origin: &str,
        remote_user: u64,
        home_session: u64,
        keep_until: u64,
        now: u64,
    ) -> Result<Option<Vec<u64>>, StoreError> {
        self.lock_home_session(origin, home_session)?;
        self.exec(
            "DELETE FROM ended_home_sessions WHERE keep_until < $1",
            &[&i(now)],
        )?;
        // The primary key decides which of parallel deliveries applies the notice.
        let new = self.exec(
            "INSERT INTO ended_home_sessions (origin, home_session, keep_until) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&origin, &i(home_session), &i(keep_until)],
        )?;
        if new == 0 {
            return Ok(None);
        }
        // Only the sessions of that origin's own user: a node ends nothing of another's users.
        self.returning_ids(
            "DELETE FROM sessions WHERE id IN (SELECT f.session_id FROM foreign_sessions f \
             WHERE f.origin = $1 AND f.home_session = $2) AND user_id IN (SELECT id FROM users \
             WHERE home_server = $1 AND remote_user_id = $3) RETURNING id",
            &[&origin, &i(home_session), &i(remote_user)],
        )
        .map(Some)
    }
}

impl Tx<'_> {
    /// Orders a binding and an ending of one home session (a binding's check of a row that
    /// does not exist yet cannot lock it): a lock on the pair until commit.
    fn lock_home_session(&mut self, origin: &str, home_session: u64) -> Result<(), StoreError> {
        self.row(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))",
            &[&origin, &i(home_session)],
        )?;
        Ok(())
    }
}
