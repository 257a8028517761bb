//! auth.Auth: the peer challenge between nodes (DESIGN.md §4.4). Tokens travel in the body.
use crate::api::status::status;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::domain::federation::PeerHello;
use crate::domain::{DomainError, Services};
use crate::pb::auth::{
    auth_server::Auth, AuthToken, ChallengeRequest, ChallengeResponse, Peer, SignedChallenge,
    SignoutResponse,
};

/// The peer challenge service.
#[derive(Debug, Clone)]
pub struct PeerAuthApi {
    challenge: Arc<crate::domain::federation::challenge::PeerChallenge>,
}

impl PeerAuthApi {
    /// The adapter over the services it calls.
    pub fn new(s: &Services) -> Self {
        Self {
            challenge: s.challenge.clone(),
        }
    }
}

fn hello(peer: Option<Peer>) -> Result<PeerHello, Status> {
    let p = peer
        .ok_or_else(|| DomainError::invalid("client", "required (this node's auth.Peer)"))
        .map_err(status)?;
    Ok(PeerHello {
        name: p.name,
        address: p.participant_address,
        url: p.url,
    })
}

fn as_peer(p: PeerHello) -> Peer {
    Peer {
        url: p.url,
        name: p.name,
        operator_address: p.address.clone(),
        participant_address: p.address,
    }
}

#[tonic::async_trait]
impl Auth for PeerAuthApi {
    async fn get_challenge(
        &self,
        req: Request<ChallengeRequest>,
    ) -> Result<Response<ChallengeResponse>, Status> {
        let r = req.into_inner();
        let client = hello(r.client)?;
        let reply = self
            .challenge
            .challenge(&client, &r.operator_address, &r.client_challenge)
            .await
            .map_err(status)?;
        Ok(Response::new(ChallengeResponse {
            server: Some(as_peer(reply.server)),
            server_challenge: reply.server_challenge,
            server_signature: reply.server_signature,
        }))
    }

    async fn authenticate(
        &self,
        req: Request<SignedChallenge>,
    ) -> Result<Response<AuthToken>, Status> {
        let r = req.into_inner();
        let client = hello(r.client)?;
        let token = self
            .challenge
            .authenticate(&client, &r.signed_server_challenge)
            .await
            .map_err(status)?;
        Ok(Response::new(AuthToken {
            token: token.token.expose().to_owned(),
        }))
    }

    async fn token_refresh(&self, req: Request<AuthToken>) -> Result<Response<AuthToken>, Status> {
        let token = self
            .challenge
            .refresh(&req.into_inner().token)
            .await
            .map_err(status)?;
        Ok(Response::new(AuthToken {
            token: token.token.expose().to_owned(),
        }))
    }

    async fn signout(&self, req: Request<AuthToken>) -> Result<Response<SignoutResponse>, Status> {
        self.challenge
            .signout(&req.into_inner().token)
            .await
            .map_err(status)?;
        Ok(Response::new(SignoutResponse {}))
    }
}
