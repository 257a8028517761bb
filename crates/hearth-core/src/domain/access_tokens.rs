//! Personal access tokens (tokens.v1): scoped, expiring, revocable `hpat_` credentials for
//! CLIs, scripts and CI. The value is shown once; only its SHA-256 is kept. A token can
//! never grant more than its creator holds, and a session made from one (TokenAuthorization)
//! carries its scopes and ends with it.
use std::net::IpAddr;
use std::sync::Arc;

use super::credential_cache::{CredentialCache, Entry};
use super::error::Reason;
use super::model::{AccessToken, DeviceFacts, Session};
use super::principal::{CredentialKind, Principal};
use super::scopes::ScopeSet;
use super::sessions::Sessions;
use super::state::ids::IdAllocator;
use super::state::revocations::Revocations;
use super::state::{Store, WriteTx};
use super::validate::display_name;
use super::DomainError;
use crate::clock::{rfc3339, SharedClock};
use crate::secret::{BearerSecret, SecretKind};

/// Tokens one account may hold.
pub const MAX_PER_USER: u32 = 100;
/// A token created without an expiry lives this long (or `[tokens] max_lifetime_days`, if
/// shorter).
pub const DEFAULT_LIFETIME_MS: u64 = 30 * 24 * 3600 * 1000;
/// `last_used_at` is written at most this often per token.
const TOUCH_EVERY_MS: u64 = 60_000;

/// A new token, as CreateToken asks for it.
#[derive(Debug, Default)]
pub struct NewToken {
    /// The owner's name for it.
    pub name: String,
    /// Expiry (unix ms); `None`: [`DEFAULT_LIFETIME_MS`] from now.
    pub expires_at: Option<u64>,
    pub scopes: Vec<String>,
}

/// A change to a token, as UpdateToken asks for it (absent parts stay).
#[derive(Debug, Default)]
pub struct TokenChange {
    /// A new name.
    pub name: Option<String>,
    /// A new expiry (unix ms).
    pub expires_at: Option<u64>,
    /// New scope names.
    pub scopes: Option<Vec<String>>,
}

fn unknown_token(uuid: &str) -> DomainError {
    DomainError::new(
        super::ErrorKind::NotFound,
        Reason::AccessTokenUnknown,
        format!(
            "token_uuid.uuid: no personal access token of yours has the uuid {}",
            super::validate::printable(uuid, 40)
        ),
    )
}

fn dead_credential() -> DomainError {
    DomainError::unauthenticated(
        Reason::AccessTokenUnknown,
        "the personal access token does not exist, was regenerated or was revoked",
    )
}

/// The refusal naming scopes that do not exist, and the ones that do.
fn unknown_scopes(field: &'static str, unknown: &[String]) -> DomainError {
    let named: Vec<String> = unknown
        .iter()
        .take(10)
        .map(|u| format!("`{}`", super::validate::printable(u, 40)))
        .collect();
    DomainError::invalid_because(
        field,
        Reason::ScopeUnknown,
        format!(
            "unknown scope{} {}; the scopes are {}",
            if unknown.len() == 1 { "" } else { "s" },
            named.join(", "),
            ScopeSet::ALL.names().join(", ")
        ),
    )
}

/// A random (version 4) UUID, lower-case.
fn new_uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// A uuid as a client sent it: the 36-character 8-4-4-4-12 form, compared in lower case.
fn parse_uuid(uuid: &str) -> Result<String, DomainError> {
    let u = uuid.trim();
    match uuid::Uuid::try_parse(u) {
        Ok(parsed) if u.len() == 36 => Ok(parsed.hyphenated().to_string()),
        _ => Err(DomainError::invalid(
            "token_uuid.uuid",
            "must be a token's uuid as CreateToken or ListTokens gave it (8-4-4-4-12 hex digits)",
        )),
    }
}

