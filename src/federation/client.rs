//! Calls to other nodes, transport only: the domain's [`PeerNetwork`] (`Key`, GetChallenge,
//! Authenticate, TokenRefresh, Signout, RevokeFederated) over gRPC. Each call discovers the node, then connects
//! over TLS (or plaintext when allowed), presenting the node's name for certificate checks.
//! What the answers mean is decided in `domain/federation/`.
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::discovery::{error_chain, Discovery, Target};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::error::Reason;
use crate::domain::federation::notices::Notice;
use crate::domain::federation::{ChallengeReply, FetchedKey, PeerHello, PeerNetwork};
use crate::domain::validate::printable;
use crate::domain::{DomainError, ErrorKind};
use crate::identity::proofs::Rotation;
use crate::identity::server_id::ServerId;
use crate::pb::auth::{
    auth_client::AuthClient, AuthToken, ChallengeRequest, Peer, SignedChallenge,
};
use crate::pb::protocol::auth::v1::{
    auth_service_client::AuthServiceClient, KeyRequest, RevocationNotice, RevokeFederatedRequest,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The client for other nodes.
#[derive(Debug)]
pub struct PeerClient {
    discovery: Discovery,
    extra_ca: Option<Vec<u8>>,
}

fn remote(server: &ServerId, target: &Target, status: tonic::Status) -> DomainError {
    // The peer's words are bounded and escaped before they reach the log or the store.
    let msg = format!(
        "{server} (at {}) answered {:?}: {}",
        target.addr,
        status.code(),
        printable(status.message(), 300)
    );
    let kind = match status.code() {
        tonic::Code::FailedPrecondition => ErrorKind::FailedPrecondition,
        tonic::Code::PermissionDenied => ErrorKind::PermissionDenied,
        tonic::Code::Unauthenticated => ErrorKind::Unauthenticated,
        tonic::Code::InvalidArgument => ErrorKind::InvalidArgument,
        _ => return DomainError::unavailable(Reason::PeerUnreachable, msg),
    };
    DomainError::new(kind, Reason::PeerRefused, msg)
}

impl PeerClient {
    /// Builds the client from the node's config.
    pub fn new(config: &Config, clock: SharedClock) -> Result<Self, String> {
        let extra_ca = match &config.federation.extra_ca {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("federation.extra_ca {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let discovery = Discovery::new(&config.federation, extra_ca.as_deref(), clock)?;
        Ok(Self {
            discovery,
            extra_ca,
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
            .map_err(|e| DomainError::unavailable(Reason::PeerUnreachable, e.to_string()))?;
        self.open(server, target).await
    }

    async fn open(
        &self,
        server: &ServerId,
        target: Target,
    ) -> Result<(Channel, Target), DomainError> {
        let unreachable = |e: String| {
            DomainError::unavailable(
                Reason::PeerUnreachable,
                format!(
                    "{server} is unreachable at {} (found via {}): {e}",
                    target.addr, target.via
                ),
            )
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
}

fn as_peer(me: &PeerHello) -> Peer {
    Peer {
        url: me.url.clone(),
        name: me.name.clone(),
        participant_address: me.address.clone(),
        operator_address: me.address.clone(),
    }
}

/// Asks `server` (at `target`, over `channel`) for its key.
async fn key_at(
    server: &ServerId,
    channel: Channel,
    target: &Target,
) -> Result<FetchedKey, DomainError> {
    let res = AuthServiceClient::new(channel)
        .key(KeyRequest {})
        .await
        .map_err(|s| remote(server, target, s))?
        .into_inner();
    let key: [u8; 32] = res.key.as_slice().try_into().map_err(|_| {
        DomainError::unavailable(
            Reason::PeerRefused,
            format!("{server} returned a key of {} bytes, not 32", res.key.len()),
        )
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

#[async_trait::async_trait]
impl PeerNetwork for PeerClient {
    async fn fetch_key(&self, server: &ServerId) -> Result<FetchedKey, DomainError> {
        let (channel, target) = self.connect(server).await?;
        key_at(server, channel, &target).await
    }

    async fn fetch_key_at(&self, server: &ServerId, url: &str) -> Result<FetchedKey, DomainError> {
        let target = self.discovery.at_url(url).await.map_err(|e| {
            DomainError::unavailable(
                Reason::PeerUnreachable,
                format!("{server}'s URL {url}: {e}"),
            )
        })?;
        let (channel, target) = self.open(server, target).await?;
        key_at(server, channel, &target).await
    }

    async fn get_challenge(
        &self,
        server: &ServerId,
        me: &PeerHello,
        expected: &str,
        client_challenge: &[u8],
    ) -> Result<ChallengeReply, DomainError> {
        let (channel, target) = self.connect(server).await?;
        let reply = AuthClient::new(channel)
            .get_challenge(ChallengeRequest {
                client: Some(as_peer(me)),
                operator_address: expected.to_owned(),
                client_challenge: client_challenge.to_vec(),
            })
            .await
            .map_err(|s| remote(server, &target, s))?
            .into_inner();
        let peer = reply.server.unwrap_or_default();
        Ok(ChallengeReply {
            server: PeerHello {
                name: peer.name,
                address: peer.participant_address,
                url: peer.url,
            },
            server_challenge: reply.server_challenge,
            server_signature: reply.server_signature,
        })
    }

    async fn authenticate(
        &self,
        server: &ServerId,
        me: &PeerHello,
        signature: Vec<u8>,
        server_address: &str,
    ) -> Result<String, DomainError> {
        let (channel, target) = self.connect(server).await?;
        Ok(AuthClient::new(channel)
            .authenticate(SignedChallenge {
                client: Some(as_peer(me)),
                signed_server_challenge: signature,
                operator_address: server_address.to_owned(),
            })
            .await
            .map_err(|s| remote(server, &target, s))?
            .into_inner()
            .token)
    }

    async fn refresh(&self, server: &ServerId, token: &str) -> Result<String, DomainError> {
        let (channel, target) = self.connect(server).await?;
        Ok(AuthClient::new(channel)
            .token_refresh(AuthToken {
                token: token.to_owned(),
            })
            .await
            .map_err(|s| remote(server, &target, s))?
            .into_inner()
            .token)
    }

    async fn signout(&self, server: &ServerId, token: &str) -> Result<(), DomainError> {
        let (channel, target) = self.connect(server).await?;
        AuthClient::new(channel)
            .signout(AuthToken {
                token: token.to_owned(),
            })
            .await
            .map_err(|s| remote(server, &target, s))?;
        Ok(())
    }

    async fn revoke_federated(
        &self,
        server: &ServerId,
        notices: Vec<Notice>,
    ) -> Result<(), DomainError> {
        let (channel, target) = self.connect(server).await?;
        let notices = notices
            .into_iter()
            .map(|n| RevocationNotice {
                home_server: n.home,
                target_server: n.target,
                user_id: n.user_id,
                home_session_id: n.home_session,
                at: n.at,
                sig: n.sig,
            })
            .collect();
        AuthServiceClient::new(channel)
            .revoke_federated(RevokeFederatedRequest { notices })
            .await
            .map_err(|s| remote(server, &target, s))?;
        Ok(())
    }

    fn set_route(&self, server: &ServerId, url: &str) {
        self.discovery.set_static(server.clone(), url.to_owned());
    }
}
