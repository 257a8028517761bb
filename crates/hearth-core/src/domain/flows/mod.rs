//! Harmony's step-by-step auth (protocol.auth.v1 BeginAuth, NextStep, StepBack,
//! StreamSteps): the server drives, a client renders [`steps::Step`]s. Every step reuses the
//! account services (sign-in throttling, enumeration rules and the password policy apply
//! unchanged). Flow state lives in short-lived state (bounded, expiring on the injected
//! clock, capped per client IP) and changes are announced through step feeds, so a shared
//! backend can hold flows and fan steps out across nodes. No lock is held across an await:
//! an answer that needs a service first claims the step (compare-and-set on the flow's
//! sequence number), then runs, then commits.
mod quota;
pub mod steps;

use std::net::IpAddr;
use std::sync::Arc;

use rand::Rng;
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::accounts::{Accounts, SignUp};
use super::codes::Codes;
use super::credentials::Credentials;
use super::error::Reason;
use super::principal::CredentialKind;
use super::rate_limit::RateLimiter;
use super::state::feeds::StepFeeds;
use super::state::shared_map::{self, SharedMap};
use super::state::StoreError;
use super::{DomainError, ErrorKind, RequestContext};
use crate::clock::SharedClock;
use crate::config::{Config, Registration};
use steps::{read_form, wrong_answer, Answer, At, Filled, Step, View};

/// Unfinished flows a node holds at most; when full, each client network gets a fair
/// share (see `quota.rs`).
pub const MAX_FLOWS: usize = 100_000;
/// Unfinished flows one client network (an IPv4 address, an IPv6 /64) may hold.
pub const MAX_PER_IP: u32 = 100;
/// A claim on a step older than this is a leftover and is ignored.
const BUSY_STALE_MS: u64 = 60_000;
/// A finished flow is kept this long (or until it expires), so late subscribers see it end.
const DONE_GRACE_MS: u64 = 60_000;

/// How an answered step changes its flow (applied when the answer commits).
/// Runs again if the write holding it runs again (a lost serialization race), so it is `Fn`.
type Change = Box<dyn Fn(&mut FlowState) + Send + Sync>;

/// One flow's state. Holds the session token of a finished (or verifying) flow, so its
/// `Debug` never prints it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct FlowState {
    history: Vec<At>,
    seq: u64,
    ip: Option<IpAddr>,
    guest: Option<u64>,
    token: Option<Zeroizing<String>>,
    busy_since: Option<u64>,
    expires_at: u64,
    message: Option<String>,
}

impl std::fmt::Debug for FlowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowState")
            .field("at", &self.history.last())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl FlowState {
    fn at(&self) -> &At {
        self.history.last().unwrap_or(&At::Initial)
    }
}

/// A flow's current step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The step.
    pub step: Step,
    /// The flow is done (the step is a session).
    pub done: bool,
}

/// What a StreamSteps subscriber watches.
#[derive(Debug)]
pub struct Subscription {
    /// The step now.
    pub first: Snapshot,
    /// Changes of the flow.
    pub changes: watch::Receiver<u64>,
    /// Becomes true when the node shuts down.
    pub drain: watch::Receiver<bool>,
}

