//! The jobs area of the store seam on PostgreSQL.
use super::gates;
use super::short_lived;
use super::tx::{i, Tx};
use crate::domain::state::store::{Gauges, JobsRead, JobsWrite, StoreError, StoredRow, Swap};

impl JobsRead for Tx<'_> {
    fn stored_secret(&mut self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.row("SELECT value FROM node_secrets WHERE name = $1", &[&name])?;
        Ok(r.map(|r| r.get(0)))
    }
    fn short_lived(
        &mut self,
        space: &str,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.row(
            "SELECT value FROM short_lived WHERE space = $1 AND key = $2 AND expires_at > $3",
            &[&space, &&key[..], &i(now)],
        )?;
        Ok(r.map(|r| r.get(0)))
    }
    fn short_lived_rows(
        &mut self,
        space: &str,
        keys: &[[u8; 32]],
    ) -> Result<Vec<Option<StoredRow>>, StoreError> {
        short_lived::rows(self, space, keys)
    }
    fn highest_id(&mut self) -> Result<u64, StoreError> {
        let r = self.row(
            "SELECT GREATEST((SELECT MAX(id) FROM users), (SELECT MAX(id) FROM sessions), \
             (SELECT MAX(id) FROM access_tokens), (SELECT MAX(id) FROM invites))",
            &[],
        )?;
        Ok(r.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0) as u64)
    }
    fn gauges(&mut self, now: u64) -> Result<Gauges, StoreError> {
        let a = self.row(
            "SELECT COUNT(*) FROM sessions WHERE expires_at > $1",
            &[&i(now)],
        )?;
        let b = self.row(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL AND body != ''",
            &[],
        )?;
        Ok(Gauges {
            active_sessions: a.map_or(0, |r| r.get::<_, i64>(0) as u64),
            outbox_depth: b.as_ref().map_or(0, |r| r.get::<_, i64>(0) as u64),
            outbox_oldest: b.and_then(|r| r.get::<_, Option<i64>>(1)).map(|v| v as u64),
        })
    }
}

impl JobsWrite for Tx<'_> {
    fn node_secret(
        &mut self,
        name: &str,
        make: &mut dyn FnMut() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let value = make();
        // One value wins even when nodes start together: insert if absent, then read.
        self.exec(
            "INSERT INTO node_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &value],
        )?;
        Ok(self.stored_secret(name)?.unwrap_or(value))
    }
    fn set_node_secret(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO node_secrets (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&name, &value],
        )?;
        Ok(())
    }
    fn lease_id_worker(
        &mut self,
        holder: &str,
        renew: Option<u16>,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<u16>, StoreError> {
        gates::lease_worker(self, holder, renew, now, expires_at)
    }
    fn release_id_worker(&mut self, worker: u16, holder: &str) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM id_workers WHERE worker = $1 AND holder = $2",
            &[&i64::from(worker), &holder],
        )?;
        Ok(())
    }
    fn short_lived_for_update(
        &mut self,
        space: &str,
        keys: &[[u8; 32]],
        now: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        short_lived::for_update(self, space, keys, now)
    }
    fn put_short_lived(
        &mut self,
        space: &str,
        values: &[([u8; 32], Vec<u8>)],
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        short_lived::put(self, space, values, expires_at, now)
    }
    fn swap_short_lived(
        &mut self,
        space: &str,
        swaps: &[Swap],
        expires_at: u64,
        now: u64,
    ) -> Result<Vec<bool>, StoreError> {
        short_lived::swap(self, space, swaps, expires_at, now)
    }
    fn hold_job(
        &mut self,
        name: &str,
        holder: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        let held = self.row(
            "INSERT INTO job_leases AS j (name, holder, expires_at) VALUES ($1, $2, $4::bigint) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_at = excluded.expires_at \
             WHERE j.holder = excluded.holder OR j.expires_at <= $3::bigint RETURNING 1",
            &[&name, &holder, &i(now), &i(expires_at)],
        )?;
        Ok(held.is_some())
    }
}
