//! tangle.client.auth.Auth: accounts, sessions, e-mail codes and invites.
use crate::api::status::status;
use std::sync::Arc;

use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::context::{optional_principal, principal, request_context};
use crate::domain::accounts::{SignUp, SignedIn};
use crate::domain::invites::{NewInvite, PreviewTarget};
use crate::domain::model::{Invite, InviteTarget, Session as SessionRow, User as UserRow};
use crate::domain::{CredentialKind, DomainError, Reason, Services};
use crate::pb::tangle::client::auth::{
    auth_server::Auth, Authorization, Authorize, CreateInvite, CreatedInvite, GetSessions,
    InviteList, InvitePreview, InviteType, ListInvites, LookupInvite, ResendEmailVerification,
    ResetPassword, RevokeInvite, RevokeSessions, Session, Sessions, SignIn, SignUp as SignUpMsg,
    UseInvite, VerifyEmail,
};
use crate::pb::tangle::client::auth::{
    Account, ChangeEmail, ChangePassword, DeleteAccount, GetAccount, SetupTotp, Totp,
};
use crate::pb::tangle::client::auth::{
    BeginPasskeyRegistration, BeginPasskeySignIn, FinishPasskeyRegistration, FinishPasskeySignIn,
    FinishPasskeyStep, ListPasskeys, Passkey, PasskeyChallenge, PasskeyList, RemovePasskey,
};
use crate::pb::tangle::client::types::User;

/// The Tangle auth service.
#[derive(Debug, Clone)]
pub struct TangleApi {
    pub(super) accounts: Arc<crate::domain::accounts::Accounts>,
    codes: Arc<crate::domain::codes::Codes>,
    credentials: Arc<crate::domain::credentials::Credentials>,
    invites: Arc<crate::domain::invites::Invites>,
    sessions: Arc<crate::domain::sessions::Sessions>,
    settings: Arc<crate::domain::settings::Settings>,
    pub(super) passkeys: Arc<crate::domain::passkeys::Passkeys>,
    pub(super) flows: Arc<crate::domain::flows::Flows>,
}

impl TangleApi {
    /// The adapter over the services it calls.
    pub fn new(s: &Services) -> Self {
        Self {
            accounts: s.accounts.clone(),
            codes: s.codes.clone(),
            credentials: s.credentials.clone(),
            invites: s.invites.clone(),
            sessions: s.sessions.clone(),
            settings: s.settings.clone(),
            passkeys: s.passkeys.clone(),
            flows: s.flows.clone(),
        }
    }
}

fn user(u: &UserRow) -> User {
    User {
        id: u.id,
        name: u.name.clone(),
        username: None,
        bot: false,
    }
}

pub(super) fn authorization(s: SignedIn) -> Authorization {
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
        amr: s.amr.split_whitespace().map(str::to_owned).collect(),
    }
}

#[tonic::async_trait]
impl Auth for TangleApi {
    async fn sign_in(&self, req: Request<SignIn>) -> Result<Response<Authorization>, Status> {
        let ctx = request_context(&req);
        let r = req.into_inner();
        let signed = self
            .accounts
            .sign_in(&r.email, &r.password, r.totp.as_deref(), &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(authorization(signed)))
    }

    async fn sign_up(&self, req: Request<SignUpMsg>) -> Result<Response<Authorization>, Status> {
        let ctx = request_context(&req);
        let r = req.into_inner();
        let signed = self
            .accounts
            .sign_up(
                SignUp {
                    email: r.email,
                    password: r.password.map(Zeroizing::new),
                    name: Some(r.name),
                    invite_code: r.invite_code,
                    guest: None,
                },
                &ctx,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(authorization(signed)))
    }

