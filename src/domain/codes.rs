//! E-mail codes (DESIGN.md §3): 8 digits, stored as an HMAC bound to user and purpose,
//! single use, short-lived, dead after 5 wrong tries. Checking a code happens inside the
//! writer's transaction, so parallel guesses are evaluated one at a time and at most 5 are
//! ever compared. Also the flows that use codes: e-mail verification and password reset.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::accounts::canonical_email;
use super::{passwords, Domain, DomainError, Principal};
use crate::store::codes::{self, CodeRow};
use crate::store::outbox;
use crate::store::users::{self, UserRow};

/// How long a code lives.
pub const CODE_TTL_MS: u64 = 10 * 60 * 1000;
/// Wrong tries before a code dies.
pub const MAX_TRIES: u32 = 5;
/// The one message for a wrong, used, expired or unknown code.
pub const BAD_CODE: &str = "code: the code is wrong, used or expired; ask for a new one";

/// What a code is for; a code for one purpose never works for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Prove the e-mail address.
    VerifyEmail,
    /// Set a new password.
    ResetPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
        }
    }
}

/// A mail to queue in the outbox, in the same transaction as the state it reports.
#[derive(Debug)]
pub(crate) struct OutgoingMail {
    to: String,
    subject: String,
    body: String,
}

impl OutgoingMail {
    pub(crate) fn enqueue_in(
        &self,
        tx: &rusqlite::Connection,
        now: u64,
    ) -> Result<(), DomainError> {
        Ok(outbox::enqueue(
            tx,
            &self.to,
            &self.subject,
            &self.body,
            now,
        )?)
    }
}

fn mac(key: &[u8], user_id: u64, purpose: Purpose, code: &str) -> Result<[u8; 32], DomainError> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|e| DomainError::Internal(format!("e-mail code key: {e}")))?;
    m.update(format!("{user_id}\n{}\n{code}", purpose.as_str()).as_bytes());
    Ok(m.finalize().into_bytes().into())
}

enum Check {
    Good,
    Wrong,
}

/// What checking a code needs inside the writer's transaction: the HMAC key and the
/// counter of comparisons (tests read it to prove at most 5 guesses are ever compared).
struct CodeChecker {
    key: Zeroizing<Vec<u8>>,
    comparisons: Arc<AtomicU64>,
    now: u64,
}

impl CodeChecker {
    /// A wrong code spends a try and is committed (so the caller must still return an
    /// error); a good one is deleted. Expired or exhausted codes are deleted unread.
    fn check_in(
        &self,
        tx: &rusqlite::Connection,
        user_id: u64,
        purpose: Purpose,
        code: &str,
    ) -> Result<Check, DomainError> {
        let Some(row) = codes::get(tx, user_id, purpose.as_str())? else {
            return Ok(Check::Wrong);
        };
        if row.expires_at <= self.now || row.tries_left == 0 {
            codes::delete(tx, user_id, purpose.as_str())?;
            return Ok(Check::Wrong);
        }
        self.comparisons.fetch_add(1, Ordering::Relaxed);
        if bool::from(mac(&self.key, user_id, purpose, code)?.ct_eq(&row.mac)) {
            codes::delete(tx, user_id, purpose.as_str())?;
            Ok(Check::Good)
        } else {
            codes::spend_try(tx, user_id, purpose.as_str())?;
            Ok(Check::Wrong)
        }
    }
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

impl Domain {
    /// A fresh code and the row that stores it.
    pub(crate) fn new_code(
        &self,
        user_id: u64,
        purpose: Purpose,
    ) -> Result<(Zeroizing<String>, CodeRow), DomainError> {
        let code = Zeroizing::new(format!(
            "{:08}",
            rand::rngs::OsRng.gen_range(0..100_000_000u32)
        ));
        let row = CodeRow {
            mac: mac(&self.code_key, user_id, purpose, &code)?,
            expires_at: self.clock.now_ms() + CODE_TTL_MS,
            tries_left: MAX_TRIES,
        };
        Ok((code, row))
    }

