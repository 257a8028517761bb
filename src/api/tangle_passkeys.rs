//! The passkey calls of `tangle.client.auth` (Hearth extensions): decode, one call of the
//! passkeys service (or the step flow a passkey answers), encode. `tangle.rs` hands them
//! here to stay one screenful.
use tonic::{Request, Response, Status};

use super::context::{principal, request_context};
use super::status::status;
use super::tangle::TangleApi;
use crate::domain::passkeys::{Challenge, PasskeyView};
use crate::pb::tangle::client::auth::{
    Authorization, BeginPasskeyRegistration, BeginPasskeySignIn, FinishPasskeyRegistration,
    FinishPasskeySignIn, FinishPasskeyStep, ListPasskeys, Passkey, PasskeyChallenge, PasskeyList,
    RemovePasskey,
};

fn passkey(v: PasskeyView) -> Passkey {
    Passkey {
        id: v.id,
        name: v.name,
        created_at: v.created_at,
        last_used_at: v.last_used_at,
        backed_up: v.backed_up,
    }
}

fn challenge(c: Challenge) -> PasskeyChallenge {
    PasskeyChallenge {
        ceremony: c.ceremony,
        options: c.options,
    }
}

impl TangleApi {
    pub(super) async fn list_passkeys_call(
        &self,
        req: Request<ListPasskeys>,
    ) -> Result<Response<PasskeyList>, Status> {
        let p = principal(&req)?;
        let keys = self.passkeys.list(p.user_id).await.map_err(status)?;
        Ok(Response::new(PasskeyList {
            passkeys: keys.into_iter().map(passkey).collect(),
        }))
    }

    pub(super) async fn begin_passkey_registration_call(
        &self,
        req: Request<BeginPasskeyRegistration>,
    ) -> Result<Response<PasskeyChallenge>, Status> {
        let p = principal(&req)?;
        let user = self.accounts.user_of(&p).await.map_err(status)?;
        let label = user.email.unwrap_or(user.name);
        let c = self
            .passkeys
            .begin_register(&p, &label, &req.into_inner().name)
            .await
            .map_err(status)?;
        Ok(Response::new(challenge(c)))
    }

    pub(super) async fn finish_passkey_registration_call(
        &self,
        req: Request<FinishPasskeyRegistration>,
    ) -> Result<Response<Passkey>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let v = self
            .passkeys
            .finish_register(&p, &r.ceremony, &r.credential)
            .await
            .map_err(status)?;
        Ok(Response::new(passkey(v)))
    }

    pub(super) async fn remove_passkey_call(
        &self,
        req: Request<RemovePasskey>,
    ) -> Result<Response<()>, Status> {
        let p = principal(&req)?;
        self.passkeys
            .remove(p.user_id, req.into_inner().id)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    pub(super) async fn begin_passkey_sign_in_call(
        &self,
        req: Request<BeginPasskeySignIn>,
    ) -> Result<Response<PasskeyChallenge>, Status> {
        let c = match req.into_inner().handoff.filter(|h| !h.is_empty()) {
            None => self.passkeys.begin_sign_in().await,
            Some(h) => match self.flows.handoff_user(&h).await {
                Ok(user) => self.passkeys.begin_step(user, &h).await,
                Err(e) => Err(e),
            },
        }
        .map_err(status)?;
        Ok(Response::new(challenge(c)))
    }

    pub(super) async fn finish_passkey_sign_in_call(
        &self,
        req: Request<FinishPasskeySignIn>,
    ) -> Result<Response<Authorization>, Status> {
        let ctx = request_context(&req);
        let r = req.into_inner();
        let signed = self
            .passkeys
            .sign_in(&r.ceremony, &r.credential, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(super::tangle::authorization(signed)))
    }

    pub(super) async fn finish_passkey_step_call(
        &self,
        req: Request<FinishPasskeyStep>,
    ) -> Result<Response<()>, Status> {
        let ctx = request_context(&req);
        let r = req.into_inner();
        let (_, assertion) = self
            .passkeys
            .step_assertion(&r.handoff, &r.ceremony, &r.credential)
            .await
            .map_err(status)?;
        self.flows
            .answer_with_passkey(&r.handoff, assertion, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }
}
