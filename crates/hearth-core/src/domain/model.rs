//! The domain's own model types: what the services read and write through the store seam,
//! and what `api/` converts to wire messages. No driver or transport types here.
use super::scopes::ScopeSet;

/// A user: a local account, a guest, or a foreign (federated) user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    /// Lower-cased e-mail; `None` for guests and foreign users.
    pub email: Option<String>,
    pub name: String,
    /// argon2id PHC string; `None` when the account has no password.
    pub password_hash: Option<String>,
    /// Whether the e-mail address was verified.
    pub email_verified: bool,
    /// For a foreign user: the home server and the user's id there.
    pub home: Option<(String, u64)>,
    /// An operator disabled the account: it cannot sign in.
    pub disabled: bool,
    /// Creation time (unix ms).
    pub created_at: u64,
}

/// Changes an account holder asked for that wait (none: both `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// A new e-mail address, until the code mailed to it is used.
    pub pending_email: Option<String>,
    /// When the account is deleted (unix ms), until the holder cancels.
    pub delete_at: Option<u64>,
}

/// An account's second factor as stored: a TOTP secret (sealed by the domain, never
/// stored in the clear) and its recovery codes (only their MACs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondFactor {
    /// The TOTP secret, sealed (`domain/second_factor.rs`).
    pub sealed_secret: Vec<u8>,
    /// Confirmed with a first code; before that, a setup in progress that signs nobody in.
    pub enabled: bool,
    /// The last TOTP time step accepted: a code is accepted once.
    pub last_step: u64,
    /// The recovery codes as the domain encodes them (a MAC and a used flag each).
    pub recovery: Vec<u8>,
}

/// A passkey (WebAuthn credential) of an account, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    pub id: u64,
    pub user_id: u64,
    /// The credential id the authenticator names it by (unique across accounts).
    pub credential_id: Vec<u8>,
    /// The holder's name for it ("laptop").
    pub name: String,
    /// The public key, counter and flags as webauthn-rs serialises them (`domain/passkeys`).
    pub data: String,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
}

/// Facts about the client that opened a session, from request metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// `x-client-id`
    pub client_id: u32,
    /// `x-device-type`
    pub device_type: String,
    /// `x-device-version`
    pub device_version: String,
    /// `x-app-name` (or `user-agent`)
    pub app_name: String,
    /// `x-app-version`
    pub app_version: String,
}

/// What the credential check reads of a session: its token's hot path loads nothing else
/// (no device strings), which makes a cache miss about a tenth cheaper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCredential {
    /// The session's id.
    pub id: u64,
    pub user_id: u64,
    /// Last use (unix ms).
    pub last_active: u64,
    /// Absolute expiry (unix ms).
    pub expires_at: u64,
    /// What the session may do.
    pub scopes: ScopeSet,
}

/// A session. Only the SHA-256 of its bearer token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: u64,
    pub user_id: u64,
    /// SHA-256 of the bearer token.
    pub token_hash: [u8; 32],
    /// Client facts.
    pub device: DeviceFacts,
    /// Sign-in time (unix ms).
    pub created_at: u64,
    /// Last use (unix ms), written at most once a minute.
    pub last_active: u64,
    /// Absolute expiry (unix ms).
    pub expires_at: u64,
    /// What the session may do: every scope when made by signing in, a personal access
    /// token's scopes when made from one.
    pub scopes: ScopeSet,
    /// The personal access token it was made from (TokenAuthorization); it ends with it.
    pub access_token_id: Option<u64>,
    /// How it was made (RFC 8176 values, space-separated: `pwd`, `pwd otp`, `pwd recovery`,
    /// `federated`, `oidc`, `token`, `operator`; empty for sessions older than the record).
    pub amr: String,
}

/// A revocation notice waiting in the outbox (DESIGN.md §4.7): `home_session` of local user
/// `user_id` ended, and `peer` holds sessions made from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotice {
    pub id: u64,
    pub peer: String,
    pub user_id: u64,
    pub home_session: u64,
    /// When the session ended (unix ms).
    pub created_at: u64,
    /// Failed deliveries so far.
    pub attempts: u32,
}

/// A personal access token. Only the SHA-256 of its value is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// Snowflake id (what revocation notices name).
    pub id: u64,
    /// The id clients see (a random UUID); kept when the value is regenerated.
    pub uuid: String,
    pub user_id: u64,
    /// The owner's name for it.
    pub name: String,
    /// SHA-256 of the current value.
    pub token_hash: [u8; 32],
    /// What it may do.
    pub scopes: ScopeSet,
    /// Creation time (unix ms).
    pub created_at: u64,
    /// Expiry (unix ms).
    pub expires_at: u64,
    /// Last use (unix ms), written at most once a minute.
    pub last_used_at: Option<u64>,
    /// The client IP of that use.
    pub last_used_ip: Option<String>,
}

/// What an invite leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteTarget {
    /// Friendship with the creator.
    User,
    /// Membership of a group.
    Group,
    /// Membership of a community.
    Community,
    /// An account on this node (SignUp's `invite_code`).
    Registration,
}

impl InviteTarget {
    /// How the store names it.
    pub fn as_str(self) -> &'static str {
        match self {
            InviteTarget::User => "user",
            InviteTarget::Group => "group",
            InviteTarget::Community => "community",
            InviteTarget::Registration => "registration",
        }
    }

    /// The target named `s` by [`InviteTarget::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::User, Self::Group, Self::Community, Self::Registration]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// An invite. Only the SHA-256 of its code is kept, with the code's first characters
