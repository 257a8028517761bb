//! The jobs area of the store seam on SQLite: each operation is its table file's function.
use super::Tx;
use crate::domain::state::store::{Gauges, JobsRead, JobsWrite, StoreError, StoredRow, Swap};
use crate::sqlite::db_err;
use crate::sqlite::{id_workers, secrets};

impl JobsRead for Tx<'_> {
    fn stored_secret(&mut self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        secrets::get(self.0, name)
    }
    fn gauges(&mut self, now: u64) -> Result<Gauges, StoreError> {
        let active_sessions: i64 = self
            .0
            .query_row(
                "SELECT COUNT(*) FROM sessions WHERE expires_at > ?1",
                [now as i64],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        let (depth, oldest): (i64, Option<i64>) = self
            .0
            .query_row(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL AND body != ''",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db_err)?;
        Ok(Gauges {
            active_sessions: active_sessions as u64,
            outbox_depth: depth as u64,
            outbox_oldest: oldest.map(|v| v as u64),
        })
    }
    fn short_lived(
        &mut self,
        space: &str,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        secrets::short_lived(self.0, space, key, now)
    }
    fn short_lived_rows(
        &mut self,
        space: &str,
        keys: &[[u8; 32]],
    ) -> Result<Vec<Option<StoredRow>>, StoreError> {
        keys.iter()
            .map(|key| secrets::short_lived_row(self.0, space, key))
            .collect()
    }
    fn highest_id(&mut self) -> Result<u64, StoreError> {
        let max: Option<i64> = self.0.query_row(
            "SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM users UNION ALL SELECT MAX(id) FROM sessions \
             UNION ALL SELECT MAX(id) FROM access_tokens UNION ALL SELECT MAX(id) FROM invites)",
            [],
            |r| r.get(0),
        ).map_err(db_err)?;
        Ok(max.unwrap_or(0) as u64)
    }
}

impl JobsWrite for Tx<'_> {
    fn node_secret(
        &mut self,
        name: &str,
        make: &mut dyn FnMut() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        secrets::get_or_create(self.0, name, make)
    }
    fn set_node_secret(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        secrets::set(self.0, name, value)
    }
    fn lease_id_worker(
        &mut self,
        holder: &str,
        renew: Option<u16>,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<u16>, StoreError> {
        id_workers::lease(self.0, holder, renew, now, expires_at)
    }
    fn release_id_worker(&mut self, worker: u16, holder: &str) -> Result<(), StoreError> {
        id_workers::release(self.0, worker, holder)
    }
    fn short_lived_for_update(
        &mut self,
        space: &str,
        keys: &[[u8; 32]],
        now: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        // The single writer holds every row already.
        keys.iter()
            .map(|key| secrets::short_lived(self.0, space, key, now))
            .collect()
    }
    fn put_short_lived(
        &mut self,
        space: &str,
        values: &[([u8; 32], Vec<u8>)],
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        secrets::put_short_lived(self.0, space, values, expires_at, now)
    }
    fn swap_short_lived(
        &mut self,
        space: &str,
        swaps: &[Swap],
        expires_at: u64,
        now: u64,
    ) -> Result<Vec<bool>, StoreError> {
        // The single writer holds every row: compare, then store the swaps that match.
        let mut stored = Vec::with_capacity(swaps.len());
        let mut values = Vec::new();
        for (key, expected, value) in swaps {
            let found = secrets::short_lived_row(self.0, space, key)?.map(|(v, _)| v);
            let matches = found == *expected;
            if matches {
                values.push((*key, value.clone()));
            }
            stored.push(matches);
        }
        secrets::put_short_lived(self.0, space, &values, expires_at, now)?;
        Ok(stored)
    }
    fn hold_job(
        &mut self,
        name: &str,
        holder: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        id_workers::hold_job(self.0, name, holder, now, expires_at)
    }
}
