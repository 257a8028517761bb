//! E-mail codes (DESIGN.md §3): 8 digits, stored as an HMAC bound to user and purpose,
//! single use, short-lived, dead after 5 wrong tries. A try is spent by one atomic store
//! operation before the code is compared, so parallel guesses compare at most 5. Also the
//! flows that use codes: e-mail verification and password reset.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::Reason;
use super::model::{CodeRecord, User};
use super::outbox::{Outbox, OutgoingMail};
use super::passwords::{self, Hasher};
use super::principal::Principal;
use super::state::revocations::Revocations;
use super::state::{Store, WriteTx};
use super::validate::canonical_email;
use super::DomainError;
use crate::clock::SharedClock;
use crate::config::Config;

/// How long a code lives.
pub const CODE_TTL_MS: u64 = 10 * 60 * 1000;
/// Wrong tries before a code dies.
pub const MAX_TRIES: u32 = 5;
/// The one message for a wrong, used, expired or unknown code.
pub const BAD_CODE: &str = "the code is wrong, used or expired; ask for a new one";

/// What a code is for; a code for one purpose never works for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Prove the e-mail address.
    VerifyEmail,
    /// Set a new password.
    ResetPassword,
    /// Move the account to a new e-mail address (the code goes to the new one).
    ChangeEmail,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
            Purpose::ChangeEmail => "change_email",
        }
    }
}

fn mac(key: &[u8], user_id: u64, purpose: Purpose, code: &str) -> Result<[u8; 32], DomainError> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|e| DomainError::internal(format!("e-mail code key: {e}")))?;
    m.update(format!("{user_id}\n{}\n{code}", purpose.as_str()).as_bytes());
    Ok(m.finalize().into_bytes().into())
}

fn bad_code() -> DomainError {
    DomainError::invalid_because("code", Reason::CodeInvalid, BAD_CODE)
}

fn check_format(code: &str) -> Result<(), DomainError> {
    if code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "code",
            "must be the 8 digits from the e-mail",
        ))
    }
}

/// What checking a code needs inside a write transaction: the HMAC key and the counter of
/// comparisons (tests read it to prove at most 5 guesses are ever compared).
struct CodeChecker {
    key: Zeroizing<Vec<u8>>,
    comparisons: Arc<AtomicU64>,
    now: u64,
}

impl CodeChecker {
    /// Spends a try (atomically), then compares; a good code is used up when `consume`.
    /// A wrong code's spent try must be committed, so callers return `Ok(false)` from their
    /// transaction and the error after it. A code out of tries stays (dead) until replaced,
    /// so its spent tries count against the next one issued while it is live.
    fn check_in(
        &self,
        tx: &mut dyn WriteTx,
        user_id: u64,
        purpose: Purpose,
        code: &str,
        consume: bool,
    ) -> Result<bool, DomainError> {
        let Some(stored) = tx.spend_code_try(user_id, purpose.as_str(), self.now)? else {
            return Ok(false);
        };
        self.comparisons.fetch_add(1, Ordering::Relaxed);
        let given = mac(&self.key, user_id, purpose, code)?;
        let good = bool::from(given.ct_eq(&stored.mac));
        if good && consume {
            return Ok(tx.take_code(user_id, purpose.as_str(), &given, self.now)?);
        }
        Ok(good)
    }

    /// The same work as a check, for an account that does not exist (no enumeration).
    fn check_nobody(&self, code: &str) -> Result<bool, DomainError> {
        self.comparisons.fetch_add(1, Ordering::Relaxed);
        let _ = mac(&self.key, 0, Purpose::ResetPassword, code)?.ct_eq(&[0u8; 32]);
        Ok(false)
    }
}

/// The e-mail code service.
#[derive(Debug)]
pub struct Codes {
    store: Store,
    clock: SharedClock,
    config: Arc<Config>,
    key: Zeroizing<Vec<u8>>,
    comparisons: Arc<AtomicU64>,
    hasher: Arc<Hasher>,
    revocations: Arc<dyn Revocations>,
    outbox: Outbox,
    verified: VerifiedHooks,
}

/// Who is told when an address is verified (step flows waiting for the e-mail link).
pub type VerifiedHook = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Default)]
struct VerifiedHooks(std::sync::RwLock<Vec<VerifiedHook>>);

impl std::fmt::Debug for VerifiedHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifiedHooks")
    }
}

