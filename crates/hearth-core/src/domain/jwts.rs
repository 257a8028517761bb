//! Hearth's own JWTs (DESIGN.md §5): issued by GetJWT for a session, accepted by the auth
//! layer as bearer credentials. A token is checked without a database read on the hot path
//! (signature, header, iss, aud, time window); its session is refused at once when a
//! revocation notice names it, and re-checked in the store at most every few seconds.
use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::Reason;
use super::principal::{CredentialKind, Principal};
use super::scopes::ScopeSet;
use super::state::revocations::{Revocations, Revoked};
use super::state::short_lived::{LocalMap, ShortLived};
use super::state::Store;
use super::DomainError;
use crate::clock::SharedClock;
use crate::domain::keyring::KeyRing;
use crate::identity::jwt::{self, Claims, Expect, PublicJwk};

/// How long a session found live is trusted without re-reading it.
const LIVE_TTL_MS: u64 = 5_000;
/// Sessions remembered (as live or revoked) at most.
const MAX_REMEMBERED: usize = 100_000;
/// How long a checked token skips the signature check (the hot path then costs a hash).
const VERIFIED_TTL_MS: u64 = 60_000;
/// Clock skew allowed on `nbf` and `exp` (seconds).
const LEEWAY_S: u64 = 30;

/// The JWT service.
#[derive(Debug)]
pub struct Jwts {
    keys: Arc<KeyRing>,
    issuer: String,
    audience: String,
    lifetime_s: u64,
    store: Store,
    clock: SharedClock,
    revoked: Arc<LocalMap<u64, ()>>,
    live: Arc<LocalMap<u64, ScopeSet>>,
    verified: LocalMap<[u8; 32], Checked>,
}

/// A token whose signature and claims were checked: (user, session, nbf, exp), by the
/// token's SHA-256. Kept no longer than [`VERIFIED_TTL_MS`] nor past `exp` (so never past
/// its key's grace period either), and its time window is checked again at each use.
#[derive(Debug, Clone, Copy)]
struct Checked {
    user_id: u64,
    sid: u64,
    nbf: u64,
    exp: u64,
}

fn refused(e: impl std::fmt::Display) -> DomainError {
    DomainError::unauthenticated(Reason::JwtInvalid, format!("{e}; ask GetJWT for a new one"))
}

impl Jwts {
    /// The service; subscribes to revocation notices.
    pub fn new(
        keys: Arc<KeyRing>,
        config: &crate::config::Config,
        store: Store,
        clock: SharedClock,
        revocations: &dyn Revocations,
    ) -> Self {
        let lifetime_s = config.jwt.lifetime_secs;
        let revoked = Arc::new(LocalMap::new(clock.clone(), MAX_REMEMBERED));
        let live = Arc::new(LocalMap::new(clock.clone(), MAX_REMEMBERED));
        let (r, l) = (revoked.clone(), live.clone());
        revocations.subscribe(Arc::new(move |revoked| {
            let ids = match revoked {
                Revoked::Sessions(ids) => ids,
                // Live sessions are checked again; known revocations stay remembered.
                Revoked::Anything => {
                    l.clear();
                    return;
                }
            };
            for id in ids {
                l.remove(id);
                r.put(*id, (), (lifetime_s + LEEWAY_S) * 1000);
            }
        }));
        Self {
            keys,
            issuer: config.server_id.to_string(),
            audience: config.jwt.audience.clone(),
            lifetime_s,
            store,
            revoked,
            live,
            verified: LocalMap::new(clock.clone(), MAX_REMEMBERED),
            clock,
        }
    }

    /// How long a token lives (seconds).
    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_s
    }

    /// A token for `user_id` bound to `session_id`.
    pub fn issue(&self, user_id: u64, session_id: u64) -> String {
        let now = self.clock.now_ms() / 1000;
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user_id.to_string(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.lifetime_s,
            jti: hex::encode(jti),
            sid: session_id.to_string(),
        };
        jwt::sign(&self.keys.current().jwt.current, &claims)
    }

    /// `/.well-known/jwks.json`: the current key and a retired one still in its grace period.
    pub fn jwks(&self) -> serde_json::Value {
        let now = self.clock.now_ms() / 1000;
        let keys: Vec<_> = self
            .keys
            .current()
            .jwt_public
            .iter()
            .filter(|k| k.valid_until.is_none_or(|until| now < until))
            .map(PublicJwk::to_json)
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Resolves a presented JWT: checked in memory, then its session (from memory unless
    /// not seen for a few seconds).
    pub async fn resolve(&self, token: &str) -> Result<Principal, DomainError> {
        let now_s = self.clock.now_ms() / 1000;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let checked = match self.verified.get(&hash) {
            Some(c) if now_s < c.exp + LEEWAY_S && now_s + LEEWAY_S >= c.nbf => c,
            Some(_) => return Err(refused("the token has expired")),
            None => self.check(token, hash, now_s)?,
        };
        let (user_id, sid) = (checked.user_id, checked.sid);
        if self.revoked.get(&sid).is_some() {
            return Err(refused("the token's session was revoked"));
        }
        let scopes = match self.live.get(&sid) {
            Some(scopes) => scopes,
            None => {
                let now = self.clock.now_ms();
                let session = self
                    .store
                    .read(move |tx| Ok::<_, DomainError>(tx.session(sid)?))
                    .await?
                    .filter(|s| s.user_id == user_id && s.expires_at > now)
                    .ok_or_else(|| refused("the token's session was revoked or has ended"))?;
                self.live.put(sid, session.scopes, LIVE_TTL_MS);
                session.scopes
            }
        };
        Ok(Principal {
            user_id,
            session_id: sid,
            kind: CredentialKind::Jwt,
            scopes,
            token_hash: hash,
            email_unverified: false,
        })
    }

    /// The full check of a token not seen lately: header, key, signature, claims.
    fn check(&self, token: &str, hash: [u8; 32], now_s: u64) -> Result<Checked, DomainError> {
        let expect = Expect {
            issuer: &self.issuer,
            audience: &self.audience,
            now: now_s,
            leeway: LEEWAY_S,
        };
        let claims =
            jwt::verify(token, &self.keys.current().jwt_public, &expect).map_err(refused)?;
        let (Ok(user_id), Ok(sid)) = (claims.sub.parse::<u64>(), claims.sid.parse::<u64>()) else {
            return Err(refused("the token's sub or sid is not an id"));
        };
        let checked = Checked {
            user_id,
            sid,
            nbf: claims.nbf,
            exp: claims.exp,
        };
        let left_ms = claims.exp.saturating_sub(now_s) * 1000;
        self.verified
            .put(hash, checked, left_ms.min(VERIFIED_TTL_MS));
        Ok(checked)
    }
}
