//! protocol.auth.v1.AuthService: Harmony's federation (Key, Federate, LoginFederated) and
//! step-by-step auth (built in a later version).
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::context::principal;
use super::status::unimplemented;
use crate::domain::Domain;
use crate::pb::protocol::auth::v1::{
    auth_service_server::AuthService, BeginAuthRequest, BeginAuthResponse, CheckLoggedInRequest,
    CheckLoggedInResponse, FederateRequest, FederateResponse, KeyRequest, KeyResponse,
    LoginFederatedRequest, LoginFederatedResponse, NextStepRequest, NextStepResponse,
    StepBackRequest, StepBackResponse, StreamStepsRequest, StreamStepsResponse,
};

/// The Harmony auth service.
#[derive(Debug, Clone)]
pub struct HarmonyApi(pub Arc<Domain>);

type StepStream = Pin<Box<dyn Stream<Item = Result<StreamStepsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AuthService for HarmonyApi {
    async fn federate(
        &self,
        _: Request<FederateRequest>,
    ) -> Result<Response<FederateResponse>, Status> {
        Err(unimplemented("protocol.auth.v1.AuthService/Federate"))
    }
    async fn login_federated(
        &self,
        _: Request<LoginFederatedRequest>,
    ) -> Result<Response<LoginFederatedResponse>, Status> {
        Err(unimplemented("protocol.auth.v1.AuthService/LoginFederated"))
    }
    async fn key(&self, _: Request<KeyRequest>) -> Result<Response<KeyResponse>, Status> {
        Ok(Response::new(KeyResponse {
            key: self.0.node_key().public().to_vec(),
            history: Vec::new(),
        }))
    }
    async fn begin_auth(
        &self,
        _: Request<BeginAuthRequest>,
    ) -> Result<Response<BeginAuthResponse>, Status> {
        Err(unimplemented("protocol.auth.v1.AuthService/BeginAuth"))
    }
    async fn next_step(
        &self,
        _: Request<NextStepRequest>,
    ) -> Result<Response<NextStepResponse>, Status> {
        Err(unimplemented("protocol.auth.v1.AuthService/NextStep"))
    }
    async fn step_back(
        &self,
        _: Request<StepBackRequest>,
    ) -> Result<Response<StepBackResponse>, Status> {
        Err(unimplemented("protocol.auth.v1.AuthService/StepBack"))
    }
    type StreamStepsStream = StepStream;
    async fn stream_steps(
        &self,
        _: Request<StreamStepsRequest>,
    ) -> Result<Response<Self::StreamStepsStream>, Status> {
        Err(unimplemented("protocol.auth.v1.AuthService/StreamSteps"))
    }
    async fn check_logged_in(
        &self,
        req: Request<CheckLoggedInRequest>,
    ) -> Result<Response<CheckLoggedInResponse>, Status> {
        principal(&req)?;
        Ok(Response::new(CheckLoggedInResponse {}))
    }
}
