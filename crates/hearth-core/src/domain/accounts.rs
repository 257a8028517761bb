//! Accounts: sign-up (e-mail + password, or a name-only guest), sign-in with throttling and
//! no account enumeration, and the operator's `user add` / `user list`.
use std::sync::Arc;

use zeroize::Zeroizing;

use super::codes::{Codes, Purpose};
use super::error::Reason;
use super::invites::Invites;
use super::model::{DeviceFacts, Invite, Session, User};
use super::outbox::Outbox;
use super::passwords::{self, Hasher};
use super::principal::Principal;
use super::second_factor::{self, Factor, Second, SecondFactors};
use super::sessions::Sessions;
use super::state::ids::IdAllocator;
use super::state::Store;
use super::throttle::{self, Slot, SlotWaiters};
use super::validate::{canonical_email, display_name};
use super::{DomainError, RequestContext};
use crate::clock::SharedClock;
use crate::config::{self, Registration};

/// The one message for a wrong e-mail or password, whichever it was.
pub const BAD_CREDENTIALS: &str = "the e-mail address or the password is wrong";

fn registration_closed() -> DomainError {
    DomainError::denied(
        Reason::RegistrationClosed,
        "registration on this node is closed; ask its operator for an account",
    )
}

fn bad_credentials() -> DomainError {
    DomainError::unauthenticated(Reason::BadCredentials, BAD_CREDENTIALS)
}

/// What a right password of an account with a second factor proves, kept by the step flow
/// until the code comes: the address and the password hash it matched (a password changed
/// meanwhile voids it). Never the password itself.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PasswordProof {
    email: String,
    verified_hash: String,
    /// The account's second factors when the password was checked: TOTP on, a passkey.
    pub totp: bool,
    pub passkey: bool,
    /// The account.
    pub user_id: u64,
}

impl std::fmt::Debug for PasswordProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordProof")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl PasswordProof {
    fn of(user: &User) -> Self {
        Self {
            email: user.email.clone().unwrap_or_default(),
            verified_hash: user.password_hash.clone().unwrap_or_default(),
            totp: false,
            passkey: false,
            user_id: user.id,
        }
    }
}

/// A sign-up request, as any of the account APIs phrase it.
#[derive(Debug, Default)]
pub struct SignUp {
    /// E-mail address; absent for a guest.
    pub email: Option<String>,
    /// Password; absent for a guest.
    pub password: Option<Zeroizing<String>>,
    /// Display name; defaults to the e-mail's local part.
    pub name: Option<String>,
    /// Invite code, for `registration = "invite"`.
    pub invite_code: Option<String>,
    /// A guest account to turn into this full one (Harmony BeginAuth's guest token)
    /// instead of creating a new account.
    pub guest: Option<u64>,
}

pub use super::sessions::SignedIn;

/// The accounts service.
#[derive(Debug)]
pub struct Accounts {
    store: Store,
    clock: SharedClock,
    ids: Arc<dyn IdAllocator>,
    config: config::Accounts,
    hasher: Arc<Hasher>,
    waiters: SlotWaiters,
    sessions: Arc<Sessions>,
    codes: Arc<Codes>,
    invites: Arc<Invites>,
    outbox: Outbox,
    factors: Arc<SecondFactors>,
}