impl Codes {
    /// The service; `key` is the node's HMAC key for codes.
    pub fn new(
        store: Store,
        clock: SharedClock,
        config: Arc<Config>,
        key: Zeroizing<Vec<u8>>,
        hasher: Arc<Hasher>,
        revocations: Arc<dyn Revocations>,
        outbox: Outbox,
    ) -> Self {
        Self {
            store,
            clock,
            config,
            key,
            comparisons: Arc::default(),
            hasher,
            revocations,
            outbox,
            verified: VerifiedHooks::default(),
        }
    }

    /// Calls `hook` with the user id whenever an address is verified with its code (by RPC
    /// or by the link in the mail).
    pub fn on_verified(&self, hook: VerifiedHook) {
        self.verified
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    /// Number of codes compared against a stored code so far.
    pub fn comparisons(&self) -> u64 {
        self.comparisons.load(Ordering::Relaxed)
    }

    /// A fresh code for `purpose`, its record, and the mail that carries it to `user` (for
    /// [`Purpose::ChangeEmail`], to the new address: [`Codes::email_change_code`]).
    pub fn code_and_mail(
        &self,
        user: &User,
        purpose: Purpose,
    ) -> Result<(CodeRecord, OutgoingMail), DomainError> {
        let code = Zeroizing::new(format!(
            "{:08}",
            rand::rngs::OsRng.gen_range(0..100_000_000u32)
        ));
        let record = CodeRecord {
            mac: mac(&self.key, user.id, purpose, &code)?,
            expires_at: self.clock.now_ms() + CODE_TTL_MS,
            tries_left: MAX_TRIES,
        };
        let mail = match purpose {
            Purpose::VerifyEmail | Purpose::ChangeEmail => self.verification_mail(user, &code),
            Purpose::ResetPassword => self.reset_mail(user, &code),
        };
        Ok((record, mail))
    }

    /// A code that moves `user` to `new_email`, mailed there, and a notice for the old
    /// address.
    pub fn email_change_code(
        &self,
        user: &User,
        new_email: &str,
    ) -> Result<(CodeRecord, OutgoingMail, OutgoingMail), DomainError> {
        let mut moved = user.clone();
        moved.email = Some(new_email.to_owned());
        let (record, code_mail) = self.code_and_mail(&moved, Purpose::ChangeEmail)?;
        let notice = OutgoingMail {
            to: user.email.clone().unwrap_or_default(),
            subject: format!("Your {} e-mail address is changing", self.config.server_id),
            body: format!(
                "Hello {},\n\nsomeone signed in to your account on {} asked to move it to {new_email}.\n\
                 It moves once the code sent there is used. If this was not you, change your\n\
                 password now and end your other sessions.\n",
                user.name, self.config.server_id
            ),
        };
        Ok((record, code_mail, notice))
    }

    /// Issues a code and queues its mail, in the caller's transaction, unless the account
    /// had `per_hour` codes for this purpose in the last hour. Returns whether it issued.
    pub fn send_code_in(
        tx: &mut dyn WriteTx,
        user_id: u64,
        purpose: Purpose,
        (record, mail): (&CodeRecord, &OutgoingMail),
        now: u64,
        per_hour: u32,
    ) -> Result<bool, DomainError> {
        if !tx.issue_code(user_id, purpose.as_str(), record, now, per_hour)? {
            return Ok(false);
        }
        mail.enqueue_in(tx, now)?;
        Ok(true)
    }

    /// Codes each account may be sent per purpose and hour.
    pub fn per_hour(&self) -> u32 {
        self.config.accounts.codes_per_hour
    }

    async fn send_code(&self, user: User, purpose: Purpose) -> Result<(), DomainError> {
        let (record, mail) = self.code_and_mail(&user, purpose)?;
        let (now, per_hour) = (self.clock.now_ms(), self.per_hour());
        let sent = self
            .store
            .write(move |tx| {
                Self::send_code_in(tx, user.id, purpose, (&record, &mail), now, per_hour)
            })
            .await?;
        if sent {
            self.outbox.queued();
        }
        Ok(())
    }

    fn link(&self, path: &str, email: &str, code: &str) -> String {
        let base = self.config.mail.public_url.clone().unwrap_or_default();
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("email", email)
            .append_pair("code", code)
            .finish();
        format!("{}{path}?{query}", base.trim_end_matches('/'))
    }

    fn verification_mail(&self, user: &User, code: &str) -> OutgoingMail {
        let to = user.email.clone().unwrap_or_default();
        OutgoingMail {
            subject: format!("Your {} verification code: {code}", self.config.server_id),
            body: format!(
                "Hello {},\n\nyour code to verify this e-mail address on {} is {code}.\n\
                 Or open: {}\n\nIt expires in 10 minutes. If you did not sign up, ignore this mail.\n",
                user.name,
                self.config.server_id,
                self.link("/email/verify", &to, code)
            ),
            to,
        }
    }

    fn reset_mail(&self, user: &User, code: &str) -> OutgoingMail {
        OutgoingMail {
            to: user.email.clone().unwrap_or_default(),
            subject: format!("Your {} password reset code: {code}", self.config.server_id),
            body: format!(
                "Hello {},\n\nyour code to set a new password on {} is {code}.\n\
                 It expires in 10 minutes. If you did not ask for it, ignore this mail.\n",
                user.name, self.config.server_id
            ),
        }
    }

    fn checker(&self) -> CodeChecker {
        CodeChecker {
            key: self.key.clone(),
            comparisons: self.comparisons.clone(),
            now: self.clock.now_ms(),
        }
    }

    async fn local_user(&self, email: String) -> Result<Option<User>, DomainError> {
        self.store
            .read(move |tx| Ok(tx.user_by_email(&email)?))
            .await
    }

    /// Sends a password reset code. Answers the same whether or not the account exists.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), DomainError> {
        let email = canonical_email("email", email)?;
        if let Some(user) = self.local_user(email).await? {
            self.send_code(user, Purpose::ResetPassword).await?;
        }
        Ok(())
    }

