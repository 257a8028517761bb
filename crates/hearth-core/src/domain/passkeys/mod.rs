//! Passkeys (WebAuthn, DESIGN.md §3) with webauthn-rs: an account registers passkeys, and a
//! passkey signs in alone (a discoverable credential: the authenticator names the account)
//! or answers the second factor after a password. The relying party is the node's public
//! URL (`mail.public_url`); a URL whose host is an IP address names no relying party, and
//! passkeys are then off (PASSKEYS_OFF). Ceremony state lives in the shared short-lived map
//! (single use, 5 minutes), so a cluster finishes a ceremony on any node. A use is checked
//! inside the write that acts on it, under the passkey's row lock: the crate's counter and
//! backup-flag checks run against the stored values, and the new ones are stored in the
//! same write ([`Assertion::check_in`]).
mod ceremony;

use std::sync::Arc;

use webauthn_rs::prelude::Passkey;

pub use ceremony::{Assertion, Challenge, Relying};
use ceremony::{Ceremony, Started};

use super::error::Reason;
use super::model::StoredPasskey;
use super::principal::Principal;
use super::sessions::{self, Sessions, SignedIn};
use super::state::ids::IdAllocator;
use super::state::shared_map::{self, SharedMap};
use super::state::Store;
use super::{DomainError, RequestContext};
use crate::clock::SharedClock;

/// Passkeys one account may hold.
pub const MAX_PER_ACCOUNT: usize = 10;
/// Ceremonies (begun, not finished) a node keeps at most; a flood displaces the oldest.
pub const MAX_CEREMONIES: usize = 100_000;
/// The `amr` (RFC 8176 style) of a session a passkey made or joined.
pub const AMR: &str = "passkey";
const NAME_MAX: usize = 64;

/// A passkey as its holder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyView {
    pub id: u64,
    pub name: String,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
    /// The authenticator says the key is backed up (synced between devices).
    pub backed_up: bool,
}

fn view(p: &StoredPasskey) -> PasskeyView {
    // The flag as webauthn-rs serialises a `Passkey` (its credential under `cred`).
    let backed_up = serde_json::from_str::<serde_json::Value>(&p.data)
        .ok()
        .and_then(|v| v.pointer("/cred/backup_state").and_then(|b| b.as_bool()))
        .unwrap_or(false);
    PasskeyView {
        id: p.id,
        name: p.name.clone(),
        created_at: p.created_at,
        last_used_at: p.last_used_at,
        backed_up,
    }
}

fn unknown_ceremony() -> DomainError {
    DomainError::invalid_because(
        "ceremony",
        Reason::CeremonyUnknown,
        "no passkey ceremony has this id: it expired (5 minutes), was used, or never began; begin again",
    )
}

/// The refusal of an assertion or attestation that does not verify.
pub fn invalid() -> DomainError {
    DomainError::unauthenticated(
        Reason::PasskeyInvalid,
        "the passkey did not verify: it is not registered here, belongs to another account, or its answer is stale; try again",
    )
}

/// The passkeys service.
pub struct Passkeys {
    store: Store,
    clock: SharedClock,
    ids: Arc<dyn IdAllocator>,
    ceremonies: Arc<dyn SharedMap<String>>,
    relying: Relying,
    sessions: Arc<Sessions>,
    require_verification: bool,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys")
            .field("relying", &self.relying)
            .finish_non_exhaustive()
    }
}

impl Passkeys {
    /// The service; `relying` says whether and for which site passkeys work.
    pub fn new(
        store: Store,
        clock: SharedClock,
        ids: Arc<dyn IdAllocator>,
        ceremonies: Arc<dyn SharedMap<String>>,
        relying: Relying,
        sessions: Arc<Sessions>,
        require_verification: bool,
    ) -> Self {
        Self {
            store,
            clock,
            ids,
            ceremonies,
            relying,
            sessions,
            require_verification,
        }
    }

    async fn of_user(&self, user_id: u64) -> Result<Vec<StoredPasskey>, DomainError> {
        self.store
            .read(move |tx| Ok::<_, DomainError>(tx.passkeys(user_id)?))
            .await
    }