/// A flow id: 22 base62 characters (about 131 bits).
const FLOW_ID_LEN: usize = 22;
const FLOW_ID_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether `id` has the shape of a flow id (checked before any state is touched).
fn is_flow_id(id: &str) -> bool {
    id.len() == FLOW_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn unknown_flow() -> DomainError {
    DomainError::new(
        ErrorKind::NotFound,
        Reason::FlowUnknown,
        "auth_id: no flow has this id: it expired, finished, or never existed; call BeginAuth",
    )
}

fn moved_on() -> DomainError {
    DomainError::precondition(
        Reason::FlowBusy,
        "another answer to this step came first; call NextStep without an answer for the current step",
    )
}

/// Names a service's refusal after the flow's field (the services name their own).
fn as_field(mut e: DomainError, from: &str, to: &'static str) -> DomainError {
    if e.field == Some(from) {
        e.field = Some(to);
    }
    e
}

/// The state a flow shares with the verification hook.
struct Shared {
    flows: Arc<dyn SharedMap<FlowState>>,
    feeds: Arc<dyn StepFeeds>,
    /// Which flow waits for the e-mail link of a user (by user id).
    waiting: Arc<dyn SharedMap<String>>,
    /// The unfinished flows each client network began, with their expiries, so flows that
    /// expired stop counting by themselves and a refused attempt renews none of them.
    quota: quota::FlowQuota,
    clock: SharedClock,
    lifetime_ms: u64,
}

impl Shared {
    fn ttl(&self, s: &FlowState) -> u64 {
        let left = s.expires_at.saturating_sub(self.clock.now_ms());
        match s.at() {
            At::Done { .. } => left.min(DONE_GRACE_MS),
            _ => left,
        }
    }

    /// Applies `change` to flow `id` if it is still at `seq`; announces it. Returns the new
    /// state, or `None` when the flow moved on or is gone.
    async fn commit(
        &self,
        id: &str,
        seq: u64,
        change: impl Fn(&mut FlowState) + Send + Sync + 'static,
    ) -> Result<Option<FlowState>, StoreError> {
        let out = Arc::new(std::sync::Mutex::new(None));
        let seen = out.clone();
        let changed = self
            .flows
            .modify(
                id,
                self.lifetime_ms,
                Box::new(move |s: &FlowState| {
                    if s.seq != seq {
                        return None;
                    }
                    let mut next = s.clone();
                    change(&mut next);
                    next.seq = seq + 1;
                    *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(next.clone());
                    Some(next)
                }),
            )
            .await?;
        let next = out.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(next) = next.filter(|_| changed) else {
            return Ok(None);
        };
        // `modify` stored it for the whole lifetime; a finished flow is kept briefly only.
        if matches!(next.at(), At::Done { .. }) {
            self.flows.put(id, next.clone(), self.ttl(&next)).await?;
            if let Some(ip) = next.ip {
                self.quota.release(ip, id);
            }
        }
        self.feeds.publish(id);
        Ok(Some(next))
    }

    /// The e-mail link of `user_id` was followed: a flow waiting for it is done.
    async fn verified(&self, user_id: u64) {
        // Unreadable state: the flow keeps waiting, and its code step still completes it.
        let Ok(Some(id)) = self.waiting.get(&user_id.to_string()).await else {
            return;
        };
        let Ok(Some(s)) = self.flows.get(&id).await else {
            return;
        };
        if matches!(s.at(), At::VerifyCode { user_id: u, .. } | At::VerifyWait { user_id: u, .. } if *u == user_id)
        {
            if let Err(e) = self
                .commit(&id, s.seq, move |s| s.history = vec![At::Done { user_id }])
                .await
            {
                tracing::warn!(error = %e, "a verified address could not complete its flow");
            }
        }
    }
}

/// The flows service.
pub struct Flows {
    shared: Arc<Shared>,
    accounts: Arc<Accounts>,
    codes: Arc<Codes>,
    credentials: Arc<Credentials>,
    invite_mode: bool,
    require_verification: bool,
    /// Charges a step to the budget of what it runs (argon2, a mail), as the RPC would be.
    limiter: RateLimiter,
    hashing_budget: u32,
    sign_in_budget: u32,
    mail_budget: u32,
    drain: watch::Sender<bool>,
}

impl std::fmt::Debug for Flows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flows").finish_non_exhaustive()
    }
}

