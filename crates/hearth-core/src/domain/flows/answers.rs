//! What a filled form does: charges the client's budgets as the matching RPC would, runs
//! the account service the step stands for (sign in, the second factor, register, verify,
//! reset), and returns how the flow changes.
use zeroize::Zeroizing;

use super::steps::{At, Filled};
use super::{as_field, moved_on, Change, FlowState, Flows};
use crate::domain::accounts::SignUp;
use crate::domain::passkeys::Assertion;
use crate::domain::second_factor::Second;
use crate::domain::{DomainError, RequestContext};

impl Flows {
    /// Takes what the form at `here` costs from the client's budgets, in one write:
    /// sign-in, register and a new password hash one (sign-in is a sign-in attempt too);
    /// the reset form mails. Resubmitting a form on one flow is then limited as calling
    /// SignIn, SignUp or ResetPassword is.
    async fn charge(&self, here: &At, ctx: &RequestContext) -> Result<(), DomainError> {
        use crate::domain::rate_limit::{HASHING, MAIL, SIGN_IN};
        let Some(ip) = ctx.ip else { return Ok(()) };
        let classes: &[(&str, u32)] = match here {
            At::Login | At::SecondFactor { .. } => &[
                (HASHING, self.hashing_budget),
                (SIGN_IN, self.sign_in_budget),
            ],
            At::Register | At::ResetCode { .. } => &[(HASHING, self.hashing_budget)],
            At::ResetEmail => &[(MAIL, self.mail_budget)],
            _ => return Ok(()),
        };
        self.limiter.charge(ip, classes).await
    }

    /// Runs the service a form answer asks for; returns how the flow changes.
    pub(super) async fn run(
        &self,
        id: &str,
        here: &At,
        s: &FlowState,
        input: Input,
        ctx: &RequestContext,
    ) -> Result<Change, DomainError> {
        self.charge(here, ctx).await?;
        let form = match (input, here) {
            (Input::Passkey(a), At::SecondFactor { proof, .. }) => {
                let signed = self
                    .accounts
                    .sign_in_with_proof(proof, Second::Passkey(a), ctx)
                    .await?;
                return Ok(done(signed));
            }
            (Input::Form(form), _) => form,
            (Input::Passkey(_), _) => return Err(moved_on()),
        };
        Ok(match here {
            At::Login => {
                let signed = self
                    .accounts
                    .sign_in_or_proof(&form.text("email"), &form.secret("password"), None, ctx)
                    .await?;
                match signed {
                    Ok(signed) => done(signed),
                    // The account has a second factor: ask for its code next (StepBack
                    // returns to the password).
                    Err(proof) => {
                        let handoff = match proof.passkey {
                            true => Some(self.hand_over(id).await?),
                            false => None,
                        };
                        Box::new(move |s| {
                            s.history.push(At::SecondFactor {
                                proof: proof.clone(),
                                handoff: handoff.clone(),
                            })
                        })
                    }
                }
            }
            At::SecondFactor { proof, .. } => {
                let code = Second::Code(form.text("totp"));
                let signed = self.accounts.sign_in_with_proof(proof, code, ctx).await?;
                done(signed)
            }
            At::Register => {
                let name =
                    crate::domain::validate::display_name("username", &form.text("username"))?;
                let req = SignUp {
                    email: Some(form.text("email")),
                    password: Some(form.secret("password")),
                    name: Some(name),
                    invite_code: self.invite_mode.then(|| form.text("invite")),
                    guest: s.guest,
                };
                let signed = self
                    .accounts
                    .sign_up(req, ctx)
                    .await
                    .map_err(|e| as_field(e, "invite_code", "invite"))?;
                let (user_id, token) = (signed.user.id, signed.token.expose().to_owned());
                let email = signed.user.email.clone().unwrap_or_default();
                let next = match self.require_verification {
                    true => {
                        let sh = &self.shared;
                        sh.waiting
                            .put(&user_id.to_string(), id.to_owned(), sh.lifetime_ms)
                            .await?;
                        At::VerifyCode { user_id, email }
                    }
                    false => At::Done { user_id },
                };
                Box::new(move |s| {
                    // The account exists now: there is no going back to the form.
                    s.history = vec![next.clone()];
                    s.token = Some(Zeroizing::new(token.clone()));
                })
            }
            At::ResetEmail => {
                let email = form.text("email");
                self.codes.request_password_reset(&email).await?;
                Box::new(move |s| {
                    s.history.push(At::ResetCode {
                        email: email.clone(),
                    })
                })
            }
            At::ResetCode { email } => {
                self.codes
                    .reset_password(email, &form.text("code"), &form.secret("new-password"))
                    .await
                    .map_err(|e| as_field(e, "new_password", "new-password"))?;
                // A reset never logs in: back to the login form, with a note.
                Box::new(|s| {
                    s.history = vec![At::Initial, At::Login];
                    s.message = Some(
                        "your password was changed and every session signed out; sign in with the new one"
                            .into(),
                    );
                })
            }
            At::VerifyCode { user_id, email } => {
                let code = form.text("code");
                let user_id = *user_id;
                if code.trim().is_empty() {
                    let email = email.clone();
                    return Ok(Box::new(move |s| {
                        s.history.push(At::VerifyWait {
                            user_id,
                            email: email.clone(),
                        })
                    }));
                }
                // This answer completes the flow, not the verification hook.
                let (sh, key) = (&self.shared, user_id.to_string());
                sh.waiting.put(&key, String::new(), 0).await?;
                let verified = self.codes.verify_email(email, code.trim()).await;
                if verified.is_err() {
                    sh.waiting.put(&key, id.to_owned(), sh.lifetime_ms).await?;
                }
                verified?;
                Box::new(move |s| s.history = vec![At::Done { user_id }])
            }
            _ => return Err(moved_on()),
        })
    }
}

/// What answers a step: a filled form, or (the second factor) a passkey's assertion.
pub(super) enum Input {
    Form(Filled),
    Passkey(Box<Assertion>),
}

/// The change that ends a flow with `signed`'s session.
fn done(signed: crate::domain::accounts::SignedIn) -> Change {
    let (user_id, token) = (signed.user.id, signed.token.expose().to_owned());
    Box::new(move |s| {
        s.history = vec![At::Done { user_id }];
        s.token = Some(Zeroizing::new(token.clone()));
    })
}
