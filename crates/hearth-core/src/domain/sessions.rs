//! Sessions: issuing, resolving session tokens to a [`Principal`], listing, revoking and
//! rotating. Revocations are announced through the revocation interface, so every cached
//! copy is dropped before the next request.
use std::sync::Arc;

use super::activity::ActivityStamps;
use super::credential_cache::{CredentialCache, Entry};
use super::error::Reason;
use super::model::{DeviceFacts, Session};
use super::principal::{CredentialKind, Principal};
use super::scopes::ScopeSet;
use super::session_index::{Known, SessionIndex};
use super::state::ids::IdAllocator;
use super::state::revocations::{Revocations, Revoked};
use super::state::store::Ended;
use super::state::{Store, StoreError, WriteTx};
use super::DomainError;
use crate::clock::SharedClock;
use crate::config;
use crate::secret::{BearerSecret, SecretKind};

/// A successful sign-up or sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The new session token (hand it to the client once).
    pub token: BearerSecret,
    pub user: super::model::User,
    /// The new session.
    pub session: Session,
}

/// `last_active` is written at most this often per session.
const TOUCH_EVERY_MS: u64 = 60_000;
/// Session ids one revocation request may name.
pub const MAX_REVOKE_IDS: usize = 1_000;
/// Live sessions one account holds at most (a new one ends the least recently active).
pub const MAX_PER_USER: u32 = 1_000;
/// Live sessions one personal access token makes at most (TokenAuthorization).
pub const MAX_PER_TOKEN: u32 = 100;

/// Keeps `s`'s token and account within their session caps once `s` is inserted, by ending
/// the least recently active sessions over them (never `s`, the most recent); returns
/// their ids, which the caller announces as revoked once the write commits
/// ([`Sessions::announce_ended`]). Called inside the write that inserted `s`, so parallel
/// callers cannot pass a cap together (a password sign-in's insert keeps the account's cap
/// itself: `insert_session_capped`). Nobody is locked out: a cap ends what was left
/// unused longest (a script that signs in on every run and never signs out).
pub fn make_room(tx: &mut dyn WriteTx, s: &Session) -> Result<Vec<u64>, StoreError> {
    // Exact under a serializable write, and under a row-locked one that holds the user's
    // row (a sign-in). The two kinds racing for one user may pass a cap by one until the
    // next insert trims it again.
    let (of_user, of_token) = tx.live_sessions(s.user_id, s.access_token_id, s.created_at)?;
    let now = s.created_at;
    let mut ended = Vec::new();
    if let Some(token) = s.access_token_id.filter(|_| of_token > MAX_PER_TOKEN) {
        let over = of_token - MAX_PER_TOKEN;
        ended.extend(tx.end_least_active_sessions(s.user_id, Some(token), now, over)?);
    }
    let left = of_user.saturating_sub(ended.len() as u32);
    if left > MAX_PER_USER {
        let over = left - MAX_PER_USER;
        ended.extend(tx.end_least_active_sessions(s.user_id, None, now, over)?);
    }
    Ok(ended)
}

fn sign_in_again(reason: Reason, why: &str) -> DomainError {
    DomainError::unauthenticated(reason, format!("{why}; sign in again"))
}

/// The sessions service.
#[derive(Debug)]
pub struct Sessions {
    store: Store,
    clock: SharedClock,
    ids: Arc<dyn IdAllocator>,
    lifetime_ms: u64,
    idle_ms: u64,
    cache: Arc<CredentialCache>,
    revocations: Arc<dyn Revocations>,
    require_verified_email: bool,
    stamps: Arc<ActivityStamps>,
    index: Arc<SessionIndex>,
}

