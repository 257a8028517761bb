//! The peer challenge (auth.Auth, DESIGN.md §4.4), both halves. Server: prove this node's
//! key by signing the client's challenge, check the client's proof, confirm through
//! discovery and `Key` that the claimed name owns the key, pin it, and issue a peer token
//! (1 h) that can be rotated or revoked. Client: the same conversation from the other side,
//! used by the link keeper.
use std::sync::Arc;

use base64::Engine;
use rand::RngCore;

use super::notices::Notices;
use super::peers::Peers;
use super::{ChallengeReply, FetchedKey, PeerHello, PeerNetwork, PEER_TOKEN_MS};
use crate::clock::SharedClock;
use crate::domain::error::Reason;
use crate::domain::keyring::KeyRing;
use crate::domain::state::shared_map::{take, SharedMap};
use crate::domain::state::Store;
use crate::domain::{DomainError, ErrorKind};
use crate::identity::key::{address_of, parse_address, verify, NodeKey};
use crate::identity::proofs::{client_proof, server_proof};
use crate::identity::server_id::ServerId;
use crate::secret::{BearerSecret, SecretKind};

/// How long a server challenge may be answered.
pub const CHALLENGE_MS: u64 = 60 * 1000;
/// Open challenges kept at most; a flood evicts the oldest.
pub const MAX_PENDING: usize = 10_000;

/// A challenger: its claimed name and the key it presented.
pub type Challenger = (String, [u8; 32]);

/// The key of a pending challenge in the (possibly shared) map.
fn pending_key((name, key): &Challenger) -> String {
    format!("{name} {}", hex::encode(key))
}

/// A peer token this node issued.
#[derive(Debug)]
pub struct PeerToken {
    /// The token (hand it over once).
    pub token: BearerSecret,
    /// Its expiry (unix ms).
    pub expires_at: u64,
}

/// A link just made with another node.
#[derive(Debug)]
pub struct Linked {
    /// The key the node proved.
    pub key: [u8; 32],
    /// Our peer token there.
    pub token: String,
    /// When that token expires (unix ms, by our clock).
    pub expires_at: u64,
}

fn parse_peer(p: &PeerHello) -> Result<(ServerId, [u8; 32]), DomainError> {
    let name =
        ServerId::parse(&p.name).map_err(|e| DomainError::invalid("client.name", e.to_string()))?;
    let key = parse_address(&p.address).ok_or_else(|| {
        DomainError::invalid(
            "client.participant_address",
            "expected ed25519: followed by 64 lowercase hex digits",
        )
    })?;
    Ok((name, key))
}

fn peer_token_unknown(m: &str) -> DomainError {
    DomainError::unauthenticated(Reason::PeerTokenUnknown, m)
}

/// The peer challenge service.
pub struct PeerChallenge {
    store: Store,
    clock: SharedClock,
    keys: Arc<KeyRing>,
    me: PeerHello,
    pending: Arc<dyn SharedMap<String>>,
    peers: Arc<Peers>,
    network: Arc<dyn PeerNetwork>,
    notices: Arc<Notices>,
}

