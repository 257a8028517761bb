//! The server half of the peer challenge (auth.Auth, DESIGN.md §4.4): prove this node's key
//! by signing the client's challenge, check the client's proof, confirm through discovery and
//! `Key` that the claimed name owns the key, pin it, and issue a peer token (1 h) that can be
//! rotated or revoked.
use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use rand::RngCore;

use super::pins::FetchedKey;
use super::{Domain, DomainError};
use crate::config::Config;
use crate::federation::key::{address_of, parse_address, verify, NodeKey};
use crate::federation::proofs::{client_proof, server_proof};
use crate::federation::server_id::ServerId;
use crate::secret::{BearerSecret, SecretKind};
use crate::store::peer_tokens;

/// How long a server challenge may be answered.
pub const CHALLENGE_MS: u64 = 60 * 1000;
/// How long a peer token lives.
pub const PEER_TOKEN_MS: u64 = 3600 * 1000;
const MAX_PENDING: usize = 10_000;

/// A peer as it introduces itself (auth.Peer).
#[derive(Debug, Clone, Default)]
pub struct PeerHello {
    /// Its server_id.
    pub name: String,
    /// `ed25519:<hex>` of its key.
    pub address: String,
    /// Where it can be reached (informational).
    pub url: String,
}

impl PeerHello {
    /// The node configured by `config` with `key`, as it introduces itself to peers.
    pub fn of(config: &Config, key: &NodeKey) -> Self {
        Self {
            name: config.server_id.to_string(),
            address: key.address(),
            url: config.mail.public_url.clone().unwrap_or_default(),
        }
    }
}

/// This node's answer to a challenge request.
#[derive(Debug, Clone)]
pub struct ChallengeReply {
    /// This node as a peer.
    pub server: PeerHello,
    /// base64url (no padding) of 32 random bytes.
    pub server_challenge: String,
    /// This node's signature of the server proof over the client's challenge.
    pub server_signature: Vec<u8>,
}

/// A peer token this node issued.
#[derive(Debug)]
pub struct PeerToken {
    /// The token (hand it over once).
    pub token: BearerSecret,
    /// Its expiry (unix ms).
    pub expires_at: u64,
}

/// A challenger: its claimed name and the key it presented.
type Challenger = (String, [u8; 32]);

/// Open challenges: (challenge text, expiry in unix ms) per challenger.
#[derive(Debug, Default)]
pub(crate) struct PendingChallenges(Mutex<HashMap<Challenger, (String, u64)>>);

impl PendingChallenges {
    /// Stores a challenge; refuses when too many live ones are open (a flood).
    fn put(
        &self,
        peer: Challenger,
        challenge: String,
        expires_at: u64,
        now: u64,
    ) -> Result<(), DomainError> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_PENDING {
            map.retain(|_, (_, exp)| *exp > now);
        }
        if map.len() >= MAX_PENDING && !map.contains_key(&peer) {
            return Err(DomainError::ResourceExhausted(
                "too many peer challenges are open; try again in a minute".into(),
            ));
        }
        map.insert(peer, (challenge, expires_at));
        Ok(())
    }

    /// Takes the challenge (single use), if it is still alive.
    fn take(&self, peer: &Challenger, now: u64) -> Option<String> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(peer)
            .filter(|(_, exp)| *exp > now)
            .map(|(c, _)| c)
    }
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

impl Domain {
    /// This node as a peer.
    pub fn me(&self) -> PeerHello {
        PeerHello::of(&self.config, &self.node_key)
    }

    /// GetChallenge: answers with a fresh challenge and this node's proof over the client's.
    pub async fn peer_challenge(
        &self,
        client: &PeerHello,
        expected: &str,
        client_challenge: &[u8],
    ) -> Result<ChallengeReply, DomainError> {
        let (name, key) = parse_peer(client)?;
        if name == self.config.server_id {
            return Err(DomainError::invalid(
                "client.name",
                "that is this node's own name",
            ));
        }
        let me = self.me();
        if !expected.is_empty() && expected != me.address {
            return Err(DomainError::FailedPrecondition(format!(
                "operator_address: you expect this node to have key {expected}, but its key is {}",
                me.address
            )));
        }
        if client_challenge.len() != 32 {
            return Err(DomainError::invalid(
                "client_challenge",
                "must be 32 random bytes",
            ));
        }
        self.check_policy(&name).await?;
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = self.clock.now_ms();
        self.pending.put(
            (name.to_string(), key),
            challenge.clone(),
            now + CHALLENGE_MS,
            now,
        )?;
        let proof = server_proof(
            &me.name,
            &me.address,
            &name.to_string(),
            &client.address,
            client_challenge,
        );
        Ok(ChallengeReply {
            server_signature: self.node_key.sign(proof.as_bytes()).to_vec(),
            server: me,
            server_challenge: challenge,
        })
    }