    /// Sets a new password with a reset code. Revokes every session and signs nobody in.
    /// The code is checked before the new password is hashed, and an unknown address costs
    /// the same check and gets the same answer as a wrong code.
    pub async fn reset_password(
        &self,
        email: &str,
        code: &str,
        new_password: &str,
    ) -> Result<(), DomainError> {
        let email = canonical_email("email", email)?;
        check_format(code)?;
        let password = passwords::validate("new_password", new_password)?;
        let Some(user) = self.local_user(email).await? else {
            self.checker().check_nobody(code)?;
            return Err(bad_code());
        };
        let (checker, code) = (self.checker(), code.to_owned());
        let (id, text) = (user.id, code.clone());
        let address = user.email.clone().unwrap_or_default();
        let good = self
            .store
            .write(move |tx| checker.check_in(tx, id, Purpose::ResetPassword, &text, false))
            .await?;
        if !good {
            return Err(bad_code());
        }
        let hash = self.hasher.hash(password).await?;
        let (given, now) = (
            mac(&self.key, user.id, Purpose::ResetPassword, &code)?,
            self.clock.now_ms(),
        );
        let done = ResetDone {
            to: address.clone(),
            name: user.name.clone(),
            server: self.config.server_id.to_string(),
        };
        let revoked = self
            .store
            .write(move |tx| {
                // The code is used here, with the change it allows: a parallel reset with
                // the same code finds it gone.
                if !tx.take_code(id, Purpose::ResetPassword.as_str(), &given, now)? {
                    return Ok(None);
                }
                tx.set_password_hash(id, &hash)?;
                tx.clear_sign_in_throttle(&address)?;
                let revoked = tx.delete_all_sessions_of(id, None)?;
                // Personal access tokens survive a reset (as on code hosts); the mail
                // lists the live ones so the owner can revoke any they do not know.
                let live: Vec<_> = tx
                    .access_tokens_of(id)?
                    .into_iter()
                    .filter(|t| t.expires_at > now)
                    .collect();
                let factor = tx.second_factor(id)?.is_some_and(|f| f.enabled);
                done.with_tokens(&live, factor).enqueue_in(tx, now)?;
                Ok::<_, DomainError>(Some(revoked))
            })
            .await?
            .ok_or_else(bad_code)?;
        self.revocations.announce(&revoked);
        self.outbox.queued();
        tracing::info!(target: "hearth::audit", event = "password_reset", user = id, sessions_revoked = revoked.len());
        Ok(())
    }

