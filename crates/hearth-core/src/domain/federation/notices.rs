//! Revocation across nodes (DESIGN.md §4.7). A home node records, at each Federate, which
//! node got a token from which of its sessions (a grant); when that session ends, by any
//! path, the store's trigger moves its grants into an outbox in the same write. [`Notices`]
//! delivers the outbox (signed notices, retried with backoff, one node of a cluster at a
//! time) and receives other nodes' notices: checked against the sender's pinned key, each
//! ends the foreign sessions made from that home session at once, and is applied once.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::peers::Peers;
use super::{backoff_ms, PeerNetwork, CLOCK_SKEW_MS};
use crate::clock::SharedClock;
use crate::domain::error::Reason;
use crate::domain::keyring::KeyRing;
use crate::domain::sessions::Sessions;
use crate::domain::state::jobs::{Job, JobLeases};
use crate::domain::state::Store;
use crate::domain::{DomainError, ErrorKind};
use crate::identity::proofs::revocation_notice;
use crate::identity::server_id::ServerId;

/// The most notices in one request.
pub const MAX_PER_REQUEST: usize = 100;
/// How long an applied notice is remembered (a replay within it is refused), and the oldest
/// notice accepted. Senders sign each attempt anew, so a live sender's notice is fresh.
pub const KEEP_MS: u64 = 24 * 3600 * 1000;
/// How long the outbox retries a peer that does not take its notices before giving up.
pub const GIVE_UP_MS: u64 = 3 * 24 * 3600 * 1000;
/// Notices read from the outbox per pass.
const BATCH: u32 = 1000;

/// A signed notice (`protocol.auth.v1.RevocationNotice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The home node, the signer.
    pub home: String,
    /// The node it is for.
    pub target: String,
    /// The user's id at home.
    pub user_id: u64,
    /// The home session (or personal access token) that ended.
    pub home_session: u64,
    /// When it was signed (unix ms).
    pub at: u64,
    /// ed25519 over [`revocation_notice`].
    pub sig: Vec<u8>,
}

impl Notice {
    fn message(&self) -> String {
        revocation_notice(
            &self.home,
            &self.target,
            self.user_id,
            self.home_session,
            self.at,
        )
    }
}

/// What a receiver did with a request's notices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Applied now.
    pub applied: u32,
    /// Applied before (a retry or a replay).
    pub already: u32,
}

/// The shortest time between two passes of the sender: revocations come in bursts (an
/// account at its session cap ends one at every sign-in, and each wakes the sender), and
/// one pass sends what all of them put in the outbox, one read instead of one per
/// revocation.
const PASS_GAP: Duration = Duration::from_millis(50);

/// Sends and receives revocation notices.
#[derive(Debug)]
pub struct Notices {
    store: Store,
    clock: SharedClock,
    me: ServerId,
    keys: Arc<KeyRing>,
    peers: Arc<Peers>,
    network: Arc<dyn PeerNetwork>,
    sessions: Arc<Sessions>,
    jobs: Arc<dyn JobLeases>,
    wake: Arc<Notify>,
}