    /// A fresh code for `purpose` and the mail that carries it to `user`.
    pub(crate) fn code_and_mail(
        &self,
        user: &UserRow,
        purpose: Purpose,
    ) -> Result<(CodeRow, OutgoingMail), DomainError> {
        let (code, row) = self.new_code(user.id, purpose)?;
        let mail = match purpose {
            Purpose::VerifyEmail => self.verification_mail(user, &code),
            Purpose::ResetPassword => self.reset_mail(user, &code),
        };
        Ok((row, mail))
    }

    /// Stores a code and queues its mail, in the caller's transaction.
    pub(crate) fn send_code_in(
        tx: &rusqlite::Connection,
        user_id: u64,
        purpose: Purpose,
        row: &CodeRow,
        mail: &OutgoingMail,
        now: u64,
    ) -> Result<(), DomainError> {
        codes::put(tx, user_id, purpose.as_str(), row)?;
        mail.enqueue_in(tx, now)
    }

    /// Issues a code for `purpose` and queues its mail, in one transaction.
    async fn send_code(&self, user: UserRow, purpose: Purpose) -> Result<(), DomainError> {
        let (row, mail) = self.code_and_mail(&user, purpose)?;
        let now = self.clock.now_ms();
        self.store
            .write(move |tx| Self::send_code_in(tx, user.id, purpose, &row, &mail, now))
            .await?;
        self.mail_wakeup.notify_one();
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

    fn verification_mail(&self, user: &UserRow, code: &str) -> OutgoingMail {
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

    fn reset_mail(&self, user: &UserRow, code: &str) -> OutgoingMail {
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

    fn code_checker(&self) -> CodeChecker {
        CodeChecker {
            key: self.code_key.clone(),
            comparisons: self.code_comparisons.clone(),
            now: self.clock.now_ms(),
        }
    }

    async fn local_user(&self, email: String) -> Result<Option<UserRow>, DomainError> {
        self.store
            .read(move |c| Ok(users::by_email(c, &email)?))
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
    pub async fn reset_password(
        &self,
        email: &str,
        code: &str,
        new_password: &str,
    ) -> Result<(), DomainError> {
        let email = canonical_email("email", email)?;
        check_format(code)?;
        let password = passwords::validate("new_password", new_password)?;
        let user = self
            .local_user(email)
            .await?
            .ok_or_else(|| DomainError::InvalidArgument {
                field: "code",
                message: BAD_CODE.into(),
            })?;
        let hash = self.hasher.hash(password).await?;
        let (checker, code) = (self.code_checker(), code.to_owned());
        let revoked = self
            .store
            .write(move |tx| {
                match checker.check_in(tx, user.id, Purpose::ResetPassword, &code)? {
                    Check::Wrong => Ok(None),
                    Check::Good => {
                        users::set_password_hash(tx, user.id, &hash)?;
                        users::clear_failures(tx, user.id)?;
                        Ok::<_, DomainError>(Some(Self::revoke_all_in(tx, user.id, None)?))
                    }
                }
            })
            .await?
            .ok_or_else(|| DomainError::invalid("code", BAD_CODE.trim_start_matches("code: ")))?;
        self.cache.invalidate_sessions(&revoked);
        Ok(())
    }

    /// Marks an e-mail address verified with its code.
    pub async fn verify_email(&self, email: &str, code: &str) -> Result<(), DomainError> {
        let email = canonical_email("email", email)?;
        check_format(code)?;
        let bad = || DomainError::invalid("code", BAD_CODE.trim_start_matches("code: "));
        let user = self.local_user(email).await?.ok_or_else(bad)?;
        let (checker, code) = (self.code_checker(), code.to_owned());
        let good = self
            .store
            .write(
                move |tx| match checker.check_in(tx, user.id, Purpose::VerifyEmail, &code)? {
                    Check::Wrong => Ok(false),
                    Check::Good => {
                        users::set_email_verified(tx, user.id)?;
                        Ok::<_, DomainError>(true)
                    }
                },
            )
            .await?;
        good.then_some(()).ok_or_else(bad)
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
            (None, Some(p)) => Some(self.user_of(p).await?),
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
