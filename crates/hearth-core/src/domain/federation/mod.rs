//! Federation rules (DESIGN.md §4): peers, pins and policy (`peers`), both halves of the
//! peer challenge (`challenge`), cross-node login (`login`), revocation notices between
//! nodes (`notices`) and the link keeper (`links`).
//! The network is reached only through [`PeerNetwork`], which `crate::federation::client`
//! implements; identity and signed bytes come from `crate::identity`.
pub mod challenge;
pub mod links;
pub mod login;
pub mod notices;
pub mod peers;

use crate::config::Config;
use crate::identity::key::NodeKey;
use crate::identity::proofs::Rotation;
use crate::identity::server_id::ServerId;

use super::DomainError;

/// The longest a federation token may live.
pub const TOKEN_MAX_MS: u64 = 5 * 60 * 1000;
/// Clock difference tolerated between nodes.
pub const CLOCK_SKEW_MS: u64 = 30 * 1000;
/// How long a peer token lives.
pub const PEER_TOKEN_MS: u64 = 3600 * 1000;
/// The longest wait before trying a peer again.
pub const MAX_BACKOFF_MS: u64 = 5 * 60 * 1000;

/// The wait before trying a peer again after `failures` failures: 1 s doubling, up to
/// [`MAX_BACKOFF_MS`] (links and revocation notices alike).
pub fn backoff_ms(failures: u32) -> u64 {
    (1_000u64 << failures.min(10)).min(MAX_BACKOFF_MS)
}

/// A key as another node serves it through `Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedKey {
    /// The current key.
    pub key: [u8; 32],
    /// Its rotation history, oldest first.
    pub history: Vec<Rotation>,
}

/// A peer as it introduces itself (auth.Peer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// A node's answer to a challenge request.
#[derive(Debug, Clone)]
pub struct ChallengeReply {
    /// The answering node as a peer.
    pub server: PeerHello,
    /// base64url (no padding) of 32 random bytes.
    pub server_challenge: String,
    /// The node's signature of the server proof over the client's challenge.
    pub server_signature: Vec<u8>,
}

/// What the federation rules need from the network; `federation::client` implements it.
#[async_trait::async_trait]
pub trait PeerNetwork: Send + Sync + std::fmt::Debug {
    /// Discovers `server` and asks its `Key` RPC.
    async fn fetch_key(&self, server: &ServerId) -> Result<FetchedKey, DomainError>;
    /// Asks the `Key` RPC at `url`, a caller's own URL (`accept_caller_urls`).
    async fn fetch_key_at(&self, server: &ServerId, url: &str) -> Result<FetchedKey, DomainError>;
    /// GetChallenge at `server`.
    async fn get_challenge(
        &self,
        server: &ServerId,
        me: &PeerHello,
        expected: &str,
        client_challenge: &[u8],
    ) -> Result<ChallengeReply, DomainError>;
    /// Authenticate at `server` with our signature; returns our peer token there.
    async fn authenticate(
        &self,
        server: &ServerId,
        me: &PeerHello,
        signature: Vec<u8>,
        server_address: &str,
    ) -> Result<String, DomainError>;
    /// TokenRefresh at `server`: a new peer token for an old one.
    async fn refresh(&self, server: &ServerId, token: &str) -> Result<String, DomainError>;
    /// Signout at `server`.
    async fn signout(&self, server: &ServerId, token: &str) -> Result<(), DomainError>;
    /// RevokeFederated at `server`: revocation notices this node signed for it.
    async fn revoke_federated(
        &self,
        server: &ServerId,
        notices: Vec<notices::Notice>,
    ) -> Result<(), DomainError>;
    /// A static route for `server` (from `hearth peer link --url`).
    fn set_route(&self, server: &ServerId, url: &str);
}
