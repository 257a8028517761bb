//! The federation area of the store seam on PostgreSQL.
use super::rows;
use super::tx::{i, Tx};
use crate::domain::model::{KeyRotation, Peer};
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
}