impl Sessions {
    /// The service; subscribes its cache to revocation notices.
    pub fn new(
        store: Store,
        clock: SharedClock,
        ids: Arc<dyn IdAllocator>,
        config: &config::Sessions,
        require_verified_email: bool,
        revocations: Arc<dyn Revocations>,
    ) -> Self {
        let cache = CredentialCache::kept_by(clock.clone(), revocations.as_ref());
        // Whether an account's address is verified can change without a notice (a guest
        // upgraded), so a node that requires it reads the database.
        let max = match require_verified_email {
            true => 0,
            false => config.memory_index_max,
        };
        let index = Arc::new(SessionIndex::new(max));
        let kept = index.clone();
        revocations.subscribe(Arc::new(move |r| match r {
            Revoked::Sessions(ids) => kept.end(ids),
            Revoked::Anything => kept.clear(),
        }));
        Self {
            index,
            store,
            clock,
            ids,
            lifetime_ms: config.lifetime_secs * 1000,
            idle_ms: config.idle_timeout_secs * 1000,
            cache,
            revocations,
            require_verified_email,
            stamps: Arc::default(),
        }
    }

    /// Tells every node that sessions a cap ended ([`make_room`]) are gone.
    pub fn announce_ended(&self, ids: &[u64]) {
        self.announce_capped_ids(ids, false);
    }

    /// [`Sessions::announce_ended`] for sessions a password sign-in's insert ended: this
    /// node only, when the write's commit told the other nodes.
    pub fn announce_capped(&self, ended: &Ended) {
        self.announce_capped_ids(&ended.ids, ended.nodes_told);
    }

    fn announce_capped_ids(&self, ids: &[u64], nodes_told: bool) {
        if ids.is_empty() {
            return;
        }
        tracing::info!(target: "hearth::audit", event = "sessions_capped", count = ids.len());
        match nodes_told {
            true => self.revocations.announce_here(ids),
            false => self.revocations.announce(ids),
        }
    }

    /// A new session row and its token for `user_id` (the caller inserts it in its own
    /// transaction).
    pub fn new_session(
        &self,
        user_id: u64,
        device: DeviceFacts,
        amr: &str,
    ) -> (BearerSecret, Session) {
        let now = self.clock.now_ms();
        let token = BearerSecret::generate(SecretKind::Session);
        let row = Session {
            id: self.ids.next_id(),
            user_id,
            token_hash: token.hash(),
            device,
            created_at: now,
            last_active: now,
            expires_at: now + self.lifetime_ms,
            scopes: ScopeSet::ALL,
            access_token_id: None,
            amr: amr.to_owned(),
        };
        (token, row)
    }

    /// Resolves a parsed session token: from the credential cache, else the session
    /// index, else the store.
    pub async fn resolve(&self, secret: &BearerSecret) -> Result<Principal, DomainError> {
        let hash = secret.hash();
        let now = self.clock.now_ms();
        let (entry, cached) = match self.cache.get(&hash) {
            Some(entry) => (entry, true),
            None => match self.indexed(&hash, now) {
                Some(entry) => (entry, false),
                None => (self.load(hash).await?, true),
            },
        };
        if now >= entry.expires_at {
            return Err(sign_in_again(
                Reason::SessionExpired,
                "the session has expired",
            ));
        }
        if now >= entry.last_active + self.idle_ms {
            return Err(sign_in_again(
                Reason::SessionIdle,
                "the session expired after being idle",
            ));
        }
        let due = match cached {
            true => self.cache.use_due(&hash, &entry, now, TOUCH_EVERY_MS),
            false => now.saturating_sub(entry.last_active) >= TOUCH_EVERY_MS,
        };
        if due {
            // Written behind, in one batch with others (`write_activity`).
            self.stamps.stamp(entry.principal.session_id, now);
            self.index.touch(&hash, now);
        }
        Ok(entry.principal)
    }

    /// The session of `hash` from the index, when the index knows it and it is clearly
    /// alive: the index's times are rounded toward refusal, so a session near its expiry or
    /// idle limit goes to the store, which decides to the millisecond.
    fn indexed(&self, hash: &[u8; 32], now: u64) -> Option<Entry> {
        let k = self.index.get(hash)?;
        let last_active = self.stamps.latest(k.session_id, k.last_active);
        if now >= k.expires_at || now >= last_active + self.idle_ms {
            return None;
        }
        Some(Entry {
            principal: Principal {
                user_id: k.user_id,
                session_id: k.session_id,
                kind: CredentialKind::Session,
                scopes: ScopeSet::ALL,
                token_hash: *hash,
                email_unverified: false,
            },
            expires_at: k.expires_at,
            last_active,
        })
    }

