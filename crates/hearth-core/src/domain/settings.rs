//! An account holder's own settings (the Osmium socket's `settings.*` calls, served on every
//! transport as `tangle.client.auth` extensions): what the account looks like, a new
//! password, a new e-mail address (moved once the code mailed there is used; the old address
//! is told), and deletion after a grace period the operator sets (every session ends at
//! once; signing in again within it lets the holder cancel).
use std::sync::Arc;

use super::accounts::Accounts;
use super::codes::{Codes, Purpose};
use super::error::Reason;
use super::model::User;
use super::operator::delete_in;
use super::outbox::Outbox;
use super::passwords::{self, Hasher};
use super::principal::Principal;
use super::second_factor::{SecondFactors, TotpView};
use super::sessions::Sessions;
use super::state::Store;
use super::validate::canonical_email;
use super::{DomainError, RequestContext};
use crate::clock::SharedClock;

/// Accounts deleted per pass of the sweeper.
const DELETIONS_PER_PASS: u32 = 100;

/// What GetAccount shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// The e-mail address (none for guests and foreign users).
    pub email: Option<String>,
    /// Whether it was verified.
    pub confirmed: bool,
    /// Whether the account signs in with a password.
    pub has_password: bool,
    /// Whether a second factor is set up.
    pub totp_enabled: bool,
    /// Whether a deletion is pending.
    pub pending_delete: bool,
}

/// The settings service.
#[derive(Debug)]
pub struct Settings {
    store: Store,
    clock: SharedClock,
    accounts: Arc<Accounts>,
    hasher: Arc<Hasher>,
    codes: Arc<Codes>,
    sessions: Arc<Sessions>,
    outbox: Outbox,
    factors: Arc<SecondFactors>,
    grace_ms: u64,
}