    /// Authenticate: checks the client's proof and that its name owns its key, pins the key,
    /// and issues a peer token.
    pub async fn peer_authenticate(
        &self,
        client: &PeerHello,
        signature: &[u8],
    ) -> Result<PeerToken, DomainError> {
        let (name, key) = parse_peer(client)?;
        let now = self.clock.now_ms();
        let challenge = self.pending.take(&(name.to_string(), key), now).ok_or_else(|| {
            DomainError::Unauthenticated(
                "no live challenge for this peer; call GetChallenge first (a challenge works once, for 60 s)".into(),
            )
        })?;
        let me = self.me();
        let proof = client_proof(
            &me.name,
            &me.address,
            &name.to_string(),
            &client.address,
            &challenge,
        );
        if !verify(&key, proof.as_bytes(), signature) {
            return Err(DomainError::Unauthenticated(format!(
                "signed_server_challenge does not verify with {}",
                client.address
            )));
        }
        self.check_policy(&name).await?;
        // The key proved itself; now the name must prove it belongs to that key.
        let served: FetchedKey = self.peers.fetch_key(&name).await?;
        if served.key != key {
            return Err(DomainError::PermissionDenied(format!(
                "{name} is served with key {}; the key that signed this challenge ({}) does not own that name",
                address_of(&served.key),
                client.address
            )));
        }
        self.accept_key(&name, &served).await?;
        self.issue_peer_token(name.to_string()).await
    }

    async fn issue_peer_token(&self, server: String) -> Result<PeerToken, DomainError> {
        let token = BearerSecret::generate(SecretKind::Peer);
        let (hash, expires_at) = (token.hash(), self.clock.now_ms() + PEER_TOKEN_MS);
        self.store
            .write(move |tx| {
                Ok::<_, DomainError>(peer_tokens::insert(tx, &hash, &server, expires_at)?)
            })
            .await?;
        Ok(PeerToken { token, expires_at })
    }

    fn parse_peer_token(token: &str) -> Result<BearerSecret, DomainError> {
        let secret =
            BearerSecret::parse(token).map_err(|e| DomainError::invalid("token", e.to_string()))?;
        if secret.kind() != SecretKind::Peer {
            return Err(DomainError::invalid("token", "not a peer token (hpeer_…)"));
        }
        Ok(secret)
    }

    /// TokenRefresh: a new peer token; the old one dies in the same transaction.
    pub async fn peer_token_refresh(&self, token: &str) -> Result<PeerToken, DomainError> {
        let old = Self::parse_peer_token(token)?;
        let new = BearerSecret::generate(SecretKind::Peer);
        let (old_hash, new_hash, now) = (old.hash(), new.hash(), self.clock.now_ms());
        let expires_at = now + PEER_TOKEN_MS;
        self.store
            .write(move |tx| {
                let (server, _) = peer_tokens::get(tx, &old_hash)?
                    .filter(|(_, exp)| *exp > now)
                    .ok_or_else(|| {
                        DomainError::Unauthenticated(
                            "the peer token is unknown, revoked or expired; authenticate again"
                                .into(),
                        )
                    })?;
                peer_tokens::delete(tx, &old_hash)?;
                peer_tokens::insert(tx, &new_hash, &server, expires_at)?;
                Ok::<_, DomainError>(())
            })
            .await?;
        Ok(PeerToken {
            token: new,
            expires_at,
        })
    }

    /// Signout: revokes a peer token. Revoking an unknown or revoked token is not an error.
    pub async fn peer_signout(&self, token: &str) -> Result<(), DomainError> {
        let hash = Self::parse_peer_token(token)?.hash();
        self.store
            .write(move |tx| Ok::<_, DomainError>(peer_tokens::delete(tx, &hash).map(|_| ())?))
            .await
    }

    /// The server this peer token belongs to, if it is alive.
    pub async fn peer_of_token(&self, token: &str) -> Result<String, DomainError> {
        let hash = Self::parse_peer_token(token)?.hash();
        let now = self.clock.now_ms();
        self.store
            .read(move |c| Ok::<_, DomainError>(peer_tokens::get(c, &hash)?))
            .await?
            .filter(|(_, exp)| *exp > now)
            .map(|(s, _)| s)
            .ok_or_else(|| {
                DomainError::Unauthenticated("the peer token is unknown, revoked or expired".into())
            })
    }
}
