//! The passkeys area of the store seam on SQLite. SQLite has one writer, so a row read
//! inside the write transaction is as good as locked.
use super::Tx;
use crate::domain::model::StoredPasskey;
use crate::domain::state::store::{PasskeysRead, PasskeysWrite, StoreError};
use crate::sqlite::passkeys;

impl PasskeysRead for Tx<'_> {
    fn passkeys(&mut self, user_id: u64) -> Result<Vec<StoredPasskey>, StoreError> {
        passkeys::of_user(self.0, user_id)
    }
    fn passkey_by_credential(
        &mut self,
        credential_id: &[u8],
    ) -> Result<Option<StoredPasskey>, StoreError> {
        passkeys::by_credential(self.0, credential_id)
    }
}

impl PasskeysWrite for Tx<'_> {
    fn insert_passkey(&mut self, p: &StoredPasskey) -> Result<(), StoreError> {
        passkeys::insert(self.0, p)
    }
    fn passkey_for_update(
        &mut self,
        credential_id: &[u8],
    ) -> Result<Option<StoredPasskey>, StoreError> {
        passkeys::by_credential(self.0, credential_id)
    }
    fn update_passkey(&mut self, id: u64, data: &str, used_at: u64) -> Result<(), StoreError> {
        passkeys::update(self.0, id, data, used_at)
    }
    fn delete_passkey(&mut self, user_id: u64, id: u64) -> Result<bool, StoreError> {
        passkeys::delete(self.0, user_id, id)
    }
}
