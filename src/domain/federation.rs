//! Cross-node login (DESIGN.md §4.6). `federate` signs a short-lived claim for a local user
//! and one target node; `login_federated` on that node checks policy, signature (with the
//! origin's pinned key, refetched once on failure), audience, time window and single-use
//! nonce, then signs in a foreign user kept apart from local accounts.
use rand::RngCore;

use super::pins::{CLOCK_SKEW_MS, TOKEN_MAX_MS};
use super::{Domain, DomainError, Principal, RequestContext};
use crate::federation::server_id::ServerId;
use crate::secret::BearerSecret;
use crate::store::{nonces, sessions, users, StoreError};

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

impl Domain {
    /// Signs a token that lets the caller (a local user) log into `target`. `encode` turns
    /// the claims into the exact bytes to sign.
    pub async fn federate(
        &self,
        p: &Principal,
        target: &str,
        encode: impl FnOnce(&Claims) -> Vec<u8>,
    ) -> Result<SignedToken, DomainError> {
        let target = server_id("server_id", target)?;
        if target == self.config.server_id {
            return Err(DomainError::invalid(
                "server_id",
                "that is this node; sign in here directly",
            ));
        }
        self.check_policy(&target).await?;
        let user = self.user_of(p).await?;
        if let Some((home, _)) = &user.home {
            return Err(DomainError::PermissionDenied(format!(
                "only local accounts can federate; this account's home is {home}"
            )));
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
        };
        let data = encode(&claims);
        let sig = self.node_key.sign(&data).to_vec();
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
        let origin = server_id("server_id", origin)?;
        if origin == self.config.server_id {
            return Err(DomainError::invalid(
                "server_id",
                "that is this node; tokens from itself are not accepted",
            ));
        }
        self.check_policy(&origin).await?;
        let now = self.clock.now_ms();
        let mut keys = self.trusted_keys(&origin).await?;
        if !keys.verifies(&token.data, &token.sig, now) {
            // The origin may have rotated its key since we pinned it: fetch once and retry.
            keys = self.refetch_keys(&origin, Some(&keys)).await?;
            if !keys.verifies(&token.data, &token.sig, now) {
                return Err(DomainError::Unauthenticated(format!(
                    "the token's signature does not verify with {origin}'s key (tampered, or not from {origin})"
                )));
            }
        }
        let claims = decode(&token.data).map_err(|e| DomainError::invalid("auth_token.data", e))?;
        let me = self.config.server_id.to_string();
        if claims.server_id != me {
            return Err(DomainError::PermissionDenied(format!(
                "this token is for {}, not for this node ({me})",
                claims.server_id
            )));
        }
        if claims.issued_at > now + CLOCK_SKEW_MS {
            return Err(DomainError::Unauthenticated(
                "the token was issued in the future; check both nodes' clocks".into(),
            ));
        }
        if claims.expires_at <= claims.issued_at
            || claims.expires_at - claims.issued_at > TOKEN_MAX_MS
        {
            return Err(DomainError::Unauthenticated(
                "the token's lifetime is not between 0 and 5 minutes".into(),
            ));
        }
        if now > claims.expires_at + CLOCK_SKEW_MS {
            return Err(DomainError::Unauthenticated(format!(
                "the token expired {} s ago; ask the home server for a new one",
                (now - claims.expires_at) / 1000
            )));
        }
        if claims.nonce.len() < 16 {
            return Err(DomainError::invalid(
                "auth_token.data.nonce",
                "must be at least 16 random bytes",
            ));
        }
        let origin_name = origin.to_string();
        let name = format!("{}@{origin_name}", claims.username);
        let new_user = users::UserRow {
            id: self.ids.next_id(),
            email: None,
            name: name.clone(),
            password_hash: None,
            email_verified: false,
            home: Some((origin_name.clone(), claims.user_id)),
            failed_sign_ins: 0,
            locked_until: None,
            created_at: now,
        };
        let (secret, mut session) = self.new_session(new_user.id, ctx.device.clone());
        let keep_until = claims.expires_at + CLOCK_SKEW_MS;
        let user_id = self
            .store
            .write(move |tx| {
                match nonces::use_once(tx, &origin_name, &claims.nonce, keep_until, now) {
                    Err(StoreError::Conflict(_)) => {
                        return Err(DomainError::Unauthenticated(
                            "this token was already used (replay refused)".into(),
                        ))
                    }
                    other => other?,
                }
                let user_id = match users::by_home(tx, &origin_name, claims.user_id)? {
                    Some(existing) => {
                        if existing.name != name {
                            users::set_name(tx, existing.id, &name)?;
                        }
                        existing.id
                    }
                    None => {
                        users::insert(tx, &new_user)?;
                        new_user.id
                    }
                };
                session.user_id = user_id;
                sessions::insert(tx, &session)?;
                Ok(user_id)
            })
            .await?;
        Ok((secret, user_id))
    }
}
