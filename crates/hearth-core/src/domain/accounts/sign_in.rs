//! Password sign-ins: the gate's slot, the argon2 verification, and the one write that ends
//! an attempt (the second factor, the session and its caps, the gate's outcome).
use super::{Accounts, BAD_CREDENTIALS};
use crate::domain::error::Reason;
use crate::domain::model::{Session, User};
use crate::domain::passwords;
use crate::domain::second_factor::{self, Factor, Second};
use crate::domain::sessions::SignedIn;
use crate::domain::state::store::{Ended, Later};
use crate::domain::throttle::{self, Slot};
use crate::domain::validate::canonical_email;
use crate::domain::{DomainError, RequestContext};
use zeroize::Zeroizing;

/// What a sign-in knows of the password it verified.
struct Proven {
    /// The account's new hash of it, when its hash uses older argon2 settings.
    rehash: Option<String>,
    /// The password itself, to verify again if the hash is replaced before the final
    /// write (`None`: the step flow's proof holds no password).
    recheck: Option<Zeroizing<String>>,
}

/// What [`Accounts::final_write`] is given.
struct FinalWrite<'a> {
    user: &'a User,
    client: &'a str,
    session: &'a Session,
    rehash: Option<String>,
    second: Option<Second>,
    /// Whether a replaced hash is answered with the hash the account holds now (the caller
    /// can verify the password again) rather than failing the attempt.
    may_recheck: bool,
}

