//! Keeping peers linked (DESIGN.md §4.5): peers from `[[federation.peers]]` and from
//! `hearth peer link` are linked at start-up, refreshed before their peer token expires, and
//! retried with backoff while down. A pinned key that changed is followed only through a valid
//! rotation chain; otherwise the link is refused until the operator re-pins.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::challenge::{Linked, PeerChallenge};
use super::peers::Peers;
use super::{FetchedKey, PeerNetwork};
use crate::clock::SharedClock;
use crate::domain::state::jobs::{Job, JobLeases};
use crate::domain::{DomainError, ErrorKind};
use crate::identity::key::address_of;
use crate::identity::server_id::ServerId;

/// Re-link this long before the peer token expires.
pub const REFRESH_BEFORE_MS: u64 = 10 * 60 * 1000;
const MAX_BACKOFF_MS: u64 = 5 * 60 * 1000;

#[derive(Debug, Default, Clone)]
struct LinkState {
    token: Option<String>,
    expires_at: u64,
    next_attempt: u64,
    failures: u32,
}

/// Links this node with its peers. Its state is one entry per wanted peer (bounded by the
/// configured and operator-linked peers).
#[derive(Debug)]
pub struct Links {
    peers: Arc<Peers>,
    challenge: Arc<PeerChallenge>,
    network: Arc<dyn PeerNetwork>,
    clock: SharedClock,
    jobs: Arc<dyn JobLeases>,
    state: Mutex<HashMap<ServerId, LinkState>>,
}

impl Links {
    /// A link keeper.
    pub fn new(
        peers: Arc<Peers>,
        challenge: Arc<PeerChallenge>,
        network: Arc<dyn PeerNetwork>,
        clock: SharedClock,
        jobs: Arc<dyn JobLeases>,
    ) -> Arc<Self> {
        Arc::new(Self {
            peers,
            challenge,
            network,
            clock,
            jobs,
            state: Mutex::new(HashMap::new()),
        })
    }

    fn get(&self, server: &ServerId) -> LinkState {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.get(server).cloned())
            .unwrap_or_default()
    }

    fn set(&self, server: &ServerId, state: LinkState) {
        if let Ok(mut s) = self.state.lock() {
            s.insert(server.clone(), state);
        }
    }

    /// The peers that should be linked, with their static routes handed to the network.
    async fn wanted(&self) -> Result<Vec<ServerId>, DomainError> {
        let wanted = self.peers.wanted().await?;
        for (id, url) in &wanted {
            if let Some(url) = url {
                self.network.set_route(id, url);
            }
        }
        Ok(wanted.into_iter().map(|(id, _)| id).collect())
    }

    /// Links (or refreshes the link) with `server` now, and records the outcome.
    pub async fn link_now(&self, server: &ServerId) -> Result<(), DomainError> {
        let mut state = self.get(server);
        let now = self.clock.now_ms();
        let refreshed = match &state.token {
            Some(token) if state.expires_at > now => self
                .network
                .refresh(server, token)
                .await
                .ok()
                .map(|t| (t, self.clock.now_ms() + super::PEER_TOKEN_MS)),
            _ => None,
        };
        let result = match refreshed {
            Some(pair) => Ok(pair),
            None => self
                .link_with_pin(server)
                .await
                .map(|l| (l.token, l.expires_at)),
        };
        let now = self.clock.now_ms();
        match result {
            Ok((token, expires_at)) => {
                self.peers.record_link(server, Ok(expires_at)).await?;
                self.set(
                    server,
                    LinkState {
                        token: Some(token),
                        expires_at,
                        next_attempt: expires_at.saturating_sub(REFRESH_BEFORE_MS),
                        failures: 0,
                    },
                );
                Ok(())
            }
            Err(e) => {
                self.peers.record_link(server, Err(&e)).await?;
                state.failures += 1;
                state.next_attempt = now + (1_000u64 << state.failures.min(10)).min(MAX_BACKOFF_MS);
                self.set(server, state);
                Err(e)
            }
        }
    }

    async fn link_with_pin(&self, server: &ServerId) -> Result<Linked, DomainError> {
        let mut pinned = self.peers.pinned_key(server).await?;
        let expected = pinned.map(|k| address_of(&k));
        let linked = match self.challenge.link(server, expected.as_deref()).await {
            Err(e) if e.is(ErrorKind::FailedPrecondition) && pinned.is_some() => {
                // The peer has another key than our pin: accept it only through its chain.
                let fetched = self.network.fetch_key(server).await?;
                self.peers.accept_key(server, &fetched).await?;
                pinned = Some(fetched.key);
                self.challenge
                    .link(server, Some(&address_of(&fetched.key)))
                    .await?
            }
            other => other?,
        };
        let history = match pinned {
            Some(p) if p != linked.key => self.network.fetch_key(server).await?.history,
            _ => Vec::new(),
        };
        let fetched = FetchedKey {
            key: linked.key,
            history,
        };
        self.peers.accept_key(server, &fetched).await?;
        Ok(linked)
    }

    /// Forgets the link with `server` and revokes our token there (Signout).
    pub async fn unlink(&self, server: &ServerId) -> Result<(), DomainError> {
        let state = self.get(server);
        self.set(server, LinkState::default());
        match &state.token {
            Some(token) => self.network.signout(server, token).await,
            None => Ok(()),
        }
    }

    /// Signs out of peers that are linked here but no longer wanted (`hearth peer unlink`).
    async fn drop_unwanted(&self, wanted: &[ServerId]) {
        let stale: Vec<ServerId> = self
            .state
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|(id, st)| st.token.is_some() && !wanted.contains(id))
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        for server in stale {
            match self.unlink(&server).await {
                Ok(()) => tracing::info!(peer = %server, "unlinked; peer token signed out"),
                Err(e) => {
                    tracing::warn!(peer = %server, error = %e, "unlinked; signing out at the peer failed")
                }
            }
        }
    }

    /// Our current peer token at `server`, if linked.
    pub fn token(&self, server: &ServerId) -> Option<String> {
        self.get(server).token
    }

    /// The background loop: one pass a second over peers that are due.
    pub fn spawn(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let mine = self.jobs.hold(Job::LinkKeeper).await;
                if let (true, Ok(wanted)) = (mine, self.wanted().await) {
                    self.drop_unwanted(&wanted).await;
                    let now = self.clock.now_ms();
                    // Peers are linked concurrently: a dead one does not hold up the rest.
                    let due = wanted
                        .into_iter()
                        .filter(|server| self.get(server).next_attempt <= now);
                    let this = &self;
                    futures_util::future::join_all(due.map(|server| async move {
                        match this.link_now(&server).await {
                            Err(e) => tracing::warn!(peer = %server, error = %e, "federation link failed; will retry"),
                            Ok(()) => tracing::info!(peer = %server, "federation link up"),
                        }
                    }))
                    .await;
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }
}
