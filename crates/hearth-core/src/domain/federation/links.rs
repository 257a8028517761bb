//! Keeping peers linked (DESIGN.md §4.5): peers from `[[federation.peers]]` and from
//! `hearth peer link` are linked at start-up, refreshed before their peer token expires, and
//! retried with backoff while down. A pinned key that changed is followed only through a valid
//! rotation chain; otherwise the link is refused until the operator re-pins. Every wanted peer
//! is probed with Key (cheap, no signature) every [`PROBE_EVERY_MS`] (DESIGN.md §4.8): a
//! linked peer that stops answering shows `down` with its error at the next probe, and one
//! that answers again is linked again at once rather than after its backoff.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::challenge::{Linked, PeerChallenge};
use super::notices::Notices;
use super::peers::Peers;
use super::{FetchedKey, PeerNetwork};
use crate::clock::SharedClock;
use crate::domain::state::jobs::{Job, JobLeases};
use crate::domain::{DomainError, ErrorKind};
use crate::identity::key::address_of;
use crate::identity::server_id::ServerId;

/// Re-link this long before the peer token expires.
pub const REFRESH_BEFORE_MS: u64 = 10 * 60 * 1000;
/// How often each wanted peer is asked for its key: well inside DESIGN.md §4.8's 30 s, so a
/// dead peer shows `down` within 60 s even when a probe times out.
pub const PROBE_EVERY_MS: u64 = 20_000;

#[derive(Debug, Default, Clone)]
struct LinkState {
    token: Option<String>,
    expires_at: u64,
    next_attempt: u64,
    failures: u32,
    probed_at: u64,
    /// The key the peer linked with (a probe that sees another one relinks at once).
    key: Option<[u8; 32]>,
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
    notices: Arc<Notices>,
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
        notices: Arc<Notices>,
    ) -> Arc<Self> {
        Arc::new(Self {
            peers,
            challenge,
            network,
            clock,
            jobs,
            notices,
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

    /// Changes `server`'s entry in place: a link or probe that awaited the network writes
    /// only what it learned, never a copy read before the await over a newer one.
    fn update(&self, server: &ServerId, change: impl FnOnce(&mut LinkState)) {
        if let Ok(mut s) = self.state.lock() {
            change(s.entry(server.clone()).or_default());
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
        let state = self.get(server);
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
            Some((token, expires)) => Ok((token, expires, state.key)),
            None => self
                .link_with_pin(server)
                .await
                .map(|l| (l.token, l.expires_at, Some(l.key))),
        };
        let now = self.clock.now_ms();
        match result {
            Ok((token, expires_at, key)) => {
                self.peers.record_link(server, Ok(expires_at)).await?;
                if state.failures > 0 || state.token.is_none() {
                    self.notices.peer_back(server).await;
                }
                self.set(
                    server,
                    LinkState {
                        token: Some(token),
                        expires_at,
                        next_attempt: expires_at.saturating_sub(REFRESH_BEFORE_MS),
                        failures: 0,
                        probed_at: now,
                        key,
                    },
                );
                Ok(())
            }
            Err(e) => {
                self.failed(server, &e, now).await?;
                Err(e)
            }
        }
    }

    /// Records a failed link or probe: `down` (or `refused`) with the error, and the next
    /// attempt after a backoff that doubles up to [`super::MAX_BACKOFF_MS`].
    async fn failed(
        &self,
        server: &ServerId,
        e: &DomainError,
        now: u64,
    ) -> Result<(), DomainError> {
        self.peers.record_link(server, Err(e)).await?;
        self.update(server, |state| {
            state.failures += 1;
            state.next_attempt = now + super::backoff_ms(state.failures);
            state.probed_at = now;
        });
        Ok(())
    }

    /// Asks `server` for its key. A linked peer that does not answer is marked down; a peer
    /// that was down and answers, or answers with another key, is linked again now.
    async fn probe(&self, server: &ServerId) {
        let now = self.clock.now_ms();
        self.update(server, |s| s.probed_at = now);
        let state = self.get(server);
        match self.network.fetch_key(server).await {
            Ok(fetched) if state.failures > 0 || state.key.is_some_and(|k| k != fetched.key) => {
                self.update(server, |s| s.next_attempt = now);
            }
            Ok(_) => {}
            Err(e) if state.failures == 0 && state.token.is_some() => {
                tracing::warn!(peer = %server, error = %e, "federation peer stopped answering");
                if let Err(e) = self.failed(server, &e, now).await {
                    tracing::warn!(peer = %server, error = %e, "recording a failed probe");
                }
            }
            // Down already: the link attempts' backoff goes on.
            Err(_) => {}
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
                    // Peers are linked and probed concurrently: a dead one does not hold up
                    // the rest.
                    let (due, rest): (Vec<_>, Vec<_>) = wanted
                        .into_iter()
                        .partition(|server| self.get(server).next_attempt <= now);
                    let probed = rest
                        .into_iter()
                        .filter(|server| self.get(server).probed_at + PROBE_EVERY_MS <= now);
                    let this = &self;
                    let links = futures_util::future::join_all(due.into_iter().map(|server| async move {
                        match this.link_now(&server).await {
                            Err(e) => tracing::warn!(peer = %server, error = %e, "federation link failed; will retry"),
                            Ok(()) => tracing::info!(peer = %server, "federation link up"),
                        }
                    }));
                    let probes = futures_util::future::join_all(
                        probed.map(|server| async move { this.probe(&server).await }),
                    );
                    futures_util::future::join(links, probes).await;
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }
}
