//! auth.v1alpha1.AuthAPI: GetJWT, the OAuth/OIDC token exchange (rules in `domain::oidc`).
use crate::api::status::status;
use std::sync::Arc;

use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::context::request_context;
use crate::domain::oidc::Account;
use crate::domain::{DomainError, Services};
use crate::pb::auth::v1alpha1::{auth_api_server::AuthApi, GetJwtRequest, GetJwtResponse};

/// The OIDC exchange service.
#[derive(Debug, Clone)]
pub struct OidcApi {
    oidc: Arc<crate::domain::oidc::Oidc>,
}

impl OidcApi {
    /// The adapter over the services it calls.
    pub fn new(s: &Services) -> Self {
        Self {
            oidc: s.oidc.clone(),
        }
    }
}

#[tonic::async_trait]
impl AuthApi for OidcApi {
    async fn get_jwt(
        &self,
        req: Request<GetJwtRequest>,
    ) -> Result<Response<GetJwtResponse>, Status> {
        let device = request_context(&req).device;
        let a = req
            .into_inner()
            .account
            .ok_or_else(|| {
                DomainError::invalid(
                    "account",
                    "required: provider, type, provider_account_id, access_token",
                )
            })
            .map_err(status)?;
        let account = Account {
            provider: a.provider,
            kind: a.r#type,
            subject: a.provider_account_id,
            access_token: Zeroizing::new(a.access_token),
        };
        let token = self.oidc.exchange(account, device).await.map_err(status)?;
        Ok(Response::new(GetJwtResponse { token }))
    }
}