/// The personal access tokens service.
#[derive(Debug)]
pub struct AccessTokens {
    store: Store,
    clock: SharedClock,
    ids: Arc<dyn IdAllocator>,
    sessions: Arc<Sessions>,
    revocations: Arc<dyn Revocations>,
    cache: Arc<CredentialCache>,
    max_lifetime_ms: u64,
    require_verified_email: bool,
}

impl AccessTokens {
    /// The service; subscribes its cache to revocation notices.
    pub fn new(
        store: Store,
        clock: SharedClock,
        ids: Arc<dyn IdAllocator>,
        sessions: Arc<Sessions>,
        revocations: Arc<dyn Revocations>,
        config: &crate::config::Config,
    ) -> Self {
        let cache = CredentialCache::kept_by(clock.clone(), revocations.as_ref());
        Self {
            store,
            clock,
            ids,
            sessions,
            revocations,
            cache,
            max_lifetime_ms: config.tokens.max_lifetime_days * 24 * 3600 * 1000,
            require_verified_email: config.accounts.require_email_verification,
        }
    }

    fn check_expiry(&self, at: u64, now: u64) -> Result<u64, DomainError> {
        let field = "token_metadata.expires_at";
        if at <= now {
            return Err(DomainError::invalid(field, "must be in the future"));
        }
        if at > now + self.max_lifetime_ms {
            return Err(DomainError::invalid(
                field,
                format!(
                    "must be at most {} days from now (this node's [tokens] max_lifetime_days)",
                    self.max_lifetime_ms / (24 * 3600 * 1000)
                ),
            ));
        }
        Ok(at)
    }

    /// The scopes named in a request, which the caller must hold all of.
    fn grantable(p: &Principal, names: &[String]) -> Result<ScopeSet, DomainError> {
        let field = "token_permissions.scopes";
        let set = ScopeSet::parse(names).map_err(|unknown| unknown_scopes(field, &unknown))?;
        if set.is_empty() {
            return Err(DomainError::invalid(
                field,
                format!(
                    "list at least one scope ({})",
                    ScopeSet::ALL.names().join(", ")
                ),
            ));
        }
        Self::may_act_on(p, set)?;
        Ok(set)
    }

    /// A caller may grant, change or regenerate only tokens whose scopes it holds all of.
    fn may_act_on(p: &Principal, set: ScopeSet) -> Result<(), DomainError> {
        let beyond = set.beyond(p.scopes);
        if beyond.is_empty() {
            return Ok(());
        }
        Err(DomainError::denied(
            Reason::ScopeNotHeld,
            format!(
                "this credential does not hold {}: a token can grant and manage only scopes its caller holds",
                beyond.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ),
        ))
    }

    /// Creates a token; its value is returned here and never again.
    pub async fn create(
        &self,
        p: &Principal,
        req: NewToken,
    ) -> Result<(BearerSecret, AccessToken), DomainError> {
        let name = display_name("token_metadata.name", &req.name)?;
        // The seed's TokenPermissions has no fields, so a seed client sends none: an empty
        // list grants what the creating credential may do (DESIGN.md §1).
        let scopes = match req.scopes.is_empty() {
            true => p.scopes,
            false => Self::grantable(p, &req.scopes)?,
        };
        let now = self.clock.now_ms();
        let expires_at = match req.expires_at {
            Some(at) => self.check_expiry(at, now)?,
            None => now + DEFAULT_LIFETIME_MS.min(self.max_lifetime_ms),
        };
        let value = BearerSecret::generate(SecretKind::PersonalAccessToken);
        let token = AccessToken {
            id: self.ids.next_id(),
            uuid: new_uuid(),
            user_id: p.user_id,
            name,
            token_hash: value.hash(),
            scopes,
            created_at: now,
            expires_at,
            last_used_at: None,
            last_used_ip: None,
        };
        let row = token.clone();
        let inserted = self
            .store
            .write(move |tx| tx.insert_access_token(&row, MAX_PER_USER))
            .await?;
        if !inserted {
            return Err(DomainError::exhausted(
                Reason::LimitReached,
                format!("an account may hold at most {MAX_PER_USER} personal access tokens; delete some first"),
            ));
        }
        tracing::info!(target: "hearth::audit", event = "access_token_created", user = p.user_id, token = token.id);
        Ok((value, token))
    }

