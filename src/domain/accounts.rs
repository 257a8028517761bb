//! Accounts: sign-up (e-mail + password, or a name-only guest), sign-in with throttling and
//! no account enumeration, and the operator's `user add` / `user list`.
use zeroize::Zeroizing;

use super::{codes::Purpose, passwords, throttle, Domain, DomainError, Principal, RequestContext};
use crate::config::Registration;
use crate::secret::BearerSecret;
use crate::store::sessions::{self, SessionRow};
use crate::store::users::{self, UserRow};

/// The one message for a wrong e-mail or password, whichever it was.
pub const BAD_CREDENTIALS: &str = "the e-mail address or the password is wrong";

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
}

/// A successful sign-up or sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The new session token (hand it to the client once).
    pub token: BearerSecret,
    /// The account.
    pub user: UserRow,
    /// The new session.
    pub session: SessionRow,
}

/// Checks and canonicalises an e-mail address (lower-cased; one `@`; no spaces).
pub fn canonical_email(field: &'static str, email: &str) -> Result<String, DomainError> {
    let email = email.trim();
    let bad = |why: &str| {
        DomainError::invalid(field, format!("`{email}` is not an e-mail address: {why}"))
    };
    if email.is_empty() {
        return Err(DomainError::invalid(field, "is required"));
    }
    if email.len() > 254 {
        return Err(bad("longer than 254 characters"));
    }
    let (local, domain) = email.split_once('@').ok_or_else(|| bad("no '@'"))?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') || !domain.contains('.') {
        return Err(bad("expected name@example.org"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains spaces"));
    }
    Ok(email.to_lowercase())
}

fn display_name(field: &'static str, name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid(field, "is required"));
    }
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must be 1 to 64 printable characters",
        ));
    }
    Ok(name.to_owned())
}

impl Domain {
    fn check_registration_open(&self, invite_code: Option<&str>) -> Result<(), DomainError> {
        match self.config.accounts.registration {
            Registration::Open => Ok(()),
            Registration::Closed => Err(DomainError::PermissionDenied(
                "registration on this node is closed; ask its operator for an account".into(),
            )),
            Registration::Invite if invite_code.is_none_or(str::is_empty) => {
                Err(DomainError::FailedPrecondition(
                    "registration on this node needs an invite code (invite_code)".into(),
                ))
            }
            Registration::Invite => Err(DomainError::Unimplemented(
                "invite codes are not supported by this version of Hearth yet".into(),
            )),
        }
    }

