//! Peers, pins and policy: which key this node trusts for another node, and how that
//! changes. A first contact pins the key (trust on first use, where policy allows); a later
//! key is accepted only through an unbroken chain of signed rotation records; anything else
//! is refused until the operator re-pins. Also the federation policy (open / allowlist /
//! closed, denylist) and the link bookkeeping the operator sees in `hearth peer list`.
use std::sync::Arc;

use super::{FetchedKey, PeerNetwork, CLOCK_SKEW_MS, TOKEN_MAX_MS};
use crate::clock::SharedClock;
use crate::config::{Federation, FederationPolicy};
use crate::domain::error::Reason;
use crate::domain::model::Peer;
use crate::domain::rate_limit::RateLimiter;
use crate::domain::state::short_lived::{LocalMap, ShortLived};
use crate::domain::state::Store;
use crate::domain::validate::printable;
use crate::domain::{DomainError, ErrorKind};
use crate::identity::key::{address_of, verify};
use crate::identity::proofs::follow_chain;
use crate::identity::server_id::ServerId;

/// Origins with a key fetch under way at most; a lock lives as long as a fetch can take.
const MAX_FETCH_LOCKS: usize = 10_000;
const FETCH_LOCK_MS: u64 = 60_000;
/// How long a failed key fetch is remembered: callers for an unreachable origin fail fast
/// instead of queueing behind each other's timeouts.
pub const FAILED_FETCH_MS: u64 = 10_000;

/// The keys that may have signed a token from a peer.
#[derive(Debug, Clone)]
pub struct PeerKeys {
    current: [u8; 32],
    previous: Option<([u8; 32], u64)>,
}

impl PeerKeys {
    /// True when `sig` over `data` is by the current key, or by the previous key while tokens
    /// it signed can still be alive.
    pub fn verifies(&self, data: &[u8], sig: &[u8], now: u64) -> bool {
        verify(&self.current, data, sig)
            || self.previous.is_some_and(|(key, retired_at)| {
                now <= retired_at + TOKEN_MAX_MS + CLOCK_SKEW_MS && verify(&key, data, sig)
            })
    }
}

fn keys_of(row: &Peer) -> Option<PeerKeys> {
    Some(PeerKeys {
        current: row.pinned_key?,
        previous: row.previous_key,
    })
}

/// The peers service.
#[derive(Debug)]
pub struct Peers {
    store: Store,
    clock: SharedClock,
    config: Federation,
    network: Arc<dyn PeerNetwork>,
    fetch_locks: LocalMap<String, Arc<tokio::sync::Mutex<()>>>,
    failed_fetches: LocalMap<String, DomainError>,
    budgets: RateLimiter,
}

/// The most peers linked back (links a peer offered, not configured): each is probed and
/// kept linked, so an open node does not take on every node that calls.
pub const MAX_LINK_BACKS: usize = 1000;

impl Peers {
    pub fn new(
        store: Store,
        clock: SharedClock,
        config: Federation,
        network: Arc<dyn PeerNetwork>,
        budgets: RateLimiter,
    ) -> Self {
        Self {
            budgets,
            fetch_locks: LocalMap::new(clock.clone(), MAX_FETCH_LOCKS),
            failed_fetches: LocalMap::new(clock.clone(), MAX_FETCH_LOCKS),
            store,
            clock,
            config,
            network,
        }
    }

    /// Refuses `server` if policy says so.
    pub async fn check_policy(&self, server: &ServerId) -> Result<(), DomainError> {
        let fed = &self.config;
        let denied = |m: String| DomainError::denied(Reason::FederationDenied, m);
        if fed.deny.contains(server) {
            return Err(denied(format!(
                "{server} is on this node's federation denylist"
            )));
        }
        match fed.policy {
            FederationPolicy::Open => Ok(()),
            FederationPolicy::Closed => Err(denied(
                "federation is closed on this node (federation.policy = \"closed\")".into(),
            )),
            FederationPolicy::Allowlist => {
                if fed.peers.iter().any(|p| &p.server_id == server) {
                    return Ok(());
                }
                if self.peer(server).await?.is_some_and(|p| p.linked) {
                    Ok(())
                } else {
                    Err(denied(format!(
                        "{server} is not on this node's federation allowlist (federation.peers or `hearth peer link`)"
                    )))
                }
            }
        }
    }

    /// The row this node keeps for `server`, if any.
    async fn peer(&self, server: &ServerId) -> Result<Option<Peer>, DomainError> {
        let name = server.to_string();
        self.store.read(move |tx| Ok(tx.peer(&name)?)).await
    }

    async fn pinned_keys(&self, server: &ServerId) -> Result<Option<PeerKeys>, DomainError> {
        Ok(self.peer(server).await?.as_ref().and_then(keys_of))
    }

    /// The key pinned for `server`, if any.
    pub async fn pinned_key(&self, server: &ServerId) -> Result<Option<[u8; 32]>, DomainError> {
        Ok(self.peer(server).await?.and_then(|p| p.pinned_key))
    }

