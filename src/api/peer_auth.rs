//! auth.Auth: the peer challenge between nodes (DESIGN.md §4.4).
use tonic::{Request, Response, Status};

use super::status::unimplemented;
use crate::pb::auth::{
    auth_server::Auth, AuthToken, ChallengeRequest, ChallengeResponse, SignedChallenge,
    SignoutResponse,
};

/// The peer challenge service.
#[derive(Debug, Default, Clone)]
pub struct PeerAuthApi;

#[tonic::async_trait]
impl Auth for PeerAuthApi {
    async fn get_challenge(
        &self,
        _: Request<ChallengeRequest>,
    ) -> Result<Response<ChallengeResponse>, Status> {
        Err(unimplemented("auth.Auth/GetChallenge"))
    }
    async fn authenticate(
        &self,
        _: Request<SignedChallenge>,
    ) -> Result<Response<AuthToken>, Status> {
        Err(unimplemented("auth.Auth/Authenticate"))
    }
    async fn token_refresh(&self, _: Request<AuthToken>) -> Result<Response<AuthToken>, Status> {
        Err(unimplemented("auth.Auth/TokenRefresh"))
    }
    async fn signout(&self, _: Request<AuthToken>) -> Result<Response<SignoutResponse>, Status> {
        Err(unimplemented("auth.Auth/Signout"))
    }
}
