//! What the operator does to accounts from the CLI: disable, enable, delete, unlock, mark
//! verified, send a reset mail, list and revoke a user's sessions. Disabling or deleting
//! revokes every session at once, on every node, and refuses the personal access tokens.
use std::sync::Arc;

use super::access_tokens::AccessTokens;
use super::codes::Codes;
use super::model::{Session, User};
use super::state::revocations::Revocations;
use super::state::{Store, WriteTx};
use super::validate::canonical_email;
use super::DomainError;

/// The operator service.
#[derive(Debug)]
pub struct Operator {
    store: Store,
    revocations: Arc<dyn Revocations>,
    codes: Arc<Codes>,
}

impl Operator {
    pub fn new(store: Store, revocations: Arc<dyn Revocations>, codes: Arc<Codes>) -> Self {
        Self {
            store,
            revocations,
            codes,
        }
    }

    /// The local account with `email`.
    pub async fn user(&self, email: &str) -> Result<User, DomainError> {
        let email = canonical_email("email", email)?;
        let shown = email.clone();
        self.store
            .read(move |tx| Ok::<_, DomainError>(tx.user_by_email(&email)?))
            .await?
            .ok_or_else(|| DomainError::not_found(format!("no local account has {shown}")))
    }

    /// Disables (signs out everywhere and refuses its personal access tokens) or enables an
    /// account.
    pub async fn set_disabled(&self, email: &str, disabled: bool) -> Result<User, DomainError> {
        let user = self.user(email).await?;
        let id = user.id;
        let revoked = self
            .store
            .write(move |tx| {
                tx.set_user_disabled(id, disabled)?;
                // Sessions go; personal access tokens stay (refused while disabled, so
                // their cached copies are dropped too).
                let mut revoked = AccessTokens::ids_of_in(tx, id)?;
                if disabled {
                    // What other nodes made from its tokens ends too (notices.rs); its
                    // sessions' grants follow their deletion.
                    tx.end_grants(&revoked)?;
                    revoked.extend(tx.delete_all_sessions_of(id, None)?);
                }
                Ok::<_, DomainError>(revoked)
            })
            .await?;
        self.revocations.announce(&revoked);
        tracing::info!(target: "hearth::audit", event = "account_disabled", user = id, disabled);
        Ok(user)
    }

    /// Deletes an account with its sessions, codes, tokens and invites.
    pub async fn delete(&self, email: &str) -> Result<User, DomainError> {
        let user = self.user(email).await?;
        let id = user.id;
        let sessions = self.store.write(move |tx| delete_in(tx, id)).await?;
        self.revocations.announce(&sessions);
        tracing::info!(target: "hearth::audit", event = "account_deleted", user = id);
        Ok(user)
    }

    /// Lifts every sign-in delay and lock of the account's address.
    pub async fn unlock(&self, email: &str) -> Result<User, DomainError> {
        let user = self.user(email).await?;
        let address = user.email.clone().unwrap_or_default();
        self.store
            .write(move |tx| Ok::<_, DomainError>(tx.clear_sign_in_throttle(&address)?))
            .await?;
        Ok(user)
    }

    /// Marks the account's address verified without a code.
    pub async fn verify(&self, email: &str) -> Result<User, DomainError> {
        let user = self.user(email).await?;
        let id = user.id;
        let sessions = self
            .store
            .write(move |tx| {
                tx.set_email_verified(id)?;
                Ok::<_, DomainError>(tx.sessions_of(id)?.iter().map(|s| s.id).collect::<Vec<_>>())
            })
            .await?;
        self.revocations.announce(&sessions);
        Ok(user)
    }

    /// Sends the account a password reset mail; the operator never sets a password.
    pub async fn send_reset(&self, email: &str) -> Result<User, DomainError> {
        let user = self.user(email).await?;
        self.codes.request_password_reset(email).await?;
        Ok(user)
    }

    /// The account's sessions, newest first.
    pub async fn sessions(&self, email: &str) -> Result<Vec<Session>, DomainError> {
        let id = self.user(email).await?.id;
        self.store
            .read(move |tx| Ok::<_, DomainError>(tx.sessions_of(id)?))
            .await
    }

    /// Revokes every session of the account; returns how many.
    pub async fn revoke_all(&self, email: &str) -> Result<usize, DomainError> {
        let id = self.user(email).await?.id;
        let revoked = self
            .store
            .write(move |tx| Ok::<_, DomainError>(tx.delete_all_sessions_of(id, None)?))
            .await?;
        self.revocations.announce(&revoked);
        tracing::info!(target: "hearth::audit", event = "sessions_revoked_by_operator", user = id, count = revoked.len());
        Ok(revoked.len())
    }
}

/// Deletes account `id` in the caller's transaction; returns the session and token ids to
/// announce as revoked once it commits.
pub fn delete_in(tx: &mut dyn WriteTx, id: u64) -> Result<Vec<u64>, DomainError> {
    let mut ids: Vec<u64> = tx.sessions_of(id)?.iter().map(|s| s.id).collect();
    ids.extend(AccessTokens::ids_of_in(tx, id)?);
    tx.delete_user(id)?;
    Ok(ids)
}
