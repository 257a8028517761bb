//! accounts.v1: PublicAccountsService and AccountsService. Calls that start a session
//! return its token in the response metadata `authorization: Bearer <token>`.
use crate::api::status::status;
use std::sync::Arc;

use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::context::{principal, request_context, with_token};
use crate::domain::{accounts::SignUp, Services};
use crate::pb::accounts::v1::{
    accounts_service_server::AccountsService,
    public_accounts_service_server::PublicAccountsService, IsEmailVerifiedRequest,
    IsEmailVerifiedResponse, NewPasswordRequest, ResetPasswordRequest, SignInRequest,
    SignUpRequest,
};

/// Both account services.
#[derive(Debug, Clone)]
pub struct AccountsApi {
    access_tokens: Arc<crate::domain::access_tokens::AccessTokens>,
    accounts: Arc<crate::domain::accounts::Accounts>,
    codes: Arc<crate::domain::codes::Codes>,
    sessions: Arc<crate::domain::sessions::Sessions>,
}

impl AccountsApi {
    /// The adapter over the services it calls.
    pub fn new(s: &Services) -> Self {
        Self {
            access_tokens: s.access_tokens.clone(),
            accounts: s.accounts.clone(),
            codes: s.codes.clone(),
            sessions: s.sessions.clone(),
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl PublicAccountsService for AccountsApi {
    async fn sign_in(&self, req: Request<SignInRequest>) -> Result<Response<()>, Status> {
        let ctx = request_context(&req);
        let r = req.into_inner();
        let signed = self
            .accounts
            .sign_in(&r.email, &r.password, r.totp.as_deref(), &ctx)
            .await
            .map_err(status)?;
        with_token((), signed.token.expose())
    }

    async fn sign_up(&self, req: Request<SignUpRequest>) -> Result<Response<()>, Status> {
        let ctx = request_context(&req);
        let r = req.into_inner();
        let signed = self
            .accounts
            .sign_up(
                SignUp {
                    email: Some(r.email),
                    password: Some(Zeroizing::new(r.password)),
                    name: None,
                    invite_code: non_empty(r.invite_code),
                    guest: None,
                },
                &ctx,
            )
            .await
            .map_err(status)?;
        with_token((), signed.token.expose())
    }

    async fn reset_password(
        &self,
        req: Request<ResetPasswordRequest>,
    ) -> Result<Response<()>, Status> {
        let email = req.into_inner().data.map(|d| d.email).unwrap_or_default();
        self.codes
            .request_password_reset(&email)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn new_password(&self, req: Request<NewPasswordRequest>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let email = r.data.map(|d| d.email).unwrap_or_default();
        let password = Zeroizing::new(r.password.map(|p| p.password).unwrap_or_default());
        self.codes
            .reset_password(&email, &r.code, &password)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }
}

#[tonic::async_trait]
impl AccountsService for AccountsApi {
    async fn is_email_verified(
        &self,
        req: Request<IsEmailVerifiedRequest>,
    ) -> Result<Response<IsEmailVerifiedResponse>, Status> {
        let p = principal(&req)?;
        let email = req.into_inner().data.map(|d| d.email);
        let verified = self
            .accounts
            .is_email_verified(&p, email.as_deref())
            .await
            .map_err(status)?;
        Ok(Response::new(IsEmailVerifiedResponse { verified }))
    }

    async fn refresh_session(&self, req: Request<()>) -> Result<Response<()>, Status> {
        let p = principal(&req)?;
        let token = self.sessions.refresh(&p).await.map_err(status)?;
        with_token((), token.expose())
    }

    async fn token_authorization(&self, req: Request<()>) -> Result<Response<()>, Status> {
        let p = principal(&req)?;
        let device = request_context(&req).device;
        let (token, _) = self
            .access_tokens
            .exchange(&p, device)
            .await
            .map_err(status)?;
        with_token((), token.expose())
    }
}