    /// The session of `hash` from the store, then cached (and kept in the index when it is
    /// a full session).
    async fn load(&self, hash: [u8; 32]) -> Result<Entry, DomainError> {
        let check_email = self.require_verified_email;
        let (store, stamps, index) = (self.store.clone(), self.stamps.clone(), self.index.clone());
        let generation = index.generation();
        self.cache
            .get_or_load(hash, || async move {
                let (row, email_unverified) = store
                    .lookup(move |tx| {
                        let Some(row) = tx.session_credential(&hash)? else {
                            return Ok(None);
                        };
                        let unverified = check_email
                            && tx
                                .user(row.user_id)?
                                .is_some_and(|u| u.email.is_some() && !u.email_verified);
                        Ok::<_, DomainError>(Some((row, unverified)))
                    })
                    .await?
                    .ok_or_else(|| {
                        sign_in_again(
                            Reason::SessionUnknown,
                            "the session does not exist or was revoked",
                        )
                    })?;
                // A stamp this node has not written yet still counts.
                let last_active = stamps.latest(row.id, row.last_active);
                if row.scopes == ScopeSet::ALL && !email_unverified {
                    let known = Known {
                        last_active,
                        ..Known::from(&row)
                    };
                    index.learn(&hash, known, generation);
                }
                Ok(Entry {
                    principal: Principal {
                        user_id: row.user_id,
                        session_id: row.id,
                        kind: CredentialKind::Session,
                        scopes: row.scopes,
                        token_hash: hash,
                        email_unverified,
                    },
                    expires_at: row.expires_at,
                    last_active,
                })
            })
            .await
    }

