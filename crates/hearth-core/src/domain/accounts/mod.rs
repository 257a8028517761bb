//! Accounts: sign-up (e-mail + password, or a name-only guest), sign-in with throttling and
//! no account enumeration, and the operator's `user add` / `user list`.
use std::sync::Arc;

use zeroize::Zeroizing;

mod sign_in;

pub use sign_in::PasswordProof;

use super::codes::{Codes, Purpose};
use super::error::Reason;
use super::invites::Invites;
use super::model::{DeviceFacts, Invite, User};
use super::outbox::Outbox;
use super::passwords::{self, Hasher};
use super::principal::Principal;
use super::second_factor::SecondFactors;
use super::sessions::Sessions;
use super::state::ids::IdAllocator;
use super::state::Store;
use super::throttle::SlotWaiters;
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
