//! Cross-node login (DESIGN.md §4.6). `federate` signs a short-lived claim for a local user
//! and one target node; `login_federated` on that node checks policy, signature (with the
//! origin's pinned key, refetched once on failure), audience, time window and single-use
//! nonce (one atomic store operation), then signs in a foreign user kept apart from local
//! accounts.
use std::sync::Arc;

use rand::RngCore;

use super::peers::Peers;
use super::{CLOCK_SKEW_MS, TOKEN_MAX_MS};
use crate::clock::SharedClock;
use crate::domain::error::Reason;
use crate::domain::keyring::KeyRing;
use crate::domain::model::User;
use crate::domain::principal::Principal;
use crate::domain::sessions::Sessions;
use crate::domain::state::ids::IdAllocator;
use crate::domain::state::{Store, StoreError};
use crate::domain::validate::display_name;
use crate::domain::{DomainError, RequestContext};
use crate::identity::server_id::ServerId;
use crate::secret::BearerSecret;

/// The claims of a federation token (`protocol.auth.v1.TokenData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user's id on its home server.
    pub user_id: u64,
    /// The node the token is for (audience).
    pub server_id: String,
    /// The user's name.
    pub username: String,
    /// Avatar URL, if any.
    pub avatar: Option<String>,
    /// Issued at (unix ms).
    pub issued_at: u64,
    /// Expires at (unix ms).
    pub expires_at: u64,
    /// Random, single use.
    pub nonce: Vec<u8>,
    /// How the user's home session was made (RFC 8176 values).
    pub amr: Vec<String>,
    /// The home session (or personal access token) that signed it; 0 from nodes that do
    /// not say (their sessions are not bound).
    pub home_session_id: u64,
}

/// A signed federation token: `sig` is ed25519 over the exact `data` bytes.
#[derive(Debug, Clone)]
pub struct SignedToken {
    /// The encoded claims.
    pub data: Vec<u8>,
    /// The home node's signature.
    pub sig: Vec<u8>,
}

/// How long tokens from `federate` live.
pub const TOKEN_LIFETIME_MS: u64 = 2 * 60 * 1000;

fn server_id(field: &'static str, text: &str) -> Result<ServerId, DomainError> {
    ServerId::parse(text).map_err(|e| DomainError::invalid(field, e.to_string()))
}

/// The federation login service.
#[derive(Debug)]
pub struct FederationLogin {
    store: Store,
    clock: SharedClock,
    ids: Arc<dyn IdAllocator>,
    me: ServerId,
    keys: Arc<KeyRing>,
    peers: Arc<Peers>,
    sessions: Arc<Sessions>,
    require_second_factor: bool,
}

