//! Calls to other nodes: `Key` (the [`PeerDirectory`] the domain uses), and the client half of
//! the peer challenge (GetChallenge → verify the server's proof → Authenticate), TokenRefresh
//! and Signout. Each call discovers the node, then connects over TLS (or plaintext when
//! allowed), presenting the node's name for certificate checks.
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::discovery::{error_chain, Discovery, Target};
use super::key::{parse_address, verify, NodeKey};
use super::proofs::{client_proof, server_proof, Rotation};
use super::server_id::ServerId;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::peering::{PeerHello, PEER_TOKEN_MS};
use crate::domain::pins::{FetchedKey, PeerDirectory};
use crate::domain::DomainError;
use crate::pb::auth::{
    auth_client::AuthClient, AuthToken, ChallengeRequest, Peer, SignedChallenge,
};
use crate::pb::protocol::auth::v1::{auth_service_client::AuthServiceClient, KeyRequest};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The client for other nodes.
#[derive(Debug)]
pub struct PeerClient {
    discovery: Discovery,
    extra_ca: Option<Vec<u8>>,
    key: NodeKey,
    me: PeerHello,
    clock: SharedClock,
}

fn remote(server: &ServerId, target: &Target, status: tonic::Status) -> DomainError {
    let msg = format!(
        "{server} (at {}) answered {:?}: {}",
        target.addr,
        status.code(),
        status.message()
    );
    match status.code() {
        tonic::Code::FailedPrecondition => DomainError::FailedPrecondition(msg),
        tonic::Code::PermissionDenied => DomainError::PermissionDenied(msg),
        tonic::Code::Unauthenticated => DomainError::Unauthenticated(msg),
        _ => DomainError::Unavailable(msg),
    }
}

impl PeerClient {
    /// Builds the client from the node's config; `me` is this node as a peer.
    pub fn new(
        config: &Config,
        key: NodeKey,
        me: PeerHello,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let extra_ca = match &config.federation.extra_ca {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("federation.extra_ca {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let discovery = Discovery::new(&config.federation, extra_ca.as_deref(), clock.clone())?;
        Ok(Self {
            discovery,
            extra_ca,
            key,
            me,
            clock,
        })
    }

    /// Discovery, for routes added at run time.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    async fn connect(&self, server: &ServerId) -> Result<(Channel, Target), DomainError> {
        let target = self
            .discovery
            .resolve(server)
            .await
            .map_err(|e| DomainError::Unavailable(e.to_string()))?;
        let unreachable = |e: String| {
            DomainError::Unavailable(format!(
                "{server} is unreachable at {} (found via {}): {e}",
                target.addr, target.via
            ))
        };
        let mut endpoint = Endpoint::from_shared(target.url())
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        if target.tls {
            let mut tls = ClientTlsConfig::new()
                .domain_name(target.host.clone())
                .with_webpki_roots();
            if let Some(pem) = &self.extra_ca {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| unreachable(error_chain(&e)))?;
        }
        match endpoint.connect().await {
            Ok(channel) => Ok((channel, target)),
            Err(e) => {
                self.discovery.forget(server);
                Err(unreachable(error_chain(&e)))
            }
        }
    }

    fn me_as_peer(&self) -> Peer {
        Peer {
            url: self.me.url.clone(),
            name: self.me.name.clone(),
            participant_address: self.me.address.clone(),
            operator_address: self.me.address.clone(),
        }
    }

    /// Runs the peer challenge with `server`, expecting it to have `expected` (our pin).
    pub async fn link(
        &self,
        server: &ServerId,
        expected: Option<&str>,
    ) -> Result<Linked, DomainError> {
        let (channel, target) = self.connect(server).await?;
        let mut client = AuthClient::new(channel);
        let mut challenge = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut challenge);
        let reply = client
            .get_challenge(ChallengeRequest {
                client: Some(self.me_as_peer()),
                operator_address: expected.unwrap_or_default().to_owned(),
                client_challenge: challenge.to_vec(),
            })
            .await
            .map_err(|s| remote(server, &target, s))?
            .into_inner();
        let peer = reply.server.unwrap_or_default();
        if peer.name != server.to_string() {
            return Err(DomainError::PermissionDenied(format!(
                "{server} (at {}) answered as `{}`",
                target.addr, peer.name
            )));
        }
        let key = parse_address(&peer.participant_address).ok_or_else(|| {
            DomainError::Unauthenticated(format!("{server} sent a malformed participant_address"))
        })?;
        let proof = server_proof(
            &peer.name,
            &peer.participant_address,
            &self.me.name,
            &self.me.address,
            &challenge,
        );
        if !verify(&key, proof.as_bytes(), &reply.server_signature) {
            return Err(DomainError::Unauthenticated(format!(
                "{server}'s server_signature does not verify with the key it claims ({})",
                peer.participant_address
            )));
        }
        let answer = client_proof(
            &peer.name,
            &peer.participant_address,
            &self.me.name,
            &self.me.address,
            &reply.server_challenge,
        );
        let token = client
            .authenticate(SignedChallenge {
                client: Some(self.me_as_peer()),
                signed_server_challenge: self.key.sign(answer.as_bytes()).to_vec(),
                operator_address: peer.participant_address.clone(),
            })
            .await
            .map_err(|s| remote(server, &target, s))?
            .into_inner()
            .token;
        Ok(Linked {
            key,
            token,
            expires_at: self.clock.now_ms() + PEER_TOKEN_MS,
        })
    }

    /// TokenRefresh at `server`: a new peer token for an old one.
    pub async fn refresh(
        &self,
        server: &ServerId,
        token: &str,
    ) -> Result<(String, u64), DomainError> {
        let (channel, target) = self.connect(server).await?;
        let token = AuthClient::new(channel)
            .token_refresh(AuthToken {
                token: token.to_owned(),
            })
            .await
            .map_err(|s| remote(server, &target, s))?
            .into_inner()
            .token;
        Ok((token, self.clock.now_ms() + PEER_TOKEN_MS))
    }

    /// Signout at `server`.
    pub async fn signout(&self, server: &ServerId, token: &str) -> Result<(), DomainError> {
        let (channel, target) = self.connect(server).await?;
        AuthClient::new(channel)
            .signout(AuthToken {
                token: token.to_owned(),
            })
            .await
            .map_err(|s| remote(server, &target, s))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl PeerDirectory for PeerClient {
    async fn fetch_key(&self, server: &ServerId) -> Result<FetchedKey, DomainError> {
        let (channel, target) = self.connect(server).await?;
        let res = AuthServiceClient::new(channel)
            .key(KeyRequest {})
            .await
            .map_err(|s| remote(server, &target, s))?
            .into_inner();
        let key: [u8; 32] = res.key.as_slice().try_into().map_err(|_| {
            DomainError::Unavailable(format!(
                "{server} returned a key of {} bytes, not 32",
                res.key.len()
            ))
        })?;
        Ok(FetchedKey {
            key,
            history: res
                .history
                .into_iter()
                .map(|r| Rotation {
                    old_key: r.old_key,
                    new_key: r.new_key,
                    at: r.at,
                    sig: r.sig,
                })
                .collect(),
        })
    }
}

/// Shared handle.
pub type SharedPeerClient = Arc<PeerClient>;
