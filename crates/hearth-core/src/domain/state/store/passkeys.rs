//! The store seam's passkeys area: an account's WebAuthn credentials.
use super::StoreError;
use crate::domain::model::StoredPasskey;

/// Reads of the passkeys area.
pub trait PasskeysRead {
    /// The passkeys of `user_id`, oldest first.
    fn passkeys(&mut self, user_id: u64) -> Result<Vec<StoredPasskey>, StoreError>;
    /// The passkey with `credential_id`, whoever holds it.
    fn passkey_by_credential(
        &mut self,
        credential_id: &[u8],
    ) -> Result<Option<StoredPasskey>, StoreError>;
}

/// Writes of the passkeys area, inside the caller's one transaction.
pub trait PasskeysWrite: PasskeysRead {
    /// Inserts a passkey; a credential id registered already (to any account) is
    /// [`StoreError::Conflict`].
    fn insert_passkey(&mut self, p: &StoredPasskey) -> Result<(), StoreError>;
    /// [`PasskeysRead::passkey_by_credential`], its row locked until the transaction ends
    /// (a use checks and advances its counter in one write).
    fn passkey_for_update(
        &mut self,
        credential_id: &[u8],
    ) -> Result<Option<StoredPasskey>, StoreError>;
    /// Stores a passkey's new counter and flags (`data`) and when it was used.
    fn update_passkey(&mut self, id: u64, data: &str, used_at: u64) -> Result<(), StoreError>;
    /// Removes passkey `id` of `user_id`; returns whether there was one.
    fn delete_passkey(&mut self, user_id: u64, id: u64) -> Result<bool, StoreError>;
}