    /// The keys trusted for `server`: the pinned ones, or fetched and pinned on first use.
    pub async fn trusted_keys(&self, server: &ServerId) -> Result<PeerKeys, DomainError> {
        match self.pinned_keys(server).await? {
            Some(keys) => Ok(keys),
            None => self.refetch_keys(server, None).await,
        }
    }

    /// Fetches `server`'s key again and accepts it if the pin allows. One fetch per origin
    /// at a time: a caller that waited for the lock first looks whether the one before it
    /// already replaced `stale` (the keys that failed it), and then does not fetch again.
    pub async fn refetch_keys(
        &self,
        server: &ServerId,
        stale: Option<&PeerKeys>,
    ) -> Result<PeerKeys, DomainError> {
        let name = server.to_string();
        if let Some(failed) = self.failed_fetches.get(&name) {
            return Err(failed);
        }
        let lock = self
            .fetch_locks
            .get_or_insert_with(name.clone(), FETCH_LOCK_MS, Arc::default);
        let _guard = lock.lock().await;
        if let Some(failed) = self.failed_fetches.get(&name) {
            return Err(failed);
        }
        if let Some(now_pinned) = self.pinned_keys(server).await? {
            if stale.is_none_or(|s| s.current != now_pinned.current) {
                return Ok(now_pinned);
            }
        }
        let fetched = match self.network.fetch_key(server).await {
            Ok(f) => f,
            Err(e) if e.is(ErrorKind::Unavailable) => {
                self.failed_fetches.put(name, e.clone(), FAILED_FETCH_MS);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.accept_key(server, &fetched).await
    }

    /// Changes `server`'s row (created if new) in one transaction.
    async fn update_peer<R: Send + 'static>(
        &self,
        server: &ServerId,
        mut change: impl FnMut(&mut Peer) -> Result<R, DomainError> + Send + 'static,
    ) -> Result<R, DomainError> {
        let (name, now) = (server.to_string(), self.clock.now_ms());
        self.store
            .write(move |tx| {
                let mut row = tx.peer(&name)?.unwrap_or_else(|| Peer {
                    server_id: name.clone(),
                    state: "new".into(),
                    ..Peer::default()
                });
                let result = change(&mut row)?;
                row.updated_at = now;
                tx.put_peer(&row)?;
                Ok(result)
            })
            .await
    }

    /// Records a key seen for `server`: pins it on first contact, follows a valid rotation
    /// chain from the pin, and refuses any other change. The chain's signatures are checked
    /// before the write, on a blocking thread: a peer's history never holds the store's
    /// writer (nor an async worker); the write then pins the new key only if the pin is
    /// still the one the chain started from.
    pub async fn accept_key(
        &self,
        server: &ServerId,
        fetched: &FetchedKey,
    ) -> Result<PeerKeys, DomainError> {
        let (name, now) = (server.to_string(), self.clock.now_ms());
        let pinned = self.pinned_key(server).await?;
        let step = match pinned.filter(|p| *p != fetched.key) {
            None => None,
            Some(pinned) => {
                let (key, history) = (fetched.key, fetched.history.clone());
                let followed =
                    tokio::task::spawn_blocking(move || follow_chain(&pinned, &key, &history))
                        .await
                        .map_err(|e| DomainError::internal(format!("chain check: {e}")))?;
                let at = followed.map_err(|e| {
                    DomainError::denied(Reason::PeerKeyChanged, format!(
                        "{name} now presents key {}, but this node pinned {} and {e}. If the change is expected, \
                         the operator can accept it with `hearth peer pin {name}`",
                        address_of(&fetched.key),
                        address_of(&pinned)
                    ))
                })?;
                Some((pinned, at))
            }
        };
        let (offered, server_name) = (fetched.key, server.to_string());
        self.update_peer(server, move |row| {
            match (row.pinned_key, step) {
                // Pinned meanwhile to what we were offered (another call got there first).
                (Some(now_pinned), _) if now_pinned == offered => {}
                // The chain was followed from the pin this row still holds.
                (Some(now_pinned), Some((from, at))) if now_pinned == from => {
                    row.previous_key = Some((from, at.max(1).min(now)));
                }
                // First contact.
                (None, None) => {}
                _ => {
                    return Err(DomainError::unavailable(
                        Reason::PeerKeyChanged,
                        format!("the key pinned for {server_name} changed while its new key was checked; try again"),
                    ))
                }
            }
            row.pinned_key = Some(offered);
            keys_of(row).ok_or_else(|| DomainError::internal("pin vanished"))
        })
        .await
    }

    /// Whether `server`'s keys pass `check`: the trusted ones, and when they fail it, the
    /// keys fetched once more (the server may have rotated since it was pinned).
    pub async fn keys_pass(
        &self,
        server: &ServerId,
        check: impl Fn(&PeerKeys) -> bool,
    ) -> Result<bool, DomainError> {
        let keys = self.trusted_keys(server).await?;
        if check(&keys) {
            return Ok(true);
        }
        let keys = self.refetch_keys(server, Some(&keys)).await?;
        Ok(check(&keys))
    }

    /// Operator: pins `key` for `server`, replacing any pin (and forgetting the old key).
    pub async fn pin(&self, server: &ServerId, key: [u8; 32]) -> Result<(), DomainError> {
        self.update_peer(server, move |row| {
            row.pinned_key = Some(key);
            row.previous_key = None;
            Ok(())
        })
        .await?;
        tracing::info!(target: "hearth::audit", event = "peer_pinned", peer = %server, key = %address_of(&key));
        Ok(())
    }

    /// Operator: asks for a link with `server` (optionally by a static URL), or drops it.
    pub async fn set_link(
        &self,
        server: &ServerId,
        linked: bool,
        url: Option<String>,
    ) -> Result<(), DomainError> {
        tracing::info!(target: "hearth::audit", event = "peer_link_set", peer = %server, linked);
        self.update_peer(server, move |row| {
            row.linked = linked;
            if url.is_some() {
                row.url = url.clone();
            }
            if !linked {
                row.state = "unlinked".into();
                row.link_expires_at = None;
            }
            Ok(())
        })
        .await
    }

    /// Records the outcome of a link attempt with `server`: "linked" until the given expiry,
    /// "refused" when the peer's key is not accepted, "down" for any other failure.
    pub async fn record_link(
        &self,
        server: &ServerId,
        outcome: Result<u64, &DomainError>,
    ) -> Result<(), DomainError> {
        let outcome = outcome.map_err(|e| {
            (
                e.is(ErrorKind::PermissionDenied),
                printable(&e.to_string(), 500),
            )
        });
        self.update_peer(server, move |row| {
            match outcome.clone() {
                Ok(expires) => {
                    row.state = "linked".into();
                    row.last_error = None;
                    row.link_expires_at = Some(expires);
                }
                Err((refused, message)) => {
                    row.state = if refused { "refused" } else { "down" }.into();
                    row.last_error = Some(message);
                }
            }
            Ok(())
        })
        .await
    }

    /// Takes one call from `server`'s own budget (`calls_per_peer_per_minute`): a peer that
    /// proved who it is pays from its budget, from whatever address it calls.
    pub async fn charge(&self, server: &ServerId) -> Result<(), DomainError> {
        let key = format!("peer {server}");
        match self
            .budgets
            .take(&key, self.config.calls_per_peer_per_minute)
            .await?
        {
            true => Ok(()),
            false => Err(DomainError::exhausted(
                Reason::PeerThrottled,
                format!("too many calls from {server}; try again in a minute"),
            )),
        }
    }

    /// A peer that proved its name and key linked here: unless it is wanted already, or an
    /// operator unlinked it (`hearth peer unlink`), it is linked back (through `url`, when
    /// given), up to [`MAX_LINK_BACKS`]. True when this made it wanted.
    pub async fn link_back(
        &self,
        server: &ServerId,
        url: Option<String>,
    ) -> Result<bool, DomainError> {
        if self.config.peers.iter().any(|p| &p.server_id == server) {
            return Ok(false);
        }
        let (name, now) = (server.to_string(), self.clock.now_ms());
        let added = self
            .store
            .write(move |tx| {
                let rows = tx.peers()?;
                let row = rows.iter().find(|r| r.server_id == name);
                if row.is_some_and(|r| r.linked || r.state == "unlinked")
                    || rows.iter().filter(|r| r.linked).count() >= MAX_LINK_BACKS
                {
                    return Ok::<_, DomainError>(false);
                }
                let mut row = row.cloned().unwrap_or_else(|| Peer {
                    server_id: name.clone(),
                    state: "new".into(),
                    ..Peer::default()
                });
                row.linked = true;
                if url.is_some() {
                    row.url = url.clone();
                }
                row.updated_at = now;
                tx.put_peer(&row)?;
                Ok(true)
            })
            .await?;
        if added {
            tracing::info!(target: "hearth::audit", event = "peer_linked_back", peer = %server);
        }
        Ok(added)
    }

    /// Whether a caller's URL may stand in for discovery (`accept_caller_urls`).
    pub fn accepts_caller_urls(&self) -> bool {
        self.config.accept_caller_urls
    }

    /// Every peer this node knows.
    pub async fn list(&self) -> Result<Vec<Peer>, DomainError> {
        self.store.read(|tx| Ok(tx.peers()?)).await
    }

    /// The peers that should be linked: configured ones and operator-linked ones, each with
    /// its static route if the operator gave one.
    pub async fn wanted(&self) -> Result<Vec<(ServerId, Option<String>)>, DomainError> {
        let mut wanted: Vec<(ServerId, Option<String>)> = self
            .config
            .peers
            .iter()
            .map(|p| (p.server_id.clone(), None))
            .collect();
        for row in self.list().await? {
            if let (true, Ok(id)) = (row.linked, ServerId::parse(&row.server_id)) {
                match wanted.iter_mut().find(|(w, _)| *w == id) {
                    Some(entry) => entry.1 = row.url,
                    None => wanted.push((id, row.url)),
                }
            }
        }
        Ok(wanted)
    }
}