    /// Reads the caller's token `uuid`, lets `change` edit it and writes it back, all in one
    /// transaction (a parallel change is never lost, an old value never revived). When
    /// `change` returns true, the sessions made from the token end too. Returns the token.
    async fn modify<F>(
        &self,
        p: &Principal,
        uuid: &str,
        mut change: F,
    ) -> Result<AccessToken, DomainError>
    where
        F: FnMut(&mut AccessToken, &Principal) -> Result<bool, DomainError> + Send + 'static,
    {
        let uuid = parse_uuid(uuid)?;
        let caller = p.clone();
        let (token, ended) = self
            .store
            .write(move |tx| {
                let mut t = tx
                    .access_token(&uuid)?
                    .filter(|t| t.user_id == caller.user_id)
                    .ok_or_else(|| unknown_token(&uuid))?;
                let end_sessions = change(&mut t, &caller)?;
                tx.update_access_token(&t)?;
                let ended = match end_sessions {
                    true => {
                        // Sessions other nodes made from this token end too (notices.rs).
                        tx.end_grants(&[t.id])?;
                        tx.delete_sessions_of_token(t.id)?
                    }
                    false => Vec::new(),
                };
                Ok::<_, DomainError>((t, ended))
            })
            .await?;
        let mut gone = ended;
        gone.push(token.id);
        self.revocations.announce(&gone);
        Ok(token)
    }

    /// Changes a token's name, expiry or scopes. A change of expiry or scopes ends the
    /// sessions made from it (they carried the old ones).
    pub async fn update(
        &self,
        p: &Principal,
        uuid: &str,
        change: TokenChange,
    ) -> Result<AccessToken, DomainError> {
        let name = change
            .name
            .map(|n| display_name("token_metadata.name", &n))
            .transpose()?;
        // An empty list (a seed client's empty TokenPermissions) leaves the scopes as they are.
        let named = change.scopes.filter(|s| !s.is_empty());
        let scopes = named.map(|s| Self::grantable(p, &s)).transpose()?;
        let now = self.clock.now_ms();
        let expires_at = change
            .expires_at
            .map(|at| self.check_expiry(at, now))
            .transpose()?;
        let token = self
            .modify(p, uuid, move |t, caller| {
                Self::may_act_on(caller, t.scopes)?;
                if t.expires_at <= now {
                    return Err(DomainError::precondition(
                        Reason::TokenExpired,
                        "the token has expired; RegenerateToken gives it a new value and expiry",
                    ));
                }
                let ends = scopes.is_some_and(|s| s != t.scopes) || expires_at.is_some();
                if let Some(n) = &name {
                    t.name = n.clone();
                }
                if let Some(s) = scopes {
                    t.scopes = s;
                }
                if let Some(at) = expires_at {
                    t.expires_at = at;
                }
                Ok(ends)
            })
            .await?;
        tracing::info!(target: "hearth::audit", event = "access_token_updated", user = p.user_id, token = token.id);
        Ok(token)
    }

    /// Expires a token now; it and the sessions made from it stop working at once.
    pub async fn expire(&self, p: &Principal, uuid: &str) -> Result<AccessToken, DomainError> {
        let now = self.clock.now_ms();
        // As for update and regenerate: a token cannot end one that holds more than it.
        let token = self
            .modify(p, uuid, move |t, caller| {
                Self::may_act_on(caller, t.scopes)?;
                t.expires_at = t.expires_at.min(now);
                Ok(true)
            })
            .await?;
        tracing::info!(target: "hearth::audit", event = "access_token_expired", user = p.user_id, token = token.id);
        Ok(token)
    }