impl Flows {
    /// The service over the node's flow maps and feeds; subscribes to e-mail verifications.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        flows: Arc<dyn SharedMap<FlowState>>,
        waiting: Arc<dyn SharedMap<String>>,
        feeds: Arc<dyn StepFeeds>,
        clock: SharedClock,
        config: &Config,
        accounts: Arc<Accounts>,
        codes: Arc<Codes>,
        credentials: Arc<Credentials>,
        limiter: RateLimiter,
    ) -> Self {
        let shared = Arc::new(Shared {
            flows,
            feeds,
            waiting,
            quota: quota::FlowQuota::new(MAX_FLOWS, MAX_PER_IP as usize),
            clock,
            lifetime_ms: config.flows.lifetime_secs * 1000,
        });
        let hook = shared.clone();
        codes.on_verified(Arc::new(move |user| {
            let hook = hook.clone();
            tokio::spawn(async move { hook.verified(user).await });
        }));
        Self {
            shared,
            accounts,
            codes,
            credentials,
            invite_mode: config.accounts.registration == Registration::Invite,
            require_verification: config.accounts.require_email_verification,
            limiter,
            hashing_budget: config.limits.hashing_calls_per_ip_per_minute,
            sign_in_budget: config.accounts.sign_ins_per_ip_per_minute,
            mail_budget: config.limits.mail_calls_per_ip_per_minute,
            drain: watch::channel(false).0,
        }
    }

    /// Starts a flow; with `guest_token`, finishing `register` upgrades that guest account.
    pub async fn begin(
        &self,
        guest_token: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<String, DomainError> {
        let guest = match guest_token.filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(self.guest(t, ctx).await?),
        };
        let sh = &self.shared;
        let id: String = {
            let mut rng = rand::rngs::OsRng;
            (0..FLOW_ID_LEN)
                .map(|_| FLOW_ID_ALPHABET[rng.gen_range(0..FLOW_ID_ALPHABET.len())] as char)
                .collect()
        };
        if let Some(ip) = ctx.ip {
            let now = sh.clock.now_ms();
            match sh.quota.admit(ip, &id, now, now + sh.lifetime_ms) {
                Ok(None) => {}
                Ok(Some(displaced)) => {
                    // The oldest flow of the network holding the most makes room.
                    shared_map::take(&*sh.flows, &displaced).await?;
                    sh.feeds.publish(&displaced);
                }
                Err(quota::Refused::OwnLimit) => {
                    return Err(DomainError::exhausted(
                        Reason::IpThrottled,
                        format!(
                            "{} has {MAX_PER_IP} unfinished flows; finish some or let them expire",
                            quota::network(ip)
                        ),
                    ))
                }
                Err(quota::Refused::FairShare) => {
                    return Err(DomainError::exhausted(
                        Reason::IpThrottled,
                        format!(
                            "this node holds its most unfinished flows and {} holds its share; \
                             finish some or let them expire",
                            quota::network(ip)
                        ),
                    ))
                }
            }
        }
        let state = FlowState {
            history: vec![At::Initial],
            seq: 0,
            ip: ctx.ip,
            guest,
            token: None,
            busy_since: None,
            expires_at: sh.clock.now_ms() + sh.lifetime_ms,
            message: None,
        };
        sh.flows.put(&id, state, sh.lifetime_ms).await?;
        Ok(id)
    }

    async fn guest(&self, token: &str, ctx: &RequestContext) -> Result<u64, DomainError> {
        let field = "for_guest_token";
        let p = self
            .credentials
            .resolve(token, ctx.ip)
            .await
            .map_err(|e| DomainError::invalid(field, e.message))?;
        let user = self.accounts.user_of(&p).await?;
        let is_guest = p.kind == CredentialKind::Session
            && user.email.is_none()
            && user.password_hash.is_none()
            && user.home.is_none();
        if !is_guest {
            return Err(DomainError::invalid(
                field,
                "is not the session of a guest account",
            ));
        }
        Ok(user.id)
    }

    fn render(&self, s: &FlowState) -> Snapshot {
        let mut step = s
            .at()
            .view(self.invite_mode, s.token.as_ref().map(|t| t.as_str()));
        step.message = s.message.clone();
        Snapshot {
            step,
            done: matches!(s.at(), At::Done { .. }),
        }
    }

    async fn load(&self, id: &str) -> Result<FlowState, DomainError> {
        self.shared.flows.get(id).await?.ok_or_else(unknown_flow)
    }

    /// The current step of flow `id`, if it still exists; an error when the flow state
    /// cannot be read (a flow is never "unknown" for that).
    pub async fn current(&self, id: &str) -> Result<Option<Snapshot>, StoreError> {
        let s = self.shared.flows.get(id).await?;
        Ok(s.map(|s| self.render(&s)))
    }

    /// Answers the current step; returns the step that follows (the current one again for
    /// [`Answer::Nothing`]).
    pub async fn next(
        &self,
        id: &str,
        answer: Answer,
        ctx: &RequestContext,
    ) -> Result<Step, DomainError> {
        let s = self.load(id).await?;
        let now = self.shared.clock.now_ms();
        if s.busy_since.is_some_and(|t| now < t + BUSY_STALE_MS) {
            return Err(DomainError::precondition(
                Reason::FlowBusy,
                "an answer to this step is being checked; wait for it (StreamSteps tells)",
            ));
        }
        let here = s.at().clone();
        let view = self.render(&s).step.view;
        let form = match (answer, &view) {
            (Answer::Nothing, _) => return Ok(self.render(&s).step),
            (Answer::Choice(c), View::Choice { title, options }) => {
                let c = c.trim();
                let to = match (&here, c) {
                    (At::Initial, "login") => At::Login,
                    (At::Initial, "register") => {
                        self.accounts.check_registration_allowed()?;
                        At::Register
                    }
                    (At::Initial, "other-options") => At::OtherOptions,
                    (At::OtherOptions, "reset-password") => At::ResetEmail,
                    _ => return Err(steps::not_offered(title, options, c)),
                };
                let next = self
                    .shared
                    .commit(id, s.seq, move |s| {
                        s.history.push(to.clone());
                        s.message = None;
                    })
                    .await?
                    .ok_or_else(moved_on)?;
                return Ok(self.render(&next).step);
            }
            (Answer::Form(values), View::Form { title, fields }) => {
                read_form(title, fields, values)?
            }
            (_, v) => return Err(wrong_answer(v)),
        };
        // Claim the step, run the service, then commit (or release the claim).
        let claimed = self
            .shared
            .commit(id, s.seq, move |s| s.busy_since = Some(now))
            .await?
            .ok_or_else(moved_on)?;
        let outcome = self.run(id, &here, &claimed, form, ctx).await;
        let (change, result): (Change, _) = match outcome {
            Ok(change) => (change, Ok(())),
            Err(e) => (Box::new(|_: &mut FlowState| {}), Err(e)),
        };
        let next = self
            .shared
            .commit(id, claimed.seq, move |s| {
                s.busy_since = None;
                change(s);
            })
            .await?;
        result?;
        // Moved on meanwhile (e.g. the e-mail link completed it): answer where it is now.
        match next {
            Some(n) => Ok(self.render(&n).step),
            None => self
                .current(id)
                .await?
                .map(|s| s.step)
                .ok_or_else(unknown_flow),
        }
    }

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
    async fn run(
        &self,
        id: &str,
        here: &At,
        s: &FlowState,
        form: Filled,
        ctx: &RequestContext,
    ) -> Result<Change, DomainError> {
        self.charge(here, ctx).await?;
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
                    Err(proof) => Box::new(move |s| {
                        s.history.push(At::SecondFactor {
                            proof: proof.clone(),
                        })
                    }),
                }
            }
            At::SecondFactor { proof } => {
                let signed = self
                    .accounts
                    .sign_in_with_proof(proof, &form.text("totp"), ctx)
                    .await?;
                done(signed)
            }
            At::Register => {
                let name = super::validate::display_name("username", &form.text("username"))?;
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

    /// Goes back one step where the current step allows it, never past the first.
    pub async fn back(&self, id: &str) -> Result<Step, DomainError> {
        let s = self.load(id).await?;
        let now = self.render(&s);
        if !now.step.can_go_back || s.history.len() < 2 {
            return Err(DomainError::precondition(
                Reason::StepNoBack,
                "this step cannot go back (the first step, a finished account, or a session)",
            ));
        }
        let next = self
            .shared
            .commit(id, s.seq, |s| {
                s.history.pop();
                s.message = None;
            })
            .await?
            .ok_or_else(moved_on)?;
        Ok(self.render(&next).step)
    }

    /// Subscribes to flow `id`: its current step, then its changes, until the node drains.
    pub async fn subscribe(&self, id: &str) -> Result<Subscription, DomainError> {
        let sh = &self.shared;
        // A made-up id makes no feed: its shape is checked, then that the flow exists. The
        // feed comes before the step that is sent first, so no change falls in between.
        if !is_flow_id(id) || self.current(id).await?.is_none() {
            return Err(unknown_flow());
        }
        let changes = sh.feeds.subscribe(id, sh.lifetime_ms);
        let first = self.current(id).await?.ok_or_else(unknown_flow)?;
        Ok(Subscription {
            first,
            changes,
            drain: self.drain.subscribe(),
        })
    }

    /// Ends every StreamSteps stream cleanly (the node is shutting down).
    pub fn drain(&self) {
        self.drain.send_replace(true);
    }
}

/// The change that ends a flow with `signed`'s session.
fn done(signed: crate::domain::accounts::SignedIn) -> Change {
    let (user_id, token) = (signed.user.id, signed.token.expose().to_owned());
    Box::new(move |s| {
        s.history = vec![At::Done { user_id }];
        s.token = Some(Zeroizing::new(token.clone()));
    })
}