impl Accounts {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        clock: SharedClock,
        ids: Arc<dyn IdAllocator>,
        config: config::Accounts,
        hasher: Arc<Hasher>,
        sessions: Arc<Sessions>,
        codes: Arc<Codes>,
        invites: Arc<Invites>,
        outbox: Outbox,
        feeds: Arc<dyn super::state::feeds::StepFeeds>,
        factors: Arc<SecondFactors>,
    ) -> Self {
        Self {
            factors,
            waiters: SlotWaiters::new(feeds),
            store,
            clock,
            ids,
            config,
            hasher,
            sessions,
            codes,
            invites,
            outbox,
        }
    }

    /// The password hasher (its counters serve tests and metrics).
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// Refuses at once when nobody may register here (registration is `closed`).
    pub fn check_registration_allowed(&self) -> Result<(), DomainError> {
        match self.config.registration {
            Registration::Closed => Err(registration_closed()),
            _ => Ok(()),
        }
    }

    /// Whether registration is open to this request; in `invite` mode, the registration
    /// invite to spend with the new account.
    async fn check_registration_open(
        &self,
        invite_code: Option<&str>,
    ) -> Result<Option<Invite>, DomainError> {
        match self.config.registration {
            Registration::Open => Ok(None),
            Registration::Closed => Err(registration_closed()),
            Registration::Invite if invite_code.is_none_or(str::is_empty) => {
                Err(DomainError::precondition(
                    Reason::InviteRequired,
                    "registration on this node needs an invite code (invite_code)",
                ))
            }
            Registration::Invite => Ok(Some(
                self.invites
                    .registration(invite_code.unwrap_or_default())
                    .await?,
            )),
        }
    }

    fn new_user(&self, email: Option<String>, name: String, hash: Option<String>) -> User {
        User {
            id: self.ids.next_id(),
            email,
            name,
            password_hash: hash,
            email_verified: false,
            home: None,
            disabled: false,
            created_at: self.clock.now_ms(),
        }
    }

    /// Creates an account and signs it in, in one transaction. A guest (no e-mail and no
    /// password) needs `accounts.allow_guests`.
    pub async fn sign_up(
        &self,
        req: SignUp,
        ctx: &RequestContext,
    ) -> Result<SignedIn, DomainError> {
        let invite = self
            .check_registration_open(req.invite_code.as_deref())
            .await?;
        let (email, hash) = match (&req.email, &req.password) {
            (None, _) | (_, None) if req.guest.is_some() => {
                return Err(DomainError::invalid(
                    "email",
                    "an e-mail address and a password are needed to keep a guest account",
                ))
            }
            (None, None) if !self.config.allow_guests => {
                return Err(DomainError::denied(
                    Reason::GuestsDisabled,
                    "guest accounts are disabled on this node; sign up with email and password",
                ))
            }
            (None, None) => (None, None),
            (Some(_), None) => {
                return Err(DomainError::invalid(
                    "password",
                    "is required with an e-mail address",
                ))
            }
            (None, Some(_)) => {
                return Err(DomainError::invalid("email", "is required with a password"))
            }
            (Some(email), Some(password)) => {
                let email = canonical_email("email", email)?;
                let password = passwords::validate("password", password)?;
                (Some(email), Some(self.hasher.hash(password).await?))
            }
        };
        let name = match (&req.name, &email) {
            (Some(n), _) => display_name("name", n)?,
            (None, Some(e)) => e.split('@').next().unwrap_or_default().to_owned(),
            (None, None) => {
                return Err(DomainError::invalid(
                    "name",
                    "is required for a guest account",
                ))
            }
        };
        let mut user = self.new_user(email, name, hash);
        if let Some(guest) = req.guest {
            user.id = guest;
        }
        let upgrade = req.guest.is_some();
        let (token, session) = self
            .sessions
            .new_session(user.id, ctx.device.clone(), "pwd");
        let code = match &user.email {
            Some(_) => Some(self.codes.code_and_mail(&user, Purpose::VerifyEmail)?),
            None => None,
        };
        let (u, s) = (user.clone(), session.clone());
        let (now, per_hour) = (self.clock.now_ms(), self.codes.per_hour());
        self.store
            .write(move |tx| {
                if let Some(invite) = &invite {
                    Invites::spend_in(tx, invite, now)?;
                }
                match upgrade {
                    true if !tx.upgrade_guest(&u)? => {
                        return Err(DomainError::invalid(
                            "for_guest_token",
                            "the guest account was already kept or is gone",
                        ))
                    }
                    true => {}
                    false => tx.insert_user(&u)?,
                }
                tx.insert_session(&s)?;
                if let Some((record, mail)) = &code {
                    let pair = (record, mail);
                    Codes::send_code_in(tx, u.id, Purpose::VerifyEmail, pair, now, per_hour)?;
                }
                Ok::<_, DomainError>(())
            })
            .await?;
        self.outbox.queued();
        Ok(SignedIn {
            token,
            user,
            session,
        })
    }

    /// Signs in with e-mail and password. Unknown e-mail and wrong password give the same
    /// error after the same work (one argon2 verification). The attempt is counted by the
    /// store's sign-in gate before argon2 runs, so parallel guesses cannot outrun the delay.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        second: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<SignedIn, DomainError> {
        self.sign_in_or_proof(email, password, second, ctx)
            .await?
            .map_err(|_| second_factor::required())
    }

    /// [`Accounts::sign_in`], or, for a right password of an account with a second factor
    /// and no code, the proof a later step finishes the sign-in with (the step flow).
    pub async fn sign_in_or_proof(
        &self,
        email: &str,
        password: &str,
        second: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Result<SignedIn, PasswordProof>, DomainError> {
        if password.len() > passwords::MAX_LEN * 4 {
            return Err(bad_credentials());
        }
        // The gate is keyed by the address and the client, whether or not an account has
        // the address: unknown and known addresses are throttled alike, and an attacker
        // elsewhere cannot delay the owner (only the account-wide cap of 100 spans clients).
        let email = canonical_email("email", email).ok();
        let client = ctx.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let (slot, user) = match &email {
            Some(e) => {
                let (slot, user) =
                    Slot::take_reading(&self.store, &self.clock, &self.waiters, e, &client, true)
                        .await?;
                (Some(slot), user)
            }
            None => (None, None),
        };
        let second = second
            .filter(|c| !c.trim().is_empty())
            .map(|c| Second::Code(c.to_owned()));
        let password = passwords::normalize(password);
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let verified = self.hasher.verify(password.clone(), stored).await?;
        let (user, slot) = match (user, slot) {
            (Some(user), Some(slot)) if verified.ok => (user, slot),
            (user, slot) => {
                if let Some(slot) = slot {
                    slot.finish(false).await?;
                }
                let user = user.map(|u| u.id);
                tracing::info!(target: "hearth::audit", event = "sign_in_failed", ?user);
                return Err(bad_credentials());
            }
        };
        if user.disabled {
            slot.finish(true).await?;
            return Err(DomainError::account_disabled());
        }
        if self.config.require_email_verification && !user.email_verified {
            slot.finish(true).await?;
            return Err(DomainError::precondition(
                Reason::EmailNotVerified,
                "verify your e-mail address first (see the code we sent, or call ResendEmailVerification)",
            ));
        }
        let rehash = match verified.needs_rehash {
            true => Some(self.hasher.hash(password).await?),
            false => None,
        };
        self.complete(slot, user, client, rehash, second, ctx).await
    }

    /// The second step of a sign-in whose password `proof` showed right: the gate, then
    /// the same write as a sign-in with `second`, if the password is still the one checked.
    pub async fn sign_in_with_proof(
        &self,
        proof: &PasswordProof,
        second: Second,
        ctx: &RequestContext,
    ) -> Result<SignedIn, DomainError> {
        let client = ctx.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let (slot, user) = Slot::take_reading(
            &self.store,
            &self.clock,
            &self.waiters,
            &proof.email,
            &client,
            true,
        )
        .await?;
        let user = user.filter(|u| {
            u.password_hash
                .as_deref()
                .map(str::as_bytes)
                .is_some_and(|h| {
                    bool::from(subtle::ConstantTimeEq::ct_eq(
                        h,
                        proof.verified_hash.as_bytes(),
                    ))
                })
        });
        let Some(user) = user.filter(|u| !u.disabled) else {
            slot.finish(false).await?;
            return Err(bad_credentials());
        };
        self.complete(slot, user, client, None, Some(second), ctx)
            .await?
            .map_err(|_| second_factor::required())
    }

    /// The write that ends a sign-in whose password was right: the second factor, the
    /// session, the caps, the gate's outcome.
    async fn complete(
        &self,
        slot: Slot,
        user: User,
        client: String,
        rehash: Option<String>,
        second: Option<Second>,
        ctx: &RequestContext,
    ) -> Result<Result<SignedIn, PasswordProof>, DomainError> {
        let (token, mut session) = self
            .sessions
            .new_session(user.id, ctx.device.clone(), "pwd");
        let base = session.clone();
        let (id, now) = (user.id, self.clock.now_ms());
        let (address, client) = (user.email.clone().unwrap_or_default(), client.clone());
        let verified_hash = user.password_hash.clone().unwrap_or_default();
        let key = self.factors.key().clone();
        let hand_on = slot.may_hand_on();
        // The session is written only if the password is still the one just verified: a
        // reset that committed meanwhile wins, and this attempt counts as a failure.
        let inserted = self
            .store
            .write_rows(move |tx| {
                // The user's row first: a password change waits for this write, or this
                // write sees the new hash and inserts nothing. The gate's rows are locked
                // with it (the outcome is written to them below) and the session caps lock
                // their own rows, so no read here needs more isolation.
                // The second factor is checked here, under the user's row: a factor turned
                // on meanwhile is asked for, and a code is used once however many parallel
                // sign-ins send it. An account deleted meanwhile needs none, and gets no
                // session below.
                let (factors, gate) = tx.user_factors_and_gate_for_update(id, &address, &client)?;
                let factors = factors.unwrap_or_default();
                let factor =
                    second_factor::require_in(tx, &key, id, factors, second.as_ref(), now)?;
                // The password was right and no code came: the holder is asked for it,
                // which costs them nothing in the throttle (and clears nothing wrong codes
                // earned).
                if let Factor::Missing { totp, passkey } = factor {
                    let waited = throttle::release_in(tx, &address, &client, gate.1, now)?;
                    let freed = throttle::Freed::Back(waited);
                    return Ok((Err((totp, passkey)), Vec::new(), freed));
                }
                let s = Session {
                    amr: factor.amr().join(" "),
                    ..base.clone()
                };
                // The account's session cap is kept by the insert itself: a password's
                // session has no token, so no token's cap applies.
                let ended = match factor {
                    Factor::Wrong => None,
                    _ => tx.insert_session_if_password(
                        &s,
                        &verified_hash,
                        crate::domain::sessions::MAX_PER_USER,
                    )?,
                };
                let inserted = ended.is_some();
                let ended = ended.unwrap_or_default();
                if let (true, Some(h)) = (inserted, &rehash) {
                    tx.set_password_hash(id, h)?;
                }
                let freed = throttle::finish_with(
                    tx,
                    &address,
                    &client,
                    gate,
                    inserted,
                    now,
                    &throttle::POLICY,
                    hand_on,
                )?;
                Ok::<_, DomainError>((Ok((inserted, factor)), ended, freed))
            })
            .await?;
        let (outcome, ended, freed) = inserted;
        slot.done(freed);
        self.sessions.announce_ended(&ended);
        let (inserted, factor) = match outcome {
            Ok(done) => done,
            Err((totp, passkey)) => {
                return Ok(Err(PasswordProof {
                    totp,
                    passkey,
                    ..PasswordProof::of(&user)
                }))
            }
        };
        if !inserted {
            if factor == Factor::Wrong {
                tracing::info!(target: "hearth::audit", event = "sign_in_failed", user = id, second_factor = "wrong");
            }
            return Err(bad_credentials());
        }
        session.amr = factor.amr().join(" ");
        tracing::info!(target: "hearth::audit", event = "sign_in", user = id, session = session.id, amr = %session.amr);
        Ok(Ok(SignedIn {
            token,
            user,
            session,
        }))
    }

    /// Checks the password of a signed-in account holder (ChangePassword) through the same
    /// sign-in gate as a sign-in, so a stolen session cannot guess the password any faster.
    /// Returns the hash it matched, for the caller's compare-and-swap.
    pub async fn check_password(
        &self,
        user: &User,
        password: &str,
        ctx: &RequestContext,
    ) -> Result<String, DomainError> {
        let wrong = || DomainError::denied(Reason::BadCredentials, "the current password is wrong");
        let (Some(email), Some(stored)) = (&user.email, &user.password_hash) else {
            return Err(DomainError::precondition(
                Reason::PasswordNotSet,
                "this account has no password to change",
            ));
        };
        if password.len() > passwords::MAX_LEN * 4 {
            return Err(wrong());
        }
        let client = ctx.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let slot = Slot::take(&self.store, &self.clock, &self.waiters, email, &client).await?;
        let verified = self
            .hasher
            .verify(passwords::normalize(password), Some(stored.clone()))
            .await?;
        slot.finish(verified.ok).await?;
        match verified.ok {
            true => Ok(stored.clone()),
            false => Err(wrong()),
        }
    }

    /// The account behind a principal.
    pub async fn user_of(&self, p: &Principal) -> Result<User, DomainError> {
        let id = p.user_id;
        self.store
            .read(move |tx| Ok::<_, DomainError>(tx.user(id)?))
            .await?
            .ok_or_else(|| {
                DomainError::unauthenticated(Reason::AccountGone, "the account no longer exists")
            })
    }

    /// Whether the caller's e-mail address is verified. `email`, when given, must be the
    /// caller's own.
    pub async fn is_email_verified(
        &self,
        p: &Principal,
        email: Option<&str>,
    ) -> Result<bool, DomainError> {
        let user = self.user_of(p).await?;
        if let Some(asked) = email.filter(|e| !e.is_empty()) {
            if canonical_email("data.email", asked).ok() != user.email {
                return Err(DomainError::denied(
                    Reason::NotYourAccount,
                    "data.email: you can only ask about your own account",
                ));
            }
        }
        Ok(user.email_verified)
    }

    /// Operator: creates a local account regardless of the registration mode.
    pub async fn add_user(&self, email: &str, password: &str) -> Result<User, DomainError> {
        let email = canonical_email("email", email)?;
        let hash = self
            .hasher
            .hash(passwords::validate("password", password)?)
            .await?;
        let name = email.split('@').next().unwrap_or_default().to_owned();
        let user = self.new_user(Some(email), name, Some(hash));
        let u = user.clone();
        self.store
            .write(move |tx| Ok::<_, DomainError>(tx.insert_user(&u)?))
            .await?;
        Ok(user)
    }

    /// Forgets sign-in throttle state untouched for a day that holds no live delay
    /// (addresses tried once and never again). Returns how many rows went.
    pub async fn sweep_throttle(&self) -> Result<u64, DomainError> {
        let before = self.clock.now_ms().saturating_sub(24 * 3600 * 1000);
        Ok(self
            .store
            .write(move |tx| tx.sweep_sign_in_throttle(before))
            .await?)
    }

    /// Operator: every account.
    pub async fn list(&self) -> Result<Vec<User>, DomainError> {
        self.store.read(|tx| Ok(tx.users()?)).await
    }
}

/// Device facts for sessions the operator issues from the CLI.
pub fn cli_device() -> DeviceFacts {
    DeviceFacts {
        app_name: "hearth-cli".into(),
        ..DeviceFacts::default()
    }
}