impl Notices {
    /// The service; every revocation announced on this node (or, in a cluster, on any node)
    /// wakes the sender, since it may have filled the outbox.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        clock: SharedClock,
        me: ServerId,
        keys: Arc<KeyRing>,
        peers: Arc<Peers>,
        network: Arc<dyn PeerNetwork>,
        sessions: Arc<Sessions>,
        jobs: Arc<dyn JobLeases>,
        revocations: &dyn crate::domain::state::revocations::Revocations,
    ) -> Arc<Self> {
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        revocations.subscribe(Arc::new(move |_| w.notify_one()));
        Arc::new(Self {
            store,
            clock,
            me,
            keys,
            peers,
            network,
            sessions,
            jobs,
            wake,
        })
    }

    /// `peer` linked with this node again (or answered again): what it missed goes now.
    pub async fn peer_back(&self, peer: &ServerId) {
        let peer = peer.to_string();
        match self.store.write(move |tx| tx.notices_due_now(&peer)).await {
            Ok(()) => self.wake.notify_one(),
            Err(e) => tracing::warn!(error = %e, "making a peer's notices due"),
        }
    }

    /// How many notices wait in the outbox.
    pub async fn waiting(&self) -> Result<u64, DomainError> {
        Ok(self.store.read(|tx| tx.waiting_notices()).await?)
    }

    /// Receives notices from one home node: all are checked (sender, audience, age, the
    /// home node's key) before any is applied; each then ends the foreign sessions bound to
    /// its home session, once.
    pub async fn receive(&self, notices: Vec<Notice>) -> Result<Receipt, DomainError> {
        let Some(first) = notices.first() else {
            return Err(DomainError::invalid("notices", "send 1 to 100 notices"));
        };
        if notices.len() > MAX_PER_REQUEST {
            return Err(DomainError::invalid(
                "notices",
                format!(
                    "{} notices: send at most {MAX_PER_REQUEST} per request",
                    notices.len()
                ),
            ));
        }
        let home = ServerId::parse(&first.home)
            .map_err(|e| DomainError::invalid("notices.home_server", e.to_string()))?;
        if home == self.me {
            return Err(DomainError::denied(
                Reason::NoticeRefused,
                "a node does not send notices to itself",
            ));
        }
        let canonical = home.to_string();
        let me = self.me.to_string();
        let now = self.clock.now_ms();
        for n in &notices {
            if n.home != canonical {
                return Err(DomainError::invalid(
                    "notices.home_server",
                    "every notice of a request must come from one home node",
                ));
            }
            if n.target != me {
                return Err(DomainError::denied(
                    Reason::NoticeRefused,
                    format!("a notice is for {}, not for this node ({me})", n.target),
                ));
            }
            if n.at > now + CLOCK_SKEW_MS || n.at + KEEP_MS < now {
                return Err(DomainError::invalid_because(
                    "notices.at",
                    Reason::NoticeRefused,
                    "the notice was not signed within the last day; check both nodes' clocks",
                ));
            }
        }
        self.peers.check_policy(&home).await?;
        let signed = |keys: &super::peers::PeerKeys| {
            notices
                .iter()
                .all(|n| keys.verifies(n.message().as_bytes(), &n.sig, now))
        };
        if !self.peers.keys_pass(&home, signed).await? {
            return Err(DomainError::unauthenticated(
                Reason::NoticeSignatureInvalid,
                format!("a notice's signature does not verify with {canonical}'s key"),
            ));
        }
        // The sender proved who it is: it pays from its own budget, not its address's.
        self.peers.charge(&home).await?;
        let keep_until = now + KEEP_MS;
        let (receipt, ended) = self
            .store
            .write(move |tx| {
                let mut receipt = Receipt::default();
                let mut ended = Vec::new();
                for n in &notices {
                    match tx.end_home_session(
                        &n.home,
                        n.user_id,
                        n.home_session,
                        keep_until,
                        now,
                    )? {
                        Some(ids) => {
                            receipt.applied += 1;
                            ended.extend(ids);
                        }
                        None => receipt.already += 1,
                    }
                }
                Ok::<_, DomainError>((receipt, ended))
            })
            .await?;
        if !ended.is_empty() {
            tracing::info!(target: "hearth::audit", event = "foreign_sessions_ended", origin = %canonical, count = ended.len());
            self.sessions.announce(&ended);
        }
        Ok(receipt)
    }

    /// One pass over the outbox: the due notices, signed and sent to each peer in parallel.
    /// Returns how many were delivered.
    pub async fn deliver_due(&self) -> Result<usize, DomainError> {
        let now = self.clock.now_ms();
        let due = self
            .store
            .read(move |tx| tx.due_notices(now, BATCH))
            .await?;
        let mut by_peer: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for n in due {
            by_peer.entry(n.peer.clone()).or_default().push(n);
        }
        let sends = by_peer
            .into_iter()
            .map(|(peer, pending)| self.deliver_to(peer, pending));
        let delivered = futures_util::future::join_all(sends).await;
        Ok(delivered.into_iter().sum())
    }

    async fn deliver_to(
        &self,
        peer: String,
        pending: Vec<crate::domain::model::PendingNotice>,
    ) -> usize {
        let now = self.clock.now_ms();
        let (stale, pending): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|n| n.created_at + GIVE_UP_MS < now);
        let mut done: Vec<u64> = stale.iter().map(|n| n.id).collect();
        if !stale.is_empty() {
            tracing::warn!(peer = %peer, count = stale.len(), "revocation notices abandoned: the peer did not take them for three days");
        }
        let mut delivered = 0;
        let mut retry = Vec::new();
        match ServerId::parse(&peer) {
            Err(_) => done.extend(pending.iter().map(|n| n.id)),
            Ok(server) => {
                let key = self.keys.current();
                let me = self.me.to_string();
                for chunk in pending.chunks(MAX_PER_REQUEST) {
                    let notices = chunk
                        .iter()
                        .map(|p| {
                            let mut n = Notice {
                                home: me.clone(),
                                target: peer.clone(),
                                user_id: p.user_id,
                                home_session: p.home_session,
                                at: now,
                                sig: Vec::new(),
                            };
                            n.sig = key.node.sign(n.message().as_bytes()).to_vec();
                            n
                        })
                        .collect();
                    let ids = chunk.iter().map(|n| n.id);
                    match self.network.revoke_federated(&server, notices).await {
                        Ok(()) => {
                            delivered += chunk.len();
                            done.extend(ids);
                        }
                        // The peer read and refused them: sending again would not help.
                        Err(e)
                            if e.is(ErrorKind::InvalidArgument)
                                || e.is(ErrorKind::PermissionDenied) =>
                        {
                            tracing::warn!(peer = %peer, error = %e, "revocation notices refused; dropped");
                            done.extend(ids);
                        }
                        Err(e) => {
                            tracing::warn!(peer = %peer, error = %e, "revocation notices not delivered; will retry");
                            let attempts = chunk.iter().map(|n| n.attempts).max().unwrap_or(0);
                            retry.push((ids.collect::<Vec<_>>(), now + backoff_ms(attempts)));
                        }
                    }
                }
            }
        }
        let written = self
            .store
            .write(move |tx| {
                tx.delete_notices(&done)?;
                for (ids, next_at) in &retry {
                    tx.retry_notices(ids, *next_at)?;
                }
                Ok::<_, DomainError>(())
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(peer = %peer, error = %e, "recording notice deliveries");
        }
        delivered
    }

    /// The background sender: a pass whenever a revocation is announced or a peer comes
    /// back (at most one per [`PASS_GAP`]), and at least once a second (retries that came
    /// due).
    pub fn spawn(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if self.jobs.hold(Job::NoticeSender).await {
                    if let Err(e) = self.deliver_due().await {
                        tracing::warn!(error = %e, "reading the revocation outbox");
                    }
                }
                let passed = tokio::time::Instant::now();
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
                tokio::select! {
                    () = tokio::time::sleep_until(passed + PASS_GAP) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }
}