/// (`hint`) so its creator can tell invites apart in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub id: u64,
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// The code's first characters.
    pub hint: String,
    /// Who made it (0: the operator, from the CLI).
    pub creator_id: u64,
    /// What using it does.
    pub target: InviteTarget,
    /// The user, group or community (0 for a registration invite).
    pub target_id: u64,
    /// Uses allowed (`None`: unlimited).
    pub max_uses: Option<u32>,
    /// Uses so far.
    pub uses: u32,
    /// Expiry (unix ms).
    pub expires_at: u64,
    /// When it was revoked (unix ms).
    pub revoked_at: Option<u64>,
    /// Creation time (unix ms).
    pub created_at: u64,
}

/// A group (a chat) with members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: u64,
    pub name: String,
    /// Owner's user id.
    pub owner: u64,
    /// Members (at most [`Group::MEMBERS_SHOWN`] are read).
    pub members: Vec<u64>,
}

impl Group {
    /// Members read with a group (previews show no more).
    pub const MEMBERS_SHOWN: u32 = 100;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Community {
    pub id: u64,
    pub name: String,
    /// Owner's user id.
    pub owner: u64,
}

/// A stored e-mail code: its HMAC, expiry and remaining tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// HMAC of the code.
    pub mac: [u8; 32],
    /// Expiry (unix ms).
    pub expires_at: u64,
    /// Wrong tries still allowed.
    pub tries_left: u32,
}

/// Another node this one knows: its pinned key and link state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peer {
    /// Canonical server_id.
    pub server_id: String,
    pub pinned_key: Option<[u8; 32]>,
    /// The key before the last accepted rotation, and when it was retired.
    pub previous_key: Option<([u8; 32], u64)>,
    /// Static route.
    pub url: Option<String>,
    /// The operator asked for a link.
    pub linked: bool,
    /// new | linked | down | refused | unlinked
    pub state: String,
    /// Why the last link attempt failed.
    pub last_error: Option<String>,
    /// When our peer token at that node expires.
    pub link_expires_at: Option<u64>,
    /// Last change (unix ms).
    pub updated_at: u64,
}

/// A mail in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub id: u64,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// Queued at (unix ms).
    pub created_at: u64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Sent at (unix ms), once sent.
    pub sent_at: Option<u64>,
    /// Last delivery error.
    pub last_error: Option<String>,
}

/// One of this node's key rotations: the old key's signature over the new key and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    /// The retired key.
    pub old_key: [u8; 32],
    /// The key that replaced it.
    pub new_key: [u8; 32],
    /// When (unix ms).
    pub at: u64,
    /// The old key's signature.
    pub sig: Vec<u8>,
}

/// One row of the sign-in throttle: an (address, client) pair, or the address account-wide
/// (client `*`). The default row is no row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleRow {
    /// Consecutive failures.
    pub failures: u32,
    /// No attempt before this (unix ms).
    pub locked_until: Option<u64>,
    /// Attempts being evaluated now (a client row only).
    pub in_flight: u32,
    /// When the oldest of them began (unix ms).
    pub in_flight_since: Option<u64>,
}

/// The answer of the sign-in gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInGate {
    /// The attempt holds one of its (address, client) in-flight slots and may run; finish it with
    /// `throttle::finish_in`.
    Allowed,
    /// Too many attempts for this account are being evaluated right now; nothing was
    /// counted. Try again when one finishes.
    Busy,
    /// The address (or this client of it) may not try before `until`; nothing was counted.
    Locked {
        /// Consecutive failures so far.
        failures: u32,
        /// Unix ms.
        until: u64,
    },
}

/// The policy the sign-in gate applies (`domain/throttle/`), inside the write that holds
/// the rows it reads; once it was passed to the store, so the rule ran inside its
/// atomic operations; [`LockPolicy::locked_until`] is the rule itself, which every backend
/// must match (the conformance suite checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockPolicy {
    /// Failures allowed before delays start.
    pub free_failures: u32,
    /// The first delay (ms); each further failure doubles it.
    pub base_delay_ms: u64,
    /// The longest progressive delay (ms).
    pub max_delay_ms: u64,
    /// Consecutive failures, from any client, that lock the account.
    pub lock_after: u32,
    /// How long a lock lasts (ms).
    pub lock_ms: u64,
    /// An in-flight count older than this (ms) is a leftover of a crash and is ignored.
    pub stale_in_flight_ms: u64,
}

impl LockPolicy {
    /// Attempts that may be evaluated at once after `failures` consecutive failures: the
    /// free failures left, and at least one. So at most `free_failures` are ever evaluated
    /// before the first delay, however many arrive in parallel.
    pub fn slots(&self, failures: u32) -> u32 {
        self.free_failures.saturating_sub(failures).max(1)
    }

    /// When a client may try an address again after its `failures`-th consecutive failure
    /// at `now`: free failures first, then a delay doubling up to the longest.
    pub fn delay_until(&self, failures: u32, now: u64) -> Option<u64> {
        if failures < self.free_failures {
            return None;
        }
        let step = (failures - self.free_failures).min(20);
        Some(now + (self.base_delay_ms << step).min(self.max_delay_ms))
    }

    /// When the account may try again after its `failures`-th consecutive failure at `now`
    /// (the client's delay, or the account-wide lock from `lock_after` on).
    pub fn locked_until(&self, failures: u32, now: u64) -> Option<u64> {
        if failures >= self.lock_after {
            return Some(now + self.lock_ms);
        }
        self.delay_until(failures, now)
    }
}
