//! The passkeys area of the store seam on PostgreSQL.
use postgres::Row;

use super::tx::{i, Tx};
use crate::domain::model::StoredPasskey;
use crate::domain::state::store::{PasskeysRead, PasskeysWrite, StoreError};

const COLUMNS: &str = "id, user_id, credential_id, name, data, created_at, last_used_at";

fn passkey(r: &Row) -> StoredPasskey {
    StoredPasskey {
        id: r.get::<_, i64>(0) as u64,
        user_id: r.get::<_, i64>(1) as u64,
        credential_id: r.get(2),
        name: r.get(3),
        data: r.get(4),
        created_at: r.get::<_, i64>(5) as u64,
        last_used_at: r.get::<_, Option<i64>>(6).map(|t| t as u64),
    }
}

impl PasskeysRead for Tx<'_> {
    fn passkeys(&mut self, user_id: u64) -> Result<Vec<StoredPasskey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY id");
        Ok(self
            .rows(&sql, &[&i(user_id)])?
            .iter()
            .map(passkey)
            .collect())
    }
    fn passkey_by_credential(
        &mut self,
        credential_id: &[u8],
    ) -> Result<Option<StoredPasskey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1");
        Ok(self.row(&sql, &[&credential_id])?.as_ref().map(passkey))
    }
}

impl PasskeysWrite for Tx<'_> {
    fn insert_passkey(&mut self, p: &StoredPasskey) -> Result<(), StoreError> {
        self.exec_unique(
            "INSERT INTO passkeys \
             (id, user_id, credential_id, name, data, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &i(p.id),
                &i(p.user_id),
                &p.credential_id,
                &p.name,
                &p.data,
                &i(p.created_at),
                &p.last_used_at.map(i),
            ],
            "passkey",
        )?;
        Ok(())
    }
    fn passkey_for_update(
        &mut self,
        credential_id: &[u8],
    ) -> Result<Option<StoredPasskey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1 FOR UPDATE");
        Ok(self.row(&sql, &[&credential_id])?.as_ref().map(passkey))
    }
    fn update_passkey(&mut self, id: u64, data: &str, used_at: u64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE passkeys SET data = $2, last_used_at = $3 WHERE id = $1",
            &[&i(id), &data, &i(used_at)],
        )?;
        Ok(())
    }
    fn delete_passkey(&mut self, user_id: u64, id: u64) -> Result<bool, StoreError> {
        let n = self.exec(
            "DELETE FROM passkeys WHERE id = $1 AND user_id = $2",
            &[&i(id), &i(user_id)],
        )?;
        Ok(n > 0)
    }
}