/// What a sign-in's final write did, when the hash it found was the one verified.
enum Wrote {
    /// The password was right and no code came for the account's second factor (TOTP on,
    /// a passkey); the slot was given back.
    Asked {
        totp: bool,
        passkey: bool,
        freed: throttle::Freed,
    },
    /// The outcome, recorded: what the second factor came to, the sessions the cap ended
    /// (`None`: no session was inserted), what became of the slot, and the account as the
    /// write left it.
    Done {
        factor: Factor,
        ended: Option<Later<Ended>>,
        freed: throttle::Freed,
        locked: Option<User>,
    },
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

impl Accounts {
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
            true => Some(self.hasher.hash(password.clone()).await?),
            false => None,
        };
        let proven = Proven {
            rehash,
            recheck: Some(password),
        };
        self.complete(slot, user, client, proven, second, ctx).await
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
        let proven = Proven {
            rehash: None,
            recheck: None,
        };
        self.complete(slot, user, client, proven, Some(second), ctx)
            .await?
            .map_err(|_| second_factor::required())
    }

    /// The write that ends a sign-in whose password was right: the second factor, the
    /// session, the caps, the gate's outcome. When the account's hash was replaced after
    /// the password was verified (a parallel sign-in rehashed it, as after a change of the
    /// argon2 settings, or the password changed), the password is verified once more
    /// against the hash the account holds, and only a right one goes on; without the
    /// password ([`Proven::recheck`]), a replaced hash fails the attempt.
    async fn complete(
        &self,
        slot: Slot,
        mut user: User,
        client: String,
        password: Proven,
        second: Option<Second>,
        ctx: &RequestContext,
    ) -> Result<Result<SignedIn, PasswordProof>, DomainError> {
        let Proven {
            mut rehash,
            mut recheck,
        } = password;
        let (token, mut session) = self
            .sessions
            .new_session(user.id, ctx.device.clone(), "pwd");
        let id = user.id;
        let wrote = loop {
            let write = FinalWrite {
                user: &user,
                client: &client,
                session: &session,
                rehash: rehash.clone(),
                second: second.clone(),
                may_recheck: recheck.is_some(),
            };
            let now = match self.final_write(&slot, write).await? {
                Ok(wrote) => break wrote,
                Err(replaced) => replaced,
            };
            let verified = match recheck.take() {
                Some(password) => {
                    let verified = self
                        .hasher
                        .verify(password.clone(), Some(now.clone()))
                        .await?;
                    rehash = match (verified.ok, verified.needs_rehash) {
                        (true, true) => Some(self.hasher.hash(password).await?),
                        _ => None,
                    };
                    verified.ok
                }
                None => false,
            };
            if !verified {
                slot.finish(false).await?;
                tracing::info!(target: "hearth::audit", event = "sign_in_failed", user = id, password = "changed");
                return Err(bad_credentials());
            }
            user.password_hash = Some(now);
        };
        let (factor, ended) = match wrote {
            Wrote::Asked {
                totp,
                passkey,
                freed,
            } => {
                slot.done(freed, None);
                return Ok(Err(PasswordProof {
                    totp,
                    passkey,
                    ..PasswordProof::of(&user)
                }));
            }
            Wrote::Done {
                factor,
                ended,
                freed,
                locked,
            } => {
                // A slot handed on carries the account as this write left it, under its
                // lock: the next attempt in line need not read it again.
                slot.done(freed, locked);
                (factor, ended)
            }
        };
        let inserted = ended.is_some();
        let ended = ended.and_then(|e| e.take()).unwrap_or_default();
        self.sessions.announce_capped(&ended);
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

    /// One run of [`Accounts::complete`]'s write; `Err` (with `may_recheck`): the account's
    /// hash is no longer the one verified, nothing was written, and this is the hash it
    /// holds now.
    async fn final_write(
        &self,
        slot: &Slot,
        w: FinalWrite<'_>,
    ) -> Result<Result<Wrote, String>, DomainError> {
        let base = w.session.clone();
        let (id, now) = (w.user.id, self.clock.now_ms());
        let (address, client) = (
            w.user.email.clone().unwrap_or_default(),
            w.client.to_owned(),
        );
        let verified_hash = w.user.password_hash.clone().unwrap_or_default();
        let key = self.factors.key().clone();
        let hand_on = slot.may_hand_on();
        let (rehash, second, may_recheck) = (w.rehash, w.second, w.may_recheck);
        // The session is written only if the password is still the one just verified: a
        // reset that committed meanwhile wins, and this attempt counts as a failure.
        self.store
            .write_rows(move |tx| {
                // The user's row first: a password change waits for this write, or this
                // write sees the new hash and inserts nothing. The gate's rows are locked
                // with it (the outcome is written to them below) and the session caps lock
                // their own rows, so no read here needs more isolation.
                let held = tx.user_factors_and_gate_for_update(id, &address, &client)?;
                let (mut locked, gate) = (held.user, held.rows);
                // Checked on the row this write holds locked, so no reset can commit
                // between the check and the insert.
                let now_hash = locked.as_ref().and_then(|u| u.password_hash.clone());
                let holds = now_hash.as_deref() == Some(verified_hash.as_str());
                if let (Some(now_hash), false, true) = (now_hash, holds, may_recheck) {
                    return Ok(Err(now_hash));
                }
                // The second factor is checked here, under the user's row: a factor turned
                // on meanwhile is asked for, and a code is used once however many parallel
                // sign-ins send it. An account deleted meanwhile needs none, and gets no
                // session below.
                let factors = (held.totp, held.passkey);
                let factor =
                    second_factor::require_in(tx, &key, id, factors, second.as_ref(), now)?;
                // The password was right and no code came: the holder is asked for it,
                // which costs them nothing in the throttle (and clears nothing wrong codes
                // earned).
                if let Factor::Missing { totp, passkey } = factor {
                    let waited = throttle::release_in(tx, &address, &client, gate.1, now)?;
                    let freed = throttle::Freed::Back(waited);
                    return Ok(Ok(Wrote::Asked {
                        totp,
                        passkey,
                        freed,
                    }));
                }
                let s = Session {
                    amr: factor.amr().join(" "),
                    ..base.clone()
                };
                // The account's session cap is kept by the insert itself: a password's
                // session has no token, so no token's cap applies. Its answer, the
                // sessions it ended, is not needed before the commit, so the insert goes
                // out with the gate's rows and the COMMIT.
                let ended = match factor {
                    Factor::Wrong => None,
                    _ if !holds => None,
                    _ => Some(tx.insert_session_capped(&s, crate::domain::sessions::MAX_PER_USER)?),
                };
                let inserted = ended.is_some();
                if let (true, Some(h)) = (inserted, &rehash) {
                    tx.set_password_hash(id, h)?;
                    if let Some(user) = &mut locked {
                        user.password_hash = Some(h.clone());
                    }
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
                Ok::<_, DomainError>(Ok(Wrote::Done {
                    factor,
                    ended,
                    freed,
                    locked,
                }))
            })
            .await
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
}