impl Settings {
    /// The service; `grace_days` is `[accounts] delete_grace_days`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        clock: SharedClock,
        accounts: Arc<Accounts>,
        hasher: Arc<Hasher>,
        codes: Arc<Codes>,
        sessions: Arc<Sessions>,
        outbox: Outbox,
        factors: Arc<SecondFactors>,
        grace_days: u32,
    ) -> Self {
        Settings {
            store,
            clock,
            accounts,
            hasher,
            codes,
            sessions,
            outbox,
            factors,
            grace_ms: u64::from(grace_days) * 24 * 3600 * 1000,
        }
    }

    async fn user(&self, p: &Principal) -> Result<User, DomainError> {
        self.accounts.user_of(p).await
    }

    /// GetAccount.
    pub async fn account(&self, p: &Principal) -> Result<AccountView, DomainError> {
        let user = self.user(p).await?;
        let id = user.id;
        let change = self
            .store
            .read(move |tx| Ok::<_, DomainError>(tx.account_change(id)?))
            .await?;
        Ok(AccountView {
            email: user.email,
            confirmed: user.email_verified,
            has_password: user.password_hash.is_some(),
            totp_enabled: self.factors.status(id).await?.enabled,
            pending_delete: change.delete_at.is_some(),
        })
    }

    /// SetupTotp: see [`SecondFactors::setup`]; the account's address names it in the
    /// authenticator app.
    pub async fn setup_totp(
        &self,
        p: &Principal,
        enabled: bool,
        code: Option<&str>,
    ) -> Result<TotpView, DomainError> {
        let user = self.user(p).await?;
        let name = user.email.clone().unwrap_or_else(|| user.name.clone());
        self.factors.setup(p, &name, enabled, code).await
    }

    /// ChangePassword: the current password is checked through the sign-in gate, the new
    /// one must meet the password policy, and the hash is swapped only if it is still the
    /// one just checked. Every other session of the account ends (DESIGN.md §3), whatever
    /// `revoke_sessions` says; the caller's own stays.
    pub async fn change_password(
        &self,
        p: &Principal,
        current: &str,
        new: &str,
        ctx: &RequestContext,
    ) -> Result<(), DomainError> {
        let new = passwords::validate("new_password", new)?;
        let user = self.user(p).await?;
        let checked = self.accounts.check_password(&user, current, ctx).await?;
        let hash = self.hasher.hash(new).await?;
        let (id, keep) = (user.id, Some(p.session_id));
        let revoked = self
            .store
            .write(move |tx| {
                let now = tx.user(id)?.and_then(|u| u.password_hash);
                if now.as_deref() != Some(checked.as_str()) {
                    return Ok(None);
                }
                tx.set_password_hash(id, &hash)?;
                Ok::<_, DomainError>(Some(Sessions::revoke_all_in(tx, id, keep)?))
            })
            .await?
            .ok_or_else(|| {
                DomainError::precondition(
                    Reason::BadCredentials,
                    "the password changed meanwhile; sign in again",
                )
            })?;
        self.sessions.announce(&revoked);
        tracing::info!(target: "hearth::audit", event = "password_changed", user = id, sessions_revoked = revoked.len());
        Ok(())
    }

    /// ChangeEmail: mails a code to the new address (VerifyEmail with that address and the
    /// code moves the account) and tells the old one. A taken address is refused.
    pub async fn change_email(&self, p: &Principal, new_email: &str) -> Result<(), DomainError> {
        let new_email = canonical_email("new_email", new_email)?;
        let user = self.user(p).await?;
        if user.email.is_none() || user.home.is_some() {
            return Err(DomainError::precondition(
                Reason::ForeignAccount,
                "this account has no e-mail address of its own to change",
            ));
        }
        if user.email.as_deref() == Some(new_email.as_str()) {
            return Err(DomainError::invalid(
                "new_email",
                "is the address the account has",
            ));
        }
        let (record, code_mail, notice) = self.codes.email_change_code(&user, &new_email)?;
        let (id, now, per_hour) = (user.id, self.clock.now_ms(), self.codes.per_hour());
        self.store
            .write(move |tx| {
                let mut change = tx.account_change(id)?;
                change.pending_email = Some(new_email.clone());
                tx.set_account_change(id, &change)?;
                let pair = (&record, &code_mail);
                if Codes::send_code_in(tx, id, Purpose::ChangeEmail, pair, now, per_hour)? {
                    notice.enqueue_in(tx, now)?;
                }
                Ok::<_, DomainError>(())
            })
            .await?;
        self.outbox.queued();
        tracing::info!(target: "hearth::audit", event = "email_change_requested", user = id);
        Ok(())
    }

    /// DeleteAccount: schedules the deletion after the grace period (0: deletes now) and
    /// ends every session; `cancel` lifts a pending deletion.
    pub async fn delete_account(&self, p: &Principal, cancel: bool) -> Result<(), DomainError> {
        let user = self.user(p).await?;
        let id = user.id;
        let (grace, now) = (self.grace_ms, self.clock.now_ms());
        let at = now + grace;
        let revoked = self
            .store
            .write(move |tx| {
                if grace == 0 && !cancel {
                    return delete_in(tx, id);
                }
                let mut change = tx.account_change(id)?;
                change.delete_at = (!cancel).then_some(at);
                tx.set_account_change(id, &change)?;
                match cancel {
                    true => Ok(Vec::new()),
                    false => Ok(Sessions::revoke_all_in(tx, id, None)?),
                }
            })
            .await?;
        self.sessions.announce(&revoked);
        let event = match (cancel, grace) {
            (true, _) => "account_deletion_cancelled",
            (false, 0) => "account_deleted",
            (false, _) => "account_deletion_scheduled",
        };
        tracing::info!(target: "hearth::audit", event, user = id, now);
        Ok(())
    }

    /// Deletes the accounts whose grace period is over (run periodically by the node).
    pub async fn delete_due(&self) -> Result<usize, DomainError> {
        let now = self.clock.now_ms();
        let ids = self
            .store
            .read(move |tx| {
                Ok::<_, DomainError>(tx.accounts_due_for_deletion(now, DELETIONS_PER_PASS)?)
            })
            .await?;
        for &id in &ids {
            let revoked = self
                .store
                .write(move |tx| {
                    // Cancelled meanwhile: nothing to do.
                    match tx.account_change(id)?.delete_at {
                        Some(at) if at <= now => delete_in(tx, id),
                        _ => Ok(Vec::new()),
                    }
                })
                .await?;
            self.sessions.announce(&revoked);
            tracing::info!(target: "hearth::audit", event = "account_deleted", user = id);
        }
        Ok(ids.len())
    }
}
