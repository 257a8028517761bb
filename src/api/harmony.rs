//! protocol.auth.v1.AuthService: Harmony's federation (Key, Federate, LoginFederated, and
//! the RevokeFederated extension),
//! step-by-step auth (BeginAuth … StreamSteps; wire conversions in `steps.rs`) and
//! CheckLoggedIn. TokenData is encoded and decoded here; the domain signs and verifies the
//! exact bytes.
use crate::api::status::status;
use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};

use super::context::{principal, request_context};
use super::steps::{self, StepStream};
use crate::domain::federation::login::{Claims, SignedToken};
use crate::domain::federation::notices::Notice;
use crate::domain::{DomainError, Services};
use crate::pb::protocol::auth::v1::{
    auth_service_server::AuthService, BeginAuthRequest, BeginAuthResponse, CheckLoggedInRequest,
    CheckLoggedInResponse, FederateRequest, FederateResponse, KeyRequest, KeyResponse, KeyRotation,
    LoginFederatedRequest, LoginFederatedResponse, NextStepRequest, NextStepResponse,
    RevokeFederatedRequest, RevokeFederatedResponse, Session, StepBackRequest, StepBackResponse,
    StreamStepsRequest, TokenData,
};
use crate::pb::protocol::harmonytypes::v1::Token;

/// The Harmony auth service.
#[derive(Debug, Clone)]
pub struct HarmonyApi {
    flows: Arc<crate::domain::flows::Flows>,
    key_ring: Arc<crate::domain::keyring::KeyRing>,
    login: Arc<crate::domain::federation::login::FederationLogin>,
    notices: Arc<crate::domain::federation::notices::Notices>,
}

impl HarmonyApi {
    /// The adapter over the services it calls.
    pub fn new(s: &Services) -> Self {
        Self {
            flows: s.flows.clone(),
            key_ring: s.key_ring().clone(),
            login: s.login.clone(),
            notices: s.notices.clone(),
        }
    }
}

fn encode(c: &Claims) -> Vec<u8> {
    TokenData {
        user_id: c.user_id,
        server_id: c.server_id.clone(),
        username: c.username.clone(),
        avatar: c.avatar.clone(),
        issued_at: c.issued_at,
        expires_at: c.expires_at,
        nonce: c.nonce.clone(),
        amr: c.amr.clone(),
        home_session_id: c.home_session_id,
    }
    .encode_to_vec()
}

fn decode(data: &[u8]) -> Result<Claims, String> {
    let t = TokenData::decode(data).map_err(|e| format!("not a TokenData message: {e}"))?;
    Ok(Claims {
        user_id: t.user_id,
        server_id: t.server_id,
        username: t.username,
        avatar: t.avatar,
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        nonce: t.nonce,
        amr: t.amr,
        home_session_id: t.home_session_id,
    })
}

#[tonic::async_trait]
impl AuthService for HarmonyApi {
    async fn federate(
        &self,
        req: Request<FederateRequest>,
    ) -> Result<Response<FederateResponse>, Status> {
        let p = principal(&req)?;
        let signed = self
            .login
            .federate(&p, &req.into_inner().server_id, encode)
            .await
            .map_err(status)?;
        Ok(Response::new(FederateResponse {
            token: Some(Token {
                sig: signed.sig,
                data: signed.data,
            }),
        }))
    }

    async fn login_federated(
        &self,
        req: Request<LoginFederatedRequest>,
    ) -> Result<Response<LoginFederatedResponse>, Status> {
        let ctx = request_context(&req);
        let r = req.into_inner();
        let token = r
            .auth_token
            .ok_or_else(|| {
                DomainError::invalid(
                    "auth_token",
                    "required (get one from Federate on your home server)",
                )
            })
            .map_err(status)?;
        let signed = SignedToken {
            data: token.data,
            sig: token.sig,
        };
        let (secret, user_id) = self
            .login
            .login_federated(&signed, &r.server_id, decode, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(LoginFederatedResponse {
            session: Some(Session {
                user_id,
                session_token: secret.expose().to_owned(),
                guest_token: None,
            }),
        }))
    }

    async fn revoke_federated(
        &self,
        req: Request<RevokeFederatedRequest>,
    ) -> Result<Response<RevokeFederatedResponse>, Status> {
        let notices = req
            .into_inner()
            .notices
            .into_iter()
            .map(|n| Notice {
                home: n.home_server,
                target: n.target_server,
                user_id: n.user_id,
                home_session: n.home_session_id,
                at: n.at,
                sig: n.sig,
            })
            .collect();
        let receipt = self.notices.receive(notices).await.map_err(status)?;
        Ok(Response::new(RevokeFederatedResponse {
            applied: receipt.applied,
            already_applied: receipt.already,
        }))
    }

    async fn key(&self, _: Request<KeyRequest>) -> Result<Response<KeyResponse>, Status> {
        Ok(Response::new(KeyResponse {
            key: self.key_ring.current().node.public().to_vec(),
            history: self
                .key_ring
                .current()
                .history
                .clone()
                .iter()
                .map(|r| KeyRotation {
                    old_key: r.old_key.to_vec(),
                    new_key: r.new_key.to_vec(),
                    at: r.at,
                    sig: r.sig.clone(),
                })
                .collect(),
        }))
    }

    async fn begin_auth(
        &self,
        req: Request<BeginAuthRequest>,
    ) -> Result<Response<BeginAuthResponse>, Status> {
        let ctx = request_context(&req);
        let guest = req.into_inner().for_guest_token;
        let auth_id = self
            .flows
            .begin(guest.as_deref(), &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(BeginAuthResponse { auth_id }))
    }

    async fn next_step(
        &self,
        req: Request<NextStepRequest>,
    ) -> Result<Response<NextStepResponse>, Status> {
        let ctx = request_context(&req);
        let r = req.into_inner();
        let id = r.auth_id.clone();
        let step = self
            .flows
            .next(&id, steps::answer(r), &ctx)
            .await
            .map_err(status)?;
        let note = step.message.clone();
        let mut res = Response::new(NextStepResponse {
            step: Some(steps::encode(step)),
        });
        if let Some(text) = note.and_then(|n| n.parse().ok()) {
            res.metadata_mut().insert("hearth-step-message", text);
        }
        Ok(res)
    }

    async fn step_back(
        &self,
        req: Request<StepBackRequest>,
    ) -> Result<Response<StepBackResponse>, Status> {
        let step = self
            .flows
            .back(&req.into_inner().auth_id)
            .await
            .map_err(status)?;
        Ok(Response::new(StepBackResponse {
            step: Some(steps::encode(step)),
        }))
    }

    type StreamStepsStream = StepStream;

    async fn stream_steps(
        &self,
        req: Request<StreamStepsRequest>,
    ) -> Result<Response<Self::StreamStepsStream>, Status> {
        let id = req.into_inner().auth_id;
        let sub = self.flows.subscribe(&id).await.map_err(status)?;
        Ok(Response::new(steps::stream(self.flows.clone(), id, sub)))
    }

    async fn check_logged_in(
        &self,
        req: Request<CheckLoggedInRequest>,
    ) -> Result<Response<CheckLoggedInResponse>, Status> {
        principal(&req)?;
        Ok(Response::new(CheckLoggedInResponse {}))
    }
}