    /// Loads every live full session from the store into the index (at start; the
    /// benchmark after seeding sessions, as a restart would). Returns how many it holds.
    pub async fn load_index(&self) -> Result<usize, DomainError> {
        if !self.index.enabled() {
            return Ok(0);
        }
        const PAGE: u32 = 20_000;
        self.index.begin_load();
        let (mut loaded, mut after) = (Vec::new(), 0);
        let now = self.clock.now_ms();
        loop {
            let page = self
                .store
                .read(move |tx| tx.full_sessions(after, PAGE, now))
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    self.index.finish_load(loaded);
                    return Err(e.into());
                }
            };
            let known = page.iter().map(|(hash, c)| (*hash, Known::from(c)));
            self.index.pack(&mut loaded, known);
            match page.last() {
                Some((_, c)) if loaded.len() < self.index.max() => after = c.id,
                _ => break,
            }
        }
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.finish_load(loaded))
            .await
            .map_err(|e| DomainError::internal(format!("loading the session index: {e}")))?;
        Ok(self.index.len())
    }

    /// The session index (figures: its size and bytes).
    pub fn index(&self) -> &SessionIndex {
        &self.index
    }

    /// Folds what the index learned into its sorted part, off the async workers, while it
    /// has something to fold (the node calls it every few seconds).
    pub async fn rebuild_index(&self) {
        if self.index.dirty() {
            let (index, now) = (self.index.clone(), self.clock.now_ms());
            let _ = tokio::task::spawn_blocking(move || index.rebuild(now)).await;
        }
    }

    /// Writes every pending activity stamp in one transaction (the node calls it every
    /// second and at shutdown). Returns how many sessions it stamped.
    pub async fn write_activity(&self) -> Result<usize, DomainError> {
        let stamps = self.stamps.take();
        if stamps.is_empty() {
            return Ok(0);
        }
        let batch = stamps.clone();
        let written = self
            .store
            .write(move |tx| {
                for (id, at) in &batch {
                    tx.touch_session(*id, *at)?;
                }
                Ok::<_, DomainError>(batch.len())
            })
            .await;
        if written.is_err() {
            self.stamps.restore(stamps);
        }
        written
    }

    /// The caller's sessions, newest first.
    pub async fn list(&self, p: &Principal) -> Result<Vec<Session>, DomainError> {
        let user = p.user_id;
        self.store.read(move |tx| Ok(tx.sessions_of(user)?)).await
    }

    /// Revokes some of the caller's own sessions (the current one included, if listed).
    /// All or nothing: an id that is not one of the caller's sessions refuses the request.
    pub async fn revoke(&self, p: &Principal, mut ids: Vec<u64>) -> Result<(), DomainError> {
        if ids.is_empty() {
            return Err(DomainError::invalid(
                "session_ids",
                "list at least one session id",
            ));
        }
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > MAX_REVOKE_IDS {
            return Err(DomainError::invalid(
                "session_ids",
                format!("name at most {MAX_REVOKE_IDS} sessions per call"),
            ));
        }
        let user = p.user_id;
        let wanted = ids.clone();
        self.store
            .write(move |tx| {
                let deleted = tx.delete_sessions_of(user, &wanted)?;
                if let Some(missing) = wanted.iter().find(|id| !deleted.contains(id)) {
                    return Err(DomainError::new(
                        super::ErrorKind::NotFound,
                        Reason::SessionNotYours,
                        format!("session_ids: {missing} is not one of your sessions"),
                    ));
                }
                Ok(())
            })
            .await?;
        self.revocations.announce(&ids);
        tracing::info!(target: "hearth::audit", event = "sessions_revoked", user, count = ids.len());
        Ok(())
    }

    /// Revokes one session by id (operator action). Returns whether it existed.
    pub async fn revoke_by_id(&self, id: u64) -> Result<bool, DomainError> {
        let existed = self
            .store
            .write(move |tx| Ok::<_, DomainError>(tx.delete_session(id)?))
            .await?;
        self.revocations.announce(&[id]);
        tracing::info!(target: "hearth::audit", event = "session_revoked_by_operator", session = id, existed);
        Ok(existed)
    }

    /// Revokes every session of `user_id` except `keep`, in the caller's transaction;
    /// announce the returned ids with [`Sessions::announce`] after it commits.
    pub fn revoke_all_in(
        tx: &mut dyn WriteTx,
        user_id: u64,
        keep: Option<u64>,
    ) -> Result<Vec<u64>, DomainError> {
        Ok(tx.delete_all_sessions_of(user_id, keep)?)
    }

    /// Tells every node that these sessions are gone.
    pub fn announce(&self, ids: &[u64]) {
        self.revocations.announce(ids);
    }

    /// Gives the caller's session a new token; the old one stops working at once. Of many
    /// parallel refreshes with one token, exactly one wins (compare-and-swap).
    pub async fn refresh(&self, p: &Principal) -> Result<BearerSecret, DomainError> {
        let token = BearerSecret::generate(SecretKind::Session);
        let (id, presented, new, now) = (
            p.session_id,
            p.token_hash,
            token.hash(),
            self.clock.now_ms(),
        );
        let swapped = self
            .store
            .write(move |tx| {
                Ok::<_, DomainError>(tx.swap_session_token(id, &presented, &new, now)?)
            })
            .await?;
        self.revocations.announce(&[id]);
        if !swapped {
            return Err(sign_in_again(
                Reason::SessionRefreshed,
                "this session token was already refreshed or revoked",
            ));
        }
        Ok(token)
    }

    /// Issues a session for a local account by e-mail (operator action).
    pub async fn issue_for_email(
        &self,
        email: &str,
        device: DeviceFacts,
    ) -> Result<(BearerSecret, Session), DomainError> {
        let email = super::validate::canonical_email("email", email)?;
        let user = self
            .store
            .read(move |tx| Ok::<_, DomainError>(tx.user_by_email(&email)?))
            .await?
            .ok_or_else(|| DomainError::not_found("no local account has that e-mail address"))?;
        let (token, row) = self.new_session(user.id, device, "operator");
        let insert = row.clone();
        self.store
            .write(move |tx| {
                tx.insert_session(&insert)?;
                Ok::<_, DomainError>(make_room(tx, &insert)?)
            })
            .await
            .map(|ended| self.announce_ended(&ended))?;
        Ok((token, row))
    }
}