    /// Gives a token a new value (same uuid, name and scopes); the old value and the
    /// sessions made from it stop working at once. An expired token gets a fresh expiry.
    pub async fn regenerate(
        &self,
        p: &Principal,
        uuid: &str,
    ) -> Result<(BearerSecret, AccessToken), DomainError> {
        let value = BearerSecret::generate(SecretKind::PersonalAccessToken);
        let (hash, now) = (value.hash(), self.clock.now_ms());
        let fresh = now + DEFAULT_LIFETIME_MS.min(self.max_lifetime_ms);
        let token = self
            .modify(p, uuid, move |t, caller| {
                Self::may_act_on(caller, t.scopes)?;
                t.token_hash = hash;
                if t.expires_at <= now {
                    t.expires_at = fresh;
                }
                Ok(true)
            })
            .await?;
        tracing::info!(target: "hearth::audit", event = "access_token_regenerated", user = p.user_id, token = token.id);
        Ok((value, token))
    }

    /// One of the caller's tokens.
    pub async fn get(&self, p: &Principal, uuid: &str) -> Result<AccessToken, DomainError> {
        let uuid = parse_uuid(uuid)?;
        let user = p.user_id;
        self.store
            .read(move |tx| {
                tx.access_token(&uuid)?
                    .filter(|t| t.user_id == user)
                    .ok_or_else(|| unknown_token(&uuid))
            })
            .await
    }

    /// The caller's tokens, newest first.
    pub async fn list(&self, p: &Principal) -> Result<Vec<AccessToken>, DomainError> {
        self.list_of(p.user_id).await
    }

    /// A user's tokens, newest first (the operator's `hearth token list`).
    pub async fn list_of(&self, user_id: u64) -> Result<Vec<AccessToken>, DomainError> {
        self.store
            .read(move |tx| Ok(tx.access_tokens_of(user_id)?))
            .await
    }

    /// Operator: deletes a token by uuid, with the sessions made from it.
    pub async fn revoke(&self, uuid: &str) -> Result<AccessToken, DomainError> {
        let uuid = parse_uuid(uuid)?;
        let (token, mut gone) = self
            .store
            .write(move |tx| {
                let t = tx.access_token(&uuid)?.ok_or_else(|| {
                    DomainError::not_found(format!("no token has the uuid {uuid}"))
                })?;
                let ended = tx.delete_sessions_of_token(t.id)?;
                tx.delete_access_token(t.id)?;
                Ok::<_, DomainError>((t, ended))
            })
            .await?;
        gone.push(token.id);
        self.revocations.announce(&gone);
        tracing::info!(target: "hearth::audit", event = "access_token_revoked_by_operator", user = token.user_id, token = token.id);
        Ok(token)
    }

    /// The ids of every token of `user_id` (read in the caller's transaction), for
    /// revocation notices when the account is disabled or deleted.
    pub fn ids_of_in(tx: &mut dyn WriteTx, user_id: u64) -> Result<Vec<u64>, DomainError> {
        Ok(tx.access_tokens_of(user_id)?.iter().map(|t| t.id).collect())
    }