impl FederationLogin {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        clock: SharedClock,
        ids: Arc<dyn IdAllocator>,
        me: ServerId,
        keys: Arc<KeyRing>,
        peers: Arc<Peers>,
        sessions: Arc<Sessions>,
        require_second_factor: bool,
    ) -> Self {
        Self {
            require_second_factor,
            store,
            clock,
            ids,
            me,
            keys,
            peers,
            sessions,
        }
    }

    /// The other node named by `server_id`, if policy allows federating with it; this node's
    /// own name is refused with `self_message`.
    async fn other_node(&self, text: &str, self_message: &str) -> Result<ServerId, DomainError> {
        let node = server_id("server_id", text)?;
        if node == self.me {
            return Err(DomainError::invalid_because(
                "server_id",
                Reason::FederationSelf,
                self_message,
            ));
        }
        self.peers.check_policy(&node).await?;
        Ok(node)
    }

    /// Signs a token that lets the caller (a local user) log into `target`. `encode` turns
    /// the claims into the exact bytes to sign.
    pub async fn federate(
        &self,
        p: &Principal,
        target: &str,
        encode: impl FnOnce(&Claims) -> Vec<u8>,
    ) -> Result<SignedToken, DomainError> {
        let target = self
            .other_node(target, "that is this node; sign in here directly")
            .await?;
        let (id, session_id) = (p.user_id, p.session_id);
        let from_token = p.kind == crate::domain::principal::CredentialKind::PersonalAccessToken;
        let peer = target.to_string();
        // The grant is written with the signature's facts, while the credential is locked:
        // when it ends, the notice to `target` is queued in that same write (notices.rs).
        let (user, amr) = self
            .store
            .write(move |tx| {
                let amr = match from_token {
                    true => "token".to_owned(),
                    false => tx.session(session_id)?.map(|s| s.amr).unwrap_or_default(),
                };
                let Some(user) = tx.user(id)? else {
                    return Ok((None, amr));
                };
                if user.home.is_none() && !tx.grant_federation(session_id, from_token, &peer, id)? {
                    return Err(DomainError::unauthenticated(
                        Reason::SessionUnknown,
                        "this session ended; sign in again",
                    ));
                }
                Ok::<_, DomainError>((Some(user), amr))
            })
            .await?;
        let user = user.ok_or_else(|| {
            DomainError::unauthenticated(Reason::AccountGone, "the account no longer exists")
        })?;
        if let Some((home, _)) = &user.home {
            return Err(DomainError::denied(
                Reason::ForeignAccount,
                format!("only local accounts can federate; this account's home is {home}"),
            ));
        }
        let now = self.clock.now_ms();
        let mut nonce = vec![0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let claims = Claims {
            user_id: user.id,
            server_id: target.to_string(),
            username: user.name,
            avatar: None,
            issued_at: now,
            expires_at: now + TOKEN_LIFETIME_MS,
            nonce,
            amr: amr.split_whitespace().map(str::to_owned).collect(),
            home_session_id: session_id,
        };
        let data = encode(&claims);
        let sig = self.keys.current().node.sign(&data).to_vec();
        Ok(SignedToken { data, sig })
    }

    /// Logs in a user of `origin` with a token its home node signed for this node.
    pub async fn login_federated(
        &self,
        token: &SignedToken,
        origin: &str,
        decode: impl FnOnce(&[u8]) -> Result<Claims, String>,
        ctx: &RequestContext,
    ) -> Result<(BearerSecret, u64), DomainError> {
        let origin = self
            .other_node(
                origin,
                "that is this node; tokens from itself are not accepted",
            )
            .await?;
        let now = self.clock.now_ms();
        let hide = |e| for_anonymous_callers(&origin, e);
        let signed = |keys: &super::peers::PeerKeys| keys.verifies(&token.data, &token.sig, now);
        if !self.peers.keys_pass(&origin, signed).await.map_err(hide)? {
            return Err(DomainError::unauthenticated(Reason::TokenSignatureInvalid, format!(
                "the token's signature does not verify with {origin}'s key (tampered, or not from {origin})"
            )));
        }
        let claims = decode(&token.data).map_err(|e| DomainError::invalid("auth_token.data", e))?;
        let me = self.me.to_string();
        if claims.server_id != me {
            return Err(DomainError::denied(
                Reason::TokenAudienceMismatch,
                format!(
                    "this token is for {}, not for this node ({me})",
                    claims.server_id
                ),
            ));
        }
        if claims.issued_at > now + CLOCK_SKEW_MS {
            return Err(DomainError::unauthenticated(
                Reason::TokenNotYetValid,
                "the token was issued in the future; check both nodes' clocks",
            ));
        }
        if claims.expires_at <= claims.issued_at
            || claims.expires_at - claims.issued_at > TOKEN_MAX_MS
        {
            return Err(DomainError::unauthenticated(
                Reason::TokenLifetimeInvalid,
                "the token's lifetime is not between 0 and 5 minutes",
            ));
        }
        if now > claims.expires_at + CLOCK_SKEW_MS {
            return Err(DomainError::unauthenticated(
                Reason::TokenExpired,
                format!(
                    "the token expired {} s ago; ask the home server for a new one",
                    (now - claims.expires_at) / 1000
                ),
            ));
        }
        if !(16..=64).contains(&claims.nonce.len()) {
            return Err(DomainError::invalid(
                "auth_token.data.nonce",
                "must be 16 to 64 random bytes",
            ));
        }
        let second = ["otp", "recovery", "passkey"];
        if self.require_second_factor && !claims.amr.iter().any(|a| second.contains(&a.as_str())) {
            return Err(DomainError::unauthenticated(
                Reason::SecondFactorRequired,
                format!("this node admits only users who signed in at {origin} with a second factor: set one up there, sign in with it, then federate again"),
            ));
        }
        // Text from another node is held to the same rules as local names.
        let username = display_name("auth_token.data.username", &claims.username)?;
        let origin_name = origin.to_string();
        let name = format!("{username}@{origin_name}");
        let new_user = User {
            id: self.ids.next_id(),
            email: None,
            name: name.clone(),
            password_hash: None,
            email_verified: false,
            home: Some((origin_name.clone(), claims.user_id)),
            disabled: false,
            created_at: now,
        };
        // The foreign session keeps how its home session was made, after `federated`.
        let amr: Vec<&str> = std::iter::once("federated")
            .chain(
                claims
                    .amr
                    .iter()
                    .map(String::as_str)
                    .filter(|a| a.len() <= 16)
                    .take(4),
            )
            .collect();
        let (secret, mut session) =
            self.sessions
                .new_session(new_user.id, ctx.device.clone(), &amr.join(" "));
        let keep_until = claims.expires_at + CLOCK_SKEW_MS;
        let home_session = claims.home_session_id;
        let user_id = self
            .store
            .write(move |tx| {
                match tx.use_nonce(&origin_name, &claims.nonce, keep_until, now) {
                    Err(StoreError::Conflict(_)) => {
                        return Err(DomainError::unauthenticated(
                            Reason::TokenReplayed,
                            "this token was already used (replay refused)",
                        ))
                    }
                    other => other?,
                }
                let user_id = match tx.user_by_home(&origin_name, claims.user_id)? {
                    Some(existing) => {
                        if existing.name != name {
                            tx.set_user_name(existing.id, &name)?;
                        }
                        existing.id
                    }
                    None => {
                        tx.insert_user(&new_user)?;
                        new_user.id
                    }
                };
                session.user_id = user_id;
                tx.insert_session(&session)?;
                if home_session != 0 && !tx.bind_foreign_session(session.id, &origin_name, home_session)? {
                    return Err(DomainError::unauthenticated(
                        Reason::HomeSessionEnded,
                        format!("the session at {origin_name} that signed this token has ended; sign in there again"),
                    ));
                }
                Ok((user_id, crate::domain::sessions::make_room(tx, &session)?))
            })
            .await?;
        let (user_id, ended) = user_id;
        self.sessions.announce_ended(&ended);
        Ok((secret, user_id))
    }
}

/// A failure to reach or hear from `origin`, as an anonymous LoginFederated caller may see
/// it: that the origin cannot be reached or refused, never where discovery led (internal
/// names, private addresses). The details go to the log.
fn for_anonymous_callers(origin: &impl std::fmt::Display, e: DomainError) -> DomainError {
    let said = match e.reason {
        Reason::PeerUnreachable => format!(
            "{origin} is unreachable right now (it cannot be found or does not answer); try again later"
        ),
        Reason::PeerRefused => format!("{origin} refused this node's request"),
        _ => return e,
    };
    tracing::warn!(peer = %origin, detail = %e.message, "a LoginFederated's origin failed");
    DomainError { message: said, ..e }
}