    /// The passkeys of `user_id`, oldest first.
    pub async fn list(&self, user_id: u64) -> Result<Vec<PasskeyView>, DomainError> {
        Ok(self.of_user(user_id).await?.iter().map(view).collect())
    }

    /// Removes passkey `id` of the caller (or of `user_id`, for the operator).
    pub async fn remove(&self, user_id: u64, id: u64) -> Result<(), DomainError> {
        let gone = self
            .store
            .write(move |tx| Ok::<_, DomainError>(tx.delete_passkey(user_id, id)?))
            .await?;
        if !gone {
            return Err(DomainError::not_found(
                "id: the account has no passkey with this id (ListPasskeys names them)",
            ));
        }
        tracing::info!(target: "hearth::audit", event = "passkey_removed", user = user_id, passkey = id);
        Ok(())
    }

    /// Keeps a begun ceremony's state until its finishing call; the browser gets its id and
    /// options.
    async fn park(&self, started: Started) -> Result<Challenge, DomainError> {
        let (id, json) = started.ceremony.to_stored()?;
        self.ceremonies.put(&id, json, ceremony::TTL_MS).await?;
        Ok(Challenge {
            ceremony: id,
            options: started.options,
        })
    }

    async fn take(&self, id: &str) -> Result<Ceremony, DomainError> {
        if !ceremony::is_id(id) {
            return Err(unknown_ceremony());
        }
        let json = shared_map::take(&*self.ceremonies, id)
            .await?
            .ok_or_else(unknown_ceremony)?;
        Ceremony::from_stored(&json).ok_or_else(unknown_ceremony)
    }

    /// Begins adding a passkey named `name` to the caller's account (`email` names it in
    /// the authenticator).
    pub async fn begin_register(
        &self,
        p: &Principal,
        email: &str,
        name: &str,
    ) -> Result<Challenge, DomainError> {
        let webauthn = self.relying.get()?;
        let name = passkey_name(name)?;
        let user = p.user_id;
        let have = self.of_user(user).await?;
        if have.len() >= MAX_PER_ACCOUNT {
            return Err(full());
        }
        let exclude = have.iter().map(|k| k.credential_id.clone()).collect();
        self.park(ceremony::start_register(
            webauthn, user, email, name, exclude,
        )?)
        .await
    }

    /// Finishes adding a passkey with the browser's answer (`credential`, JSON).
    pub async fn finish_register(
        &self,
        p: &Principal,
        ceremony: &str,
        credential: &str,
    ) -> Result<PasskeyView, DomainError> {
        let webauthn = self.relying.get()?;
        let Ceremony::Register {
            user_id,
            name,
            state,
        } = self.take(ceremony).await?
        else {
            return Err(unknown_ceremony());
        };
        if user_id != p.user_id {
            return Err(unknown_ceremony());
        }
        let passkey = ceremony::finish_register(webauthn, credential, &state)?;
        let row = StoredPasskey {
            id: self.ids.next_id(),
            user_id,
            credential_id: passkey.cred_id().to_vec(),
            name,
            data: serde_json::to_string(&passkey)
                .map_err(|e| DomainError::internal(e.to_string()))?,
            created_at: self.clock.now_ms(),
            last_used_at: None,
        };
        let stored = row.clone();
        self.store.write(move |tx| add_in(tx, &stored)).await?;
        tracing::info!(target: "hearth::audit", event = "passkey_added", user = user_id, passkey = row.id);
        Ok(view(&row))
    }

    /// Begins a sign-in with a passkey alone: any discoverable passkey of this site.
    pub async fn begin_sign_in(&self) -> Result<Challenge, DomainError> {
        self.park(ceremony::start_discoverable(self.relying.get()?)?)
            .await
    }

    /// Begins the second factor of `user_id` (a password already checked) for the step
    /// flow handed over as `handoff`; fails when the account has no passkey.
    pub async fn begin_step(&self, user_id: u64, handoff: &str) -> Result<Challenge, DomainError> {
        let webauthn = self.relying.get()?;
        let keys: Vec<Passkey> = self
            .of_user(user_id)
            .await?
            .iter()
            .filter_map(|k| serde_json::from_str(&k.data).ok())
            .collect();
        if keys.is_empty() {
            return Err(DomainError::precondition(
                Reason::PasskeyInvalid,
                "this account has no passkey; answer the step with a code instead",
            ));
        }
        self.park(ceremony::start_known(webauthn, user_id, handoff, &keys)?)
            .await
    }

