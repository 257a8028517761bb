//! Sessions: issuing, resolving bearer tokens to a [`Principal`], listing, revoking and
//! rotating. Revocation through this node takes effect on the very next request.
use super::session_cache::Entry;
use super::{Domain, DomainError, Principal};
use crate::secret::{BearerSecret, SecretKind};
use crate::store::sessions::{self, DeviceFacts, SessionRow};
use crate::store::users;

/// `last_active` is written at most this often per session.
const TOUCH_EVERY_MS: u64 = 60_000;

fn unauthenticated(why: &str) -> DomainError {
    DomainError::Unauthenticated(format!("{why}; sign in again"))
}

impl Domain {
    /// A new session row and its token for `user_id` (the caller inserts it in its own
    /// transaction).
    pub(crate) fn new_session(
        &self,
        user_id: u64,
        device: DeviceFacts,
    ) -> (BearerSecret, SessionRow) {
        let now = self.clock.now_ms();
        let token = BearerSecret::generate(SecretKind::Session);
        let row = SessionRow {
            id: self.ids.next_id(),
            user_id,
            token_hash: token.hash(),
            device,
            created_at: now,
            last_active: now,
            expires_at: now + self.config.sessions.lifetime_secs * 1000,
        };
        (token, row)
    }

    /// Resolves a bearer token. Format and checksum are checked before any database access;
    /// known sessions are served from the cache.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, DomainError> {
        let secret = BearerSecret::parse(token).map_err(|e| {
            DomainError::Unauthenticated(format!("{e}; send a Hearth token in `authorization`"))
        })?;
        match secret.kind() {
            SecretKind::Session => self.authenticate_session(&secret).await,
            other => Err(DomainError::Unauthenticated(format!(
                "a {} token cannot be used here",
                other.prefix()
            ))),
        }
    }

    async fn authenticate_session(&self, secret: &BearerSecret) -> Result<Principal, DomainError> {
        let hash = secret.hash();
        let now = self.clock.now_ms();
        let idle_ms = self.config.sessions.idle_timeout_secs * 1000;
        let entry = match self.cache.get(&hash, now) {
            Some(e) => e,
            None => {
                let row = self
                    .store
                    .read(move |c| sessions::by_token_hash(c, &hash))
                    .await?
                    .ok_or_else(|| unauthenticated("the session does not exist or was revoked"))?;
                let entry = Entry {
                    principal: Principal {
                        user_id: row.user_id,
                        session_id: row.id,
                        kind: SecretKind::Session,
                    },
                    expires_at: row.expires_at,
                    last_active: row.last_active,
                    cached_at: now,
                };
                self.cache.put(hash, entry.clone());
                entry
            }
        };
        if now >= entry.expires_at {
            return Err(unauthenticated("the session has expired"));
        }
        if now >= entry.last_active + idle_ms {
            return Err(unauthenticated("the session expired after being idle"));
        }
        if now.saturating_sub(entry.last_active) >= TOUCH_EVERY_MS {
            self.cache.touch(&hash, now);
            let id = entry.principal.session_id;
            // Best effort: a lost activity stamp is not worth failing the request for.
            let _ = self
                .store
                .write::<_, DomainError, _>(move |tx| Ok(sessions::touch(tx, id, now)?))
                .await;
        }
        Ok(entry.principal)
    }

    /// The caller's sessions, newest first.
    pub async fn list_sessions(&self, p: &Principal) -> Result<Vec<SessionRow>, DomainError> {
        let user = p.user_id;
        self.store
            .read(move |c| Ok(sessions::list_for_user(c, user)?))
            .await
    }

    /// Revokes some of the caller's own sessions (the current one included, if listed).
    /// All or nothing: an id that is not one of the caller's sessions refuses the request.
    pub async fn revoke_sessions(&self, p: &Principal, ids: Vec<u64>) -> Result<(), DomainError> {
        if ids.is_empty() {
            return Err(DomainError::invalid(
                "session_ids",
                "list at least one session id",
            ));
        }
        let user = p.user_id;
        let wanted = ids.clone();
        self.store
            .write(move |tx| {
                let deleted = sessions::delete_for_user(tx, user, &wanted)?;
                if let Some(missing) = wanted.iter().find(|id| !deleted.contains(id)) {
                    return Err(DomainError::NotFound(format!(
                        "session_ids: {missing} is not one of your sessions"
                    )));
                }
                Ok(())
            })
            .await?;
        self.cache.invalidate_sessions(&ids);
        Ok(())
    }

    /// Revokes one session by id (operator action). Returns whether it existed.
    pub async fn revoke_session_by_id(&self, id: u64) -> Result<bool, DomainError> {
        let existed = self
            .store
            .write(move |tx| Ok::<_, DomainError>(sessions::delete(tx, id)?))
            .await?;
        self.cache.invalidate_sessions(&[id]);
        Ok(existed)
    }

    /// Revokes every session of `user_id` except `keep`, in the caller's transaction.
    pub(crate) fn revoke_all_in(
        tx: &rusqlite::Connection,
        user_id: u64,
        keep: Option<u64>,
    ) -> Result<Vec<u64>, DomainError> {
        Ok(sessions::delete_all_for_user(tx, user_id, keep)?)
    }

    /// Gives the caller's session a new token; the old one stops working at once.
    pub async fn refresh_session(&self, p: &Principal) -> Result<BearerSecret, DomainError> {
        let token = BearerSecret::generate(SecretKind::Session);
        let (id, hash, now) = (p.session_id, token.hash(), self.clock.now_ms());
        let existed = self
            .store
            .write(move |tx| Ok::<_, DomainError>(sessions::replace_token(tx, id, &hash, now)?))
            .await?;
        self.cache.invalidate_sessions(&[id]);
        if !existed {
            return Err(unauthenticated("the session was revoked"));
        }
        Ok(token)
    }

    /// Issues a session for a local account by e-mail (operator action).
    pub async fn issue_session_for(
        &self,
        email: &str,
        device: DeviceFacts,
    ) -> Result<(BearerSecret, SessionRow), DomainError> {
        let email = email.to_owned();
        let user = self
            .store
            .read(move |c| Ok::<_, DomainError>(users::by_email(c, &email)?))
            .await?
            .ok_or_else(|| {
                DomainError::NotFound("no local account has that e-mail address".into())
            })?;
        let (token, row) = self.new_session(user.id, device);
        let insert = row.clone();
        self.store
            .write(move |tx| Ok::<_, DomainError>(sessions::insert(tx, &insert)?))
            .await?;
        Ok((token, row))
    }
}