    /// Marks an e-mail address verified with its code.
    pub async fn verify_email(&self, email: &str, code: &str) -> Result<(), DomainError> {
        let email = canonical_email("email", email)?;
        check_format(code)?;
        let Some(user) = self.local_user(email.clone()).await? else {
            return self.confirm_email_change(email, code).await;
        };
        let (checker, code) = (self.checker(), code.to_owned());
        let sessions = self
            .store
            .write(move |tx| {
                if !checker.check_in(tx, user.id, Purpose::VerifyEmail, &code, true)? {
                    return Ok(None);
                }
                tx.set_email_verified(user.id)?;
                let ids: Vec<u64> = tx.sessions_of(user.id)?.iter().map(|s| s.id).collect();
                Ok::<_, DomainError>(Some(ids))
            })
            .await?
            .ok_or_else(bad_code)?;
        // Cached sessions of an unverified account become usable now, on every node.
        self.revocations.announce(&sessions);
        let hooks = self
            .verified
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for hook in hooks {
            hook(user.id);
        }
        Ok(())
    }

    /// Moves the account waiting for `email` there, with the code mailed to it (ChangeEmail).
    /// The code is checked and the address moved in one write: a code for another address,
    /// or an address taken meanwhile, moves nothing.
    async fn confirm_email_change(&self, email: String, code: &str) -> Result<(), DomainError> {
        let pending = email.clone();
        let user = self
            .store
            .read(move |tx| Ok::<_, DomainError>(tx.user_by_pending_email(&pending)?))
            .await?;
        let Some(id) = user else {
            self.checker().check_nobody(code)?;
            return Err(bad_code());
        };
        let (checker, code) = (self.checker(), code.to_owned());
        let moved = self
            .store
            .write(move |tx| {
                if !checker.check_in(tx, id, Purpose::ChangeEmail, &code, true)? {
                    return Ok(false);
                }
                Ok::<_, DomainError>(tx.confirm_email_change(id, &email)?)
            })
            .await?;
        if !moved {
            return Err(bad_code());
        }
        tracing::info!(target: "hearth::audit", event = "email_changed", user = id);
        Ok(())
    }

    /// Sends a new verification code to `email`, or to the caller's address when `email` is
    /// absent. Answers the same whether or not the account exists or is already verified.
    pub async fn resend_verification(
        &self,
        email: Option<&str>,
        caller: Option<&Principal>,
    ) -> Result<(), DomainError> {
        let user = match (email.filter(|e| !e.is_empty()), caller) {
            (Some(e), _) => self.local_user(canonical_email("email", e)?).await?,
            (None, Some(p)) => {
                let id = p.user_id;
                self.store
                    .read(move |tx| Ok::<_, DomainError>(tx.user(id)?))
                    .await?
            }
            (None, None) => {
                return Err(DomainError::invalid(
                    "email",
                    "is required when not signed in",
                ));
            }
        };
        if let Some(user) = user.filter(|u| !u.email_verified && u.email.is_some()) {
            self.send_code(user, Purpose::VerifyEmail).await?;
        }
        Ok(())
    }
}

/// The mail that confirms a password reset.
struct ResetDone {
    to: String,
    name: String,
    server: String,
}

impl ResetDone {
    /// The confirmation, listing the personal access tokens that still work, and saying
    /// that a second factor (`factor`) stays on.
    fn with_tokens(&self, live: &[super::model::AccessToken], factor: bool) -> OutgoingMail {
        let tokens = match live {
            [] => "Your account has no personal access tokens.\n".to_owned(),
            _ => {
                let mut text = String::from(
                    "These personal access tokens still work (a reset keeps them). If you do not \n\
                     know one, revoke it: sign in and call ForceTokenExpiration with its uuid, or \n\
                     ask the operator (`hearth token revoke UUID`).\n\n",
                );
                for t in live.iter().take(100) {
                    text.push_str(&format!(
                        "- {} ({}): {}; expires {}\n",
                        super::validate::printable(&t.name, 64),
                        t.uuid,
                        t.scopes.names().join(", "),
                        crate::clock::rfc3339(t.expires_at)
                    ));
                }
                text
            }
        };
        let factor = match factor {
            true => {
                "Your second factor stays on: sign in with the new password and a code from \n\
                     your authenticator app (or a recovery code).\n\n"
            }
            false => "",
        };
        OutgoingMail {
            to: self.to.clone(),
            subject: format!("Your {} password was changed", self.server),
            body: format!(
                "Hello {},\n\nthe password of your account on {} was just changed with a reset \
                 code, and every session was signed out.\n\n{factor}{tokens}\n\
                 If you did not do this, reset your password again at once.\n",
                self.name, self.server
            ),
        }
    }
}