    /// Takes the ceremony of a second-factor step begun for `handoff`, with the browser's
    /// answer, as an assertion for the sign-in's write to check.
    pub async fn step_assertion(
        &self,
        handoff: &str,
        ceremony: &str,
        credential: &str,
    ) -> Result<(u64, Assertion), DomainError> {
        let webauthn = self.relying.get()?;
        match self.take(ceremony).await? {
            Ceremony::Step {
                user_id,
                handoff: h,
                state,
            } if h == handoff => Ok((
                user_id,
                Assertion::known(webauthn.clone(), credential, state)?,
            )),
            _ => Err(unknown_ceremony()),
        }
    }

    /// Finishes a sign-in with a passkey alone: a new session (`amr` "passkey").
    pub async fn sign_in(
        &self,
        ceremony: &str,
        credential: &str,
        ctx: &RequestContext,
    ) -> Result<SignedIn, DomainError> {
        let webauthn = self.relying.get()?;
        let Ceremony::SignIn { state } = self.take(ceremony).await? else {
            return Err(unknown_ceremony());
        };
        let assertion = Assertion::discoverable(webauthn.clone(), credential, state)?;
        let (token, base) = self.sessions.new_session(0, ctx.device.clone(), AMR);
        let (now, verification) = (self.clock.now_ms(), self.require_verification);
        let (user, session, ended) = self
            .store
            .write_rows(move |tx| {
                let user_id = assertion.user_named().ok_or_else(invalid)?;
                // The user's row first, as every write that adds a session takes it.
                let user = tx
                    .user_for_update(user_id)?
                    .filter(|u| u.home.is_none())
                    .ok_or_else(invalid)?;
                if user.disabled {
                    return Err(DomainError::account_disabled());
                }
                if verification && !user.email_verified {
                    return Err(DomainError::precondition(
                        Reason::EmailNotVerified,
                        "verify your e-mail address first (see the code we sent, or call ResendEmailVerification)",
                    ));
                }
                assertion.check_in(tx, Some(user_id), now)?.ok_or_else(invalid)?;
                let s = crate::domain::model::Session {
                    user_id,
                    ..base.clone()
                };
                tx.insert_session(&s)?;
                let ended = sessions::make_room(tx, &s)?;
                Ok::<_, DomainError>((user, s, ended))
            })
            .await?;
        self.sessions.announce_ended(&ended);
        tracing::info!(target: "hearth::audit", event = "sign_in", user = user.id, session = session.id, amr = AMR);
        Ok(SignedIn {
            token,
            user,
            session,
        })
    }
}

fn passkey_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    let name = if name.is_empty() { "passkey" } else { name };
    if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name",
            format!("must be at most {NAME_MAX} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

fn full() -> DomainError {
    DomainError::exhausted(
        Reason::LimitReached,
        format!("an account holds at most {MAX_PER_ACCOUNT} passkeys; remove one first"),
    )
}

fn taken() -> DomainError {
    DomainError::new(
        super::ErrorKind::AlreadyExists,
        Reason::PasskeyTaken,
        "this passkey is registered already (to this or another account)",
    )
}

/// Inside a write: adds `p` to its account unless the account holds
/// [`MAX_PER_ACCOUNT`] already or the credential is registered (to any account). The count
/// is read under the account's row lock, so parallel additions cannot pass the cap.
pub fn add_in(tx: &mut dyn super::state::WriteTx, p: &StoredPasskey) -> Result<(), DomainError> {
    tx.user_for_update(p.user_id)?.ok_or_else(|| {
        DomainError::unauthenticated(Reason::AccountGone, "the account no longer exists")
    })?;
    if tx.passkeys(p.user_id)?.len() >= MAX_PER_ACCOUNT {
        return Err(full());
    }
    match tx.insert_passkey(p) {
        Err(super::state::StoreError::Conflict(_)) => Err(taken()),
        other => Ok(other?),
    }
}
