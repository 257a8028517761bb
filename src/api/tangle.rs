//! tangle.client.auth.Auth: accounts, sessions and e-mail codes (invites come later).
use std::sync::Arc;

use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::context::{optional_principal, principal, request_context};
use super::status::unimplemented;
use crate::domain::accounts::{SignUp, SignedIn};
use crate::domain::model::{Session as SessionRow, User as UserRow};
use crate::domain::Services;
use crate::pb::tangle::client::auth::{
    auth_server::Auth, Authorization, Authorize, CreateInvite, CreatedInvite, GetSessions,
    InviteList, InvitePreview, ListInvites, LookupInvite, ResendEmailVerification, ResetPassword,
    RevokeInvite, RevokeSessions, Session, Sessions, SignIn, SignUp as SignUpMsg, UseInvite,
    VerifyEmail,
};
use crate::pb::tangle::client::types::User;

/// The Tangle auth service.
#[derive(Debug, Clone)]
pub struct TangleApi(pub Arc<Services>);

fn user(u: &UserRow) -> User {
    User {
        id: u.id,
        name: u.name.clone(),
        username: None,
        bot: false,
    }
}

fn authorization(s: SignedIn) -> Authorization {
    Authorization {
        token: s.token.expose().to_owned(),
        user: Some(user(&s.user)),
        session_id: s.session.id,
    }
}

fn session(s: &SessionRow) -> Session {
    Session {
        id: s.id,
        client_id: s.device.client_id,
        device_type: s.device.device_type.clone(),
        device_version: s.device.device_version.clone(),
        app_name: s.device.app_name.clone(),
        app_version: s.device.app_version.clone(),
        last_active: s.last_active / 1000,
        country: None,
        region: None,
    }
}

#[tonic::async_trait]
impl Auth for TangleApi {
    async fn sign_in(&self, req: Request<SignIn>) -> Result<Response<Authorization>, Status> {
        let ctx = request_context(&req);
        let r = req.into_inner();
        let signed = self.0.accounts.sign_in(&r.email, &r.password, &ctx).await?;
        Ok(Response::new(authorization(signed)))
    }

    async fn sign_up(&self, req: Request<SignUpMsg>) -> Result<Response<Authorization>, Status> {
        let ctx = request_context(&req);
        let r = req.into_inner();
        let signed = self
            .0
            .accounts
            .sign_up(
                SignUp {
                    email: r.email,
                    password: r.password.map(Zeroizing::new),
                    name: Some(r.name),
                    invite_code: r.invite_code,
                },
                &ctx,
            )
            .await?;
        Ok(Response::new(authorization(signed)))
    }

    async fn authorize(&self, req: Request<Authorize>) -> Result<Response<Authorization>, Status> {
        let token = req.into_inner().token;
        let p = self.0.credentials.resolve(&token).await?;
        let u = self.0.accounts.user_of(&p).await?;
        Ok(Response::new(Authorization {
            token,
            user: Some(user(&u)),
            session_id: p.session_id,
        }))
    }

    async fn get_sessions(&self, req: Request<GetSessions>) -> Result<Response<Sessions>, Status> {
        let p = principal(&req)?;
        let rows = self.0.sessions.list(&p).await?;
        Ok(Response::new(Sessions {
            sessions: rows.iter().map(session).collect(),
            current: p.session_id,
        }))
    }

    async fn revoke_sessions(&self, req: Request<RevokeSessions>) -> Result<Response<()>, Status> {
        let p = principal(&req)?;
        self.0
            .sessions
            .revoke(&p, req.into_inner().session_ids)
            .await?;
        Ok(Response::new(()))
    }

    async fn reset_password(&self, req: Request<ResetPassword>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        match r.confirm {
            None => self.0.codes.request_password_reset(&r.email).await?,
            Some(c) => {
                let password = Zeroizing::new(c.new_password);
                self.0
                    .codes
                    .reset_password(&r.email, &c.code, &password)
                    .await?
            }
        }
        Ok(Response::new(()))
    }

    async fn verify_email(&self, req: Request<VerifyEmail>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        self.0.codes.verify_email(&r.email, &r.code).await?;
        Ok(Response::new(()))
    }

    async fn resend_email_verification(
        &self,
        req: Request<ResendEmailVerification>,
    ) -> Result<Response<()>, Status> {
        let caller = optional_principal(&req);
        let email = req.into_inner().email;
        self.0
            .codes
            .resend_verification(email.as_deref(), caller.as_ref())
            .await?;
        Ok(Response::new(()))
    }

    async fn lookup_invite(
        &self,
        _: Request<LookupInvite>,
    ) -> Result<Response<InvitePreview>, Status> {
        Err(unimplemented("tangle.client.auth.Auth/LookupInvite"))
    }

    async fn use_invite(&self, _: Request<UseInvite>) -> Result<Response<()>, Status> {
        Err(unimplemented("tangle.client.auth.Auth/UseInvite"))
    }

    async fn create_invite(
        &self,
        _: Request<CreateInvite>,
    ) -> Result<Response<CreatedInvite>, Status> {
        Err(unimplemented("tangle.client.auth.Auth/CreateInvite"))
    }

    async fn list_invites(&self, _: Request<ListInvites>) -> Result<Response<InviteList>, Status> {
        Err(unimplemented("tangle.client.auth.Auth/ListInvites"))
    }

    async fn revoke_invite(&self, _: Request<RevokeInvite>) -> Result<Response<()>, Status> {
        Err(unimplemented("tangle.client.auth.Auth/RevokeInvite"))
    }
}