    /// Resolves a parsed `hpat_` value; known tokens are served from the cache. Records the
    /// use (time and client IP) at most once a minute.
    pub async fn resolve(
        &self,
        secret: &BearerSecret,
        ip: Option<IpAddr>,
    ) -> Result<Principal, DomainError> {
        let hash = secret.hash();
        let now = self.clock.now_ms();
        let check_email = self.require_verified_email;
        let store = self.store.clone();
        let entry = self
            .cache
            .get_or_load(hash, || async move {
                let (t, user) = store
                    .lookup(move |tx| {
                        let Some(t) = tx.access_token_by_hash(&hash)? else {
                            return Ok(None);
                        };
                        let user = tx.user(t.user_id)?;
                        Ok::<_, DomainError>(user.map(|u| (t, u)))
                    })
                    .await?
                    .ok_or_else(dead_credential)?;
                if user.disabled {
                    return Err(DomainError::account_disabled());
                }
                Ok(Entry {
                    principal: Principal {
                        user_id: t.user_id,
                        session_id: t.id,
                        kind: CredentialKind::PersonalAccessToken,
                        scopes: t.scopes,
                        token_hash: hash,
                        email_unverified: check_email
                            && user.email.is_some()
                            && !user.email_verified,
                    },
                    expires_at: t.expires_at,
                    last_active: t.last_used_at.unwrap_or(0),
                })
            })
            .await?;
        if now >= entry.expires_at {
            return Err(DomainError::unauthenticated(
                Reason::TokenExpired,
                format!(
                    "the personal access token expired at {}; regenerate it (RegenerateToken) or create a new one",
                    rfc3339(entry.expires_at)
                ),
            ));
        }
        if self.cache.use_due(&hash, &entry, now, TOUCH_EVERY_MS) {
            let (id, ip) = (entry.principal.session_id, ip.map(|i| i.to_string()));
            // Best effort: a lost use stamp is not worth failing the request for.
            let _ = self
                .store
                .write::<_, DomainError, _>(move |tx| {
                    Ok(tx.touch_access_token(id, now, ip.as_deref())?)
                })
                .await;
        }
        Ok(entry.principal)
    }

    /// TokenAuthorization: a session for the holder of a personal access token, with the
    /// token's scopes, ending no later than the token. Written only while the token still
    /// has the presented value and is not expired (one atomic store operation).
    pub async fn exchange(
        &self,
        p: &Principal,
        device: DeviceFacts,
    ) -> Result<(BearerSecret, Session), DomainError> {
        if p.kind != CredentialKind::PersonalAccessToken {
            return Err(DomainError::denied(
                Reason::CredentialInsufficient,
                "TokenAuthorization exchanges a personal access token (hpat_…) for a session",
            ));
        }
        let hash = p.token_hash;
        let token = self
            .store
            .read(move |tx| Ok::<_, DomainError>(tx.access_token_by_hash(&hash)?))
            .await?
            .ok_or_else(dead_credential)?;
        let (value, mut session) = self.sessions.new_session(p.user_id, device, "token");
        session.expires_at = session.expires_at.min(token.expires_at);
        session.scopes = token.scopes;
        session.access_token_id = Some(token.id);
        let row = session.clone();
        let inserted = self
            .store
            .write(move |tx| {
                if !tx.insert_session_for_token(&row, &hash)? {
                    return Ok::<_, DomainError>((false, Vec::new()));
                }
                Ok((true, crate::domain::sessions::make_room(tx, &row)?))
            })
            .await
            .map(|(inserted, ended)| {
                self.sessions.announce_ended(&ended);
                inserted
            })?;
        if !inserted {
            return Err(dead_credential());
        }
        tracing::info!(target: "hearth::audit", event = "token_authorization", user = p.user_id, token = token.id, session = session.id);
        Ok((value, session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scopes_are_named_beside_the_real_ones() {
        let e = unknown_scopes("scopes", &["admin".into(), "root\u{1b}".into()]);
        assert_eq!(e.reason, Reason::ScopeUnknown);
        assert!(
            e.message.contains("`admin`, `root\\u{1b}`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("tokens:write"), "{}", e.message);
    }

    #[test]
    fn uuids_are_version_4_and_parse_back() {
        let u = new_uuid();
        assert_eq!(parse_uuid(&u.to_uppercase()).ok(), Some(u.clone()));
        assert_eq!(&u[14..15], "4");
        assert!(parse_uuid("not-a-uuid").is_err());
        assert!(parse_uuid(&u.replace('-', "x")).is_err());
    }
}