impl std::fmt::Debug for PeerChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerChallenge")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl PeerChallenge {
    /// The service; `me` names this node (its address follows `keys`), `pending` holds
    /// open server challenges.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        clock: SharedClock,
        keys: Arc<KeyRing>,
        me: PeerHello,
        pending: Arc<dyn SharedMap<String>>,
        peers: Arc<Peers>,
        network: Arc<dyn PeerNetwork>,
        notices: Arc<Notices>,
    ) -> Self {
        Self {
            store,
            clock,
            keys,
            me,
            pending,
            peers,
            network,
            notices,
        }
    }

    /// This node as a peer, with the key it signs as, both of one moment (a cluster may
    /// rotate between two calls).
    fn me_and_key(&self) -> (PeerHello, NodeKey) {
        let key = self.keys.current().node.clone();
        let me = PeerHello {
            address: key.address(),
            ..self.me.clone()
        };
        (me, key)
    }

    /// This node as a peer.
    pub fn me(&self) -> PeerHello {
        self.me_and_key().0
    }

    // --- server half ---

    /// GetChallenge: answers with a fresh challenge and this node's proof over the client's.
    pub async fn challenge(
        &self,
        client: &PeerHello,
        expected: &str,
        client_challenge: &[u8],
    ) -> Result<ChallengeReply, DomainError> {
        let (me, signer) = self.me_and_key();
        let (name, key) = parse_peer(client)?;
        if name.to_string() == me.name {
            return Err(DomainError::invalid(
                "client.name",
                "that is this node's own name",
            ));
        }
        if !expected.is_empty() && expected != me.address {
            return Err(DomainError::precondition(
                Reason::PeerExpectsOtherKey,
                format!(
                    "operator_address: you expect this node to have key {expected}, but its key is {}",
                    me.address
                ),
            ));
        }
        if client_challenge.len() != 32 {
            return Err(DomainError::invalid(
                "client_challenge",
                "must be 32 random bytes",
            ));
        }
        self.peers.check_policy(&name).await?;
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        self.pending
            .put(
                &pending_key(&(name.to_string(), key)),
                challenge.clone(),
                CHALLENGE_MS,
            )
            .await?;
        let proof = server_proof(
            &me.name,
            &me.address,
            &name.to_string(),
            &client.address,
            client_challenge,
        );
        Ok(ChallengeReply {
            server_signature: signer.sign(proof.as_bytes()).to_vec(),
            server: me.clone(),
            server_challenge: challenge,
        })
    }

    /// Authenticate: checks the client's proof and that its name owns its key, pins the key,
    /// and issues a peer token.
    pub async fn authenticate(
        &self,
        client: &PeerHello,
        signature: &[u8],
    ) -> Result<PeerToken, DomainError> {
        let me = self.me();
        let (name, key) = parse_peer(client)?;
        let pending = pending_key(&(name.to_string(), key));
        let challenge = take(self.pending.as_ref(), &pending).await?.ok_or_else(|| {
            DomainError::unauthenticated(
                Reason::ChallengeUnknown,
                "no live challenge for this peer; call GetChallenge first (a challenge works once, for 60 s)",
            )
        })?;
        let proof = client_proof(
            &me.name,
            &me.address,
            &name.to_string(),
            &client.address,
            &challenge,
        );
        if !verify(&key, proof.as_bytes(), signature) {
            return Err(DomainError::unauthenticated(
                Reason::PeerProofInvalid,
                format!(
                    "signed_server_challenge does not verify with {}",
                    client.address
                ),
            ));
        }
        self.peers.check_policy(&name).await?;
        // The key proved itself: from here on the peer pays from its own budget.
        self.peers.charge(&name).await?;
        // Now the name must prove it belongs to that key: through discovery, or where the
        // operator allows it and discovery finds nothing, through the caller's own URL.
        let url = (!client.url.is_empty()).then(|| client.url.clone());
        let served: FetchedKey = match (self.network.fetch_key(&name).await, &url) {
            (Err(e), Some(url))
                if e.is(ErrorKind::Unavailable) && self.peers.accepts_caller_urls() =>
            {
                let served = self.network.fetch_key_at(&name, url).await?;
                self.network.set_route(&name, url);
                served
            }
            (found, _) => found?,
        };
        if served.key != key {
            return Err(DomainError::denied(
                Reason::PeerNameMismatch,
                format!(
                    "{name} is served with key {}; the key that signed this challenge ({}) does not own that name",
                    address_of(&served.key),
                    client.address
                ),
            ));
        }
        self.peers.accept_key(&name, &served).await?;
        let token = self.issue_token(name.to_string(), None).await?;
        // A peer that links again asks, by linking, for the notices it missed.
        self.notices.peer_back(&name).await;
        // A link this node did not ask for is returned (DESIGN.md §4.8), through the URL the
        // caller gave now that its key is confirmed.
        if let Err(e) = self.peers.link_back(&name, url).await {
            tracing::warn!(peer = %name, error = %e, "linking back");
        }
        Ok(token)
    }

    /// Issues a new peer token for `server`; with `replacing`, that token is taken in the
    /// same transaction (delete-returning), so of many refreshes exactly one wins.
    async fn issue_token(
        &self,
        server: String,
        replacing: Option<[u8; 32]>,
    ) -> Result<PeerToken, DomainError> {
        let token = BearerSecret::generate(SecretKind::Peer);
        let now = self.clock.now_ms();
        let (hash, expires_at) = (token.hash(), now + PEER_TOKEN_MS);
        self.store
            .write(move |tx| {
                let server = match replacing {
                    None => server.clone(),
                    Some(old) => tx
                        .take_peer_token(&old)?
                        .filter(|(_, exp)| *exp > now)
                        .map(|(s, _)| s)
                        .ok_or_else(|| {
                            peer_token_unknown(
                                "the peer token is unknown, revoked or expired; authenticate again",
                            )
                        })?,
                };
                tx.insert_peer_token(&hash, &server, expires_at)?;
                Ok::<_, DomainError>(())
            })
            .await?;
        Ok(PeerToken { token, expires_at })
    }

    fn parse_token(token: &str) -> Result<BearerSecret, DomainError> {
        let secret =
            BearerSecret::parse(token).map_err(|e| DomainError::invalid("token", e.to_string()))?;
        if secret.kind() != SecretKind::Peer {
            return Err(DomainError::invalid("token", "not a peer token (hpeer_…)"));
        }
        Ok(secret)
    }

    /// TokenRefresh: a new peer token; the old one dies in the same transaction.
    pub async fn refresh(&self, token: &str) -> Result<PeerToken, DomainError> {
        let server = self.peer_of_token(token).await?;
        if let Ok(server) = ServerId::parse(&server) {
            self.peers.charge(&server).await?;
        }
        let old = Self::parse_token(token)?.hash();
        self.issue_token(String::new(), Some(old)).await
    }

    /// Signout: revokes a peer token. Revoking an unknown or revoked token is not an error.
    pub async fn signout(&self, token: &str) -> Result<(), DomainError> {
        let hash = Self::parse_token(token)?.hash();
        self.store
            .write(move |tx| Ok::<_, DomainError>(tx.take_peer_token(&hash).map(|_| ())?))
            .await
    }

    /// The server this peer token belongs to, if it is alive.
    pub async fn peer_of_token(&self, token: &str) -> Result<String, DomainError> {
        let hash = Self::parse_token(token)?.hash();
        let now = self.clock.now_ms();
        self.store
            .lookup(move |tx| Ok::<_, DomainError>(tx.peer_token(&hash)?))
            .await?
            .filter(|(_, exp)| *exp > now)
            .map(|(s, _)| s)
            .ok_or_else(|| peer_token_unknown("the peer token is unknown, revoked or expired"))
    }

    // --- client half ---

    /// Runs the peer challenge with `server` as the client, expecting it to have `expected`
    /// (our pin): send our challenge, check the server's proof over it, answer its challenge.
    pub async fn link(
        &self,
        server: &ServerId,
        expected: Option<&str>,
    ) -> Result<Linked, DomainError> {
        let (me, signer) = self.me_and_key();
        let mut challenge = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut challenge);
        let reply = self
            .network
            .get_challenge(server, &me, expected.unwrap_or_default(), &challenge)
            .await?;
        let peer = reply.server;
        if peer.name != server.to_string() {
            return Err(DomainError::denied(
                Reason::PeerNameMismatch,
                format!("{server} answered as `{}`", peer.name),
            ));
        }
        let key = parse_address(&peer.address).ok_or_else(|| {
            DomainError::unauthenticated(
                Reason::PeerProofInvalid,
                format!("{server} sent a malformed participant_address"),
            )
        })?;
        let proof = server_proof(&peer.name, &peer.address, &me.name, &me.address, &challenge);
        if !verify(&key, proof.as_bytes(), &reply.server_signature) {
            return Err(DomainError::unauthenticated(
                Reason::PeerProofInvalid,
                format!(
                    "{server}'s server_signature does not verify with the key it claims ({})",
                    peer.address
                ),
            ));
        }
        let answer = client_proof(
            &peer.name,
            &peer.address,
            &me.name,
            &me.address,
            &reply.server_challenge,
        );
        let signature = signer.sign(answer.as_bytes()).to_vec();
        let token = self
            .network
            .authenticate(server, &me, signature, &peer.address)
            .await?;
        Ok(Linked {
            key,
            token,
            expires_at: self.clock.now_ms() + PEER_TOKEN_MS,
        })
    }
}
