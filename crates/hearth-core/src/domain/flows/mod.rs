//! Harmony's step-by-step auth (protocol.auth.v1 BeginAuth, NextStep, StepBack,
//! StreamSteps): the server drives, a client renders [`steps::Step`]s. Every step reuses the
//! account services (sign-in throttling, enumeration rules and the password policy apply
//! unchanged). Flow state lives in short-lived state (bounded, expiring on the injected
//! clock, capped per client IP) and changes are announced through step feeds, so a shared
//! backend can hold flows and fan steps out across nodes. No lock is held across an await:
//! an answer that needs a service first claims the step (compare-and-set on the flow's
//! sequence number), then runs, then commits.
mod answers;
mod handoff;
mod quota;
pub mod steps;

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::watch;
use zeroize::Zeroizing;

use super::accounts::Accounts;
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
use crate::secret::random_base62;
use answers::Input;
use steps::{read_form, wrong_answer, Answer, At, Step, View};

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
    /// Prefixes a step's fallback path (`mail.public_url`).
    public_url: String,
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
            public_url: config
                .mail
                .public_url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
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
        let id = random_base62(FLOW_ID_LEN);
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
        step.fallback = step
            .fallback
            .map(|path| format!("{}{path}", self.public_url));
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
        self.not_busy(&s)?;
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
                Input::Form(read_form(title, fields, values)?)
            }
            (_, v) => return Err(wrong_answer(v)),
        };
        self.advance(id, s, here, form, ctx).await
    }

    /// Refuses while another answer to the step is being checked; returns the time now.
    fn not_busy(&self, s: &FlowState) -> Result<u64, DomainError> {
        let now = self.shared.clock.now_ms();
        if s.busy_since.is_some_and(|t| now < t + BUSY_STALE_MS) {
            return Err(DomainError::precondition(
                Reason::FlowBusy,
                "an answer to this step is being checked; wait for it (StreamSteps tells)",
            ));
        }
        Ok(now)
    }

    /// Claims the step, runs the service `input` asks for, then commits (or releases the
    /// claim); returns the step that follows.
    async fn advance(
        &self,
        id: &str,
        s: FlowState,
        here: At,
        input: Input,
        ctx: &RequestContext,
    ) -> Result<Step, DomainError> {
        let now = self.shared.clock.now_ms();
        let claimed = self
            .shared
            .commit(id, s.seq, move |s| s.busy_since = Some(now))
            .await?
            .ok_or_else(moved_on)?;
        let outcome = self.run(id, &here, &claimed, input, ctx).await;
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