    /// Creates an account and signs it in, in one transaction. A guest (no e-mail and no
    /// password) needs `accounts.allow_guests`.
    pub async fn sign_up(
        &self,
        req: SignUp,
        ctx: &RequestContext,
    ) -> Result<SignedIn, DomainError> {
        self.check_registration_open(req.invite_code.as_deref())?;
        let (email, hash) = match (&req.email, &req.password) {
            (None, None) => {
                if !self.config.accounts.allow_guests {
                    return Err(DomainError::PermissionDenied(
                        "guest accounts are disabled on this node; sign up with email and password"
                            .into(),
                    ));
                }
                (None, None)
            }
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
        let user = UserRow {
            id: self.ids.next_id(),
            email,
            name,
            password_hash: hash,
            email_verified: false,
            home: None,
            failed_sign_ins: 0,
            locked_until: None,
            created_at: self.clock.now_ms(),
        };
        let (token, session) = self.new_session(user.id, ctx.device.clone());
        let code = match &user.email {
            Some(_) => Some(self.code_and_mail(&user, Purpose::VerifyEmail)?),
            None => None,
        };
        let (u, s) = (user.clone(), session.clone());
        let now = self.clock.now_ms();
        self.store
            .write(move |tx| {
                users::insert(tx, &u)?;
                sessions::insert(tx, &s)?;
                if let Some((row, mail)) = &code {
                    Self::send_code_in(tx, u.id, Purpose::VerifyEmail, row, mail, now)?;
                }
                Ok::<_, DomainError>(())
            })
            .await?;
        self.mail_wakeup.notify_one();
        Ok(SignedIn {
            token,
            user,
            session,
        })
    }

    /// Signs in with e-mail and password. Unknown e-mail and wrong password give the same
    /// error after the same work (one argon2 verification).
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        ctx: &RequestContext,
    ) -> Result<SignedIn, DomainError> {
        self.throttle.check_ip(ctx.ip)?;
        if password.len() > passwords::MAX_LEN * 4 {
            return Err(DomainError::Unauthenticated(BAD_CREDENTIALS.into()));
        }
        let email = email.trim().to_lowercase();
        let user = self
            .store
            .read(move |c| Ok::<_, DomainError>(users::by_email(c, &email)?))
            .await?;
        let now = self.clock.now_ms();
        if let Some(u) = &user {
            if let Some(until) = u.locked_until.filter(|t| *t > now) {
                return Err(throttle::refusal(u.failed_sign_ins, until, now));
            }
        }
        let password = passwords::normalize(password);
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let verified = self.hasher.verify(password.clone(), stored).await?;
        let Some(user) = user else {
            return Err(DomainError::Unauthenticated(BAD_CREDENTIALS.into()));
        };
        if !verified.ok {
            let failures = user.failed_sign_ins + 1;
            let until = throttle::locked_until(failures, now);
            let id = user.id;
            self.store
                .write(move |tx| Ok::<_, DomainError>(users::record_failure(tx, id, until)?))
                .await?;
            return Err(DomainError::Unauthenticated(BAD_CREDENTIALS.into()));
        }
        if self.config.accounts.require_email_verification && !user.email_verified {
            return Err(DomainError::FailedPrecondition(
                "verify your e-mail address first (see the code we sent, or call ResendEmailVerification)".into(),
            ));
        }
        let rehash = match verified.needs_rehash {
            true => Some(self.hasher.hash(password).await?),
            false => None,
        };
        let (token, session) = self.new_session(user.id, ctx.device.clone());
        let s = session.clone();
        let id = user.id;
        self.store
            .write(move |tx| {
                users::clear_failures(tx, id)?;
                if let Some(h) = &rehash {
                    users::set_password_hash(tx, id, h)?;
                }
                sessions::insert(tx, &s)?;
                Ok::<_, DomainError>(())
            })
            .await?;
        Ok(SignedIn {
            token,
            user,
            session,
        })
    }

    /// The account behind a principal.
    pub async fn user_of(&self, p: &Principal) -> Result<UserRow, DomainError> {
        let id = p.user_id;
        self.store
            .read(move |c| Ok::<_, DomainError>(users::by_id(c, id)?))
            .await?
            .ok_or_else(|| DomainError::Unauthenticated("the account no longer exists".into()))
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
            if Some(asked.trim().to_lowercase()) != user.email {
                return Err(DomainError::PermissionDenied(
                    "data.email: you can only ask about your own account".into(),
                ));
            }
        }
        Ok(user.email_verified)
    }

    /// Operator: creates a local account regardless of the registration mode.
    pub async fn add_user(&self, email: &str, password: &str) -> Result<UserRow, DomainError> {
        let email = canonical_email("email", email)?;
        let hash = self
            .hasher
            .hash(passwords::validate("password", password)?)
            .await?;
        let user = UserRow {
            id: self.ids.next_id(),
            name: email.split('@').next().unwrap_or_default().to_owned(),
            email: Some(email),
            password_hash: Some(hash),
            email_verified: false,
            home: None,
            failed_sign_ins: 0,
            locked_until: None,
            created_at: self.clock.now_ms(),
        };
        let u = user.clone();
        self.store
            .write(move |tx| Ok::<_, DomainError>(users::insert(tx, &u)?))
            .await?;
        Ok(user)
    }

    /// Operator: every account.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, DomainError> {
        self.store.read(|c| Ok(users::list(c)?)).await
    }
}