    async fn authorize(&self, req: Request<Authorize>) -> Result<Response<Authorization>, Status> {
        let ip = request_context(&req).ip;
        let token = req.into_inner().token;
        let p = self.credentials.resolve(&token, ip).await.map_err(status)?;
        if p.kind != CredentialKind::Session {
            return Err(status(DomainError::unauthenticated(
                Reason::CredentialWrongKind,
                "token: Authorize resolves session tokens; use TokenAuthorization for a personal access token",
            )));
        }
        let u = self.accounts.user_of(&p).await.map_err(status)?;
        Ok(Response::new(Authorization {
            token,
            user: Some(user(&u)),
            session_id: p.session_id,
        }))
    }

    async fn get_sessions(&self, req: Request<GetSessions>) -> Result<Response<Sessions>, Status> {
        let p = principal(&req)?;
        let rows = self.sessions.list(&p).await.map_err(status)?;
        Ok(Response::new(Sessions {
            sessions: rows.iter().map(session).collect(),
            current: p.session_id,
        }))
    }

    async fn revoke_sessions(&self, req: Request<RevokeSessions>) -> Result<Response<()>, Status> {
        let p = principal(&req)?;
        self.sessions
            .revoke(&p, req.into_inner().session_ids)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn reset_password(&self, req: Request<ResetPassword>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        match r.confirm {
            None => self
                .codes
                .request_password_reset(&r.email)
                .await
                .map_err(status)?,
            Some(c) => {
                let password = Zeroizing::new(c.new_password);
                self.codes
                    .reset_password(&r.email, &c.code, &password)
                    .await
                    .map_err(status)?
            }
        }
        Ok(Response::new(()))
    }

    async fn verify_email(&self, req: Request<VerifyEmail>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        self.codes
            .verify_email(&r.email, &r.code)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn resend_email_verification(
        &self,
        req: Request<ResendEmailVerification>,
    ) -> Result<Response<()>, Status> {
        let caller = optional_principal(&req);
        let email = req.into_inner().email;
        self.codes
            .resend_verification(email.as_deref(), caller.as_ref())
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn lookup_invite(
        &self,
        req: Request<LookupInvite>,
    ) -> Result<Response<InvitePreview>, Status> {
        let caller = optional_principal(&req).map(|p| p.user_id);
        let code = req.into_inner().code;
        let preview = self.invites.lookup(&code).await.map_err(status)?;
        Ok(Response::new(invite_preview(
            code.trim().to_owned(),
            &preview.invite,
            preview.creator.as_ref(),
            &preview.target,
            caller,
        )))
    }

    async fn use_invite(&self, req: Request<UseInvite>) -> Result<Response<()>, Status> {
        let p = principal(&req)?;
        self.invites
            .use_invite(&p, &req.into_inner().code)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn create_invite(
        &self,
        req: Request<CreateInvite>,
    ) -> Result<Response<CreatedInvite>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let target = match InviteType::try_from(r.target_type) {
            Ok(InviteType::User) => InviteTarget::User,
            Ok(InviteType::Group) => InviteTarget::Group,
            Ok(InviteType::Community) => InviteTarget::Community,
            Ok(InviteType::Registration) => InviteTarget::Registration,
            _ => {
                return Err(status(DomainError::invalid(
                    "target_type",
                    "must be USER, GROUP, COMMUNITY or REGISTRATION",
                )))
            }
        };
        let new = NewInvite {
            target,
            target_id: r.target_id,
            expires_at: r.expires_at.map(|s| s.saturating_mul(1000)),
            max_uses: r.max_uses,
        };
        let (code, _) = self.invites.create(Some(&p), new).await.map_err(status)?;
        Ok(Response::new(CreatedInvite { code }))
    }

    async fn list_invites(
        &self,
        req: Request<ListInvites>,
    ) -> Result<Response<InviteList>, Status> {
        let p = principal(&req)?;
        let invites = self.invites.list(p.user_id).await.map_err(status)?;
        Ok(Response::new(InviteList {
            invites: invites
                .iter()
                .map(|i| {
                    let hint = format!("{}…", i.hint);
                    invite_preview(hint, i, None, &PreviewTarget::None, Some(p.user_id))
                })
                .collect(),
        }))
    }

    async fn revoke_invite(&self, req: Request<RevokeInvite>) -> Result<Response<()>, Status> {
        let p = principal(&req)?;
        self.invites
            .revoke(p.user_id, &req.into_inner().code)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn get_account(&self, req: Request<GetAccount>) -> Result<Response<Account>, Status> {
        super::tangle_settings::get_account(&self.settings, req).await
    }

    async fn change_password(&self, req: Request<ChangePassword>) -> Result<Response<()>, Status> {
        super::tangle_settings::change_password(&self.settings, req).await
    }

    async fn change_email(&self, req: Request<ChangeEmail>) -> Result<Response<()>, Status> {
        super::tangle_settings::change_email(&self.settings, req).await
    }

    async fn delete_account(&self, req: Request<DeleteAccount>) -> Result<Response<()>, Status> {
        super::tangle_settings::delete_account(&self.settings, req).await
    }

    async fn setup_totp(&self, req: Request<SetupTotp>) -> Result<Response<Totp>, Status> {
        super::tangle_settings::setup_totp(&self.settings, req).await
    }

    async fn list_passkeys(
        &self,
        req: Request<ListPasskeys>,
    ) -> Result<Response<PasskeyList>, Status> {
        self.list_passkeys_call(req).await
    }

    async fn begin_passkey_registration(
        &self,
        req: Request<BeginPasskeyRegistration>,
    ) -> Result<Response<PasskeyChallenge>, Status> {
        self.begin_passkey_registration_call(req).await
    }

    async fn finish_passkey_registration(
        &self,
        req: Request<FinishPasskeyRegistration>,
    ) -> Result<Response<Passkey>, Status> {
        self.finish_passkey_registration_call(req).await
    }

    async fn remove_passkey(&self, req: Request<RemovePasskey>) -> Result<Response<()>, Status> {
        self.remove_passkey_call(req).await
    }

    async fn begin_passkey_sign_in(
        &self,
        req: Request<BeginPasskeySignIn>,
    ) -> Result<Response<PasskeyChallenge>, Status> {
        self.begin_passkey_sign_in_call(req).await
    }

    async fn finish_passkey_sign_in(
        &self,
        req: Request<FinishPasskeySignIn>,
    ) -> Result<Response<Authorization>, Status> {
        self.finish_passkey_sign_in_call(req).await
    }

    async fn finish_passkey_step(
        &self,
        req: Request<FinishPasskeyStep>,
    ) -> Result<Response<()>, Status> {
        self.finish_passkey_step_call(req).await
    }
}

fn invite_type(t: InviteTarget) -> InviteType {
    match t {
        InviteTarget::User => InviteType::User,
        InviteTarget::Group => InviteType::Group,
        InviteTarget::Community => InviteType::Community,
        InviteTarget::Registration => InviteType::Registration,
    }
}

/// `caller`: who asks, for `owner` (whether the caller owns the group or community, as the
/// real Osmium types say; DESIGN.md §1).
fn invite_preview(
    code: String,
    i: &Invite,
    creator: Option<&UserRow>,
    target: &PreviewTarget,
    caller: Option<u64>,
) -> InvitePreview {
    use crate::pb::tangle::client::auth::invite_preview::TargetInfo;
    use crate::pb::tangle::client::types::{Community, Group};
    InvitePreview {
        code,
        creator_id: i.creator_id,
        target_id: i.target_id,
        target_type: invite_type(i.target) as i32,
        expires_at: Some(i.expires_at / 1000),
        creator: creator.map(user),
        target_info: match target {
            PreviewTarget::None => None,
            PreviewTarget::User(u) => Some(TargetInfo::User(user(u))),
            PreviewTarget::Group(g) => Some(TargetInfo::Chat(Group {
                id: g.id,
                name: g.name.clone(),
                owner: caller == Some(g.owner),
                participant_ids: g.members.clone(),
            })),
            PreviewTarget::Community(c) => Some(TargetInfo::Community(Community {
                id: c.id,
                owner: caller == Some(c.owner),
                name: c.name.clone(),
                permissions: 0,
                username: None,
            })),
        },
    }
}
