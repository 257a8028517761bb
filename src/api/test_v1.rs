//! test.v1: Ping (public) and Pong (needs a session).
use tonic::{Request, Response, Status};

use super::context::principal;
use crate::pb::test::v1::{
    test_auth_service_server::TestAuthService, test_no_auth_service_server::TestNoAuthService,
    PingRequest, PingResponse, PongRequest, PongResponse,
};

/// Both test services.
#[derive(Debug, Default, Clone)]
pub struct TestApi;

#[tonic::async_trait]
impl TestNoAuthService for TestApi {
    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }
}

#[tonic::async_trait]
impl TestAuthService for TestApi {
    async fn pong(&self, req: Request<PongRequest>) -> Result<Response<PongResponse>, Status> {
        principal(&req)?;
        Ok(Response::new(PongResponse {}))
    }
}
