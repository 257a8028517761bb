//! The settings calls of `tangle.client.auth` (Hearth extensions; the Osmium socket's
//! `settings.*` members): decode, one call of the settings service, encode. `tangle.rs`
//! hands them here to stay one screenful.
use crate::api::status::status;
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::context::{principal, request_context};
use crate::domain::settings::Settings;
use crate::pb::tangle::client::auth::{
    Account, BackupCode, ChangeEmail, ChangePassword, DeleteAccount, GetAccount, SetupTotp, Totp,
};

pub async fn get_account(
    s: &Settings,
    req: Request<GetAccount>,
) -> Result<Response<Account>, Status> {
    let p = principal(&req)?;
    let a = s.account(&p).await.map_err(status)?;
    Ok(Response::new(Account {
        email: a.email,
        confirmed: a.confirmed,
        has_password: a.has_password,
        totp_enabled: a.totp_enabled,
        pending_delete: a.pending_delete,
    }))
}

pub async fn change_password(
    s: &Settings,
    req: Request<ChangePassword>,
) -> Result<Response<()>, Status> {
    let p = principal(&req)?;
    let ctx = request_context(&req);
    let r = req.into_inner();
    let (current, new) = (
        Zeroizing::new(r.current_password),
        Zeroizing::new(r.new_password),
    );
    s.change_password(&p, &current, &new, &ctx)
        .await
        .map_err(status)?;
    Ok(Response::new(()))
}

pub async fn change_email(s: &Settings, req: Request<ChangeEmail>) -> Result<Response<()>, Status> {
    let p = principal(&req)?;
    s.change_email(&p, &req.into_inner().new_email)
        .await
        .map_err(status)?;
    Ok(Response::new(()))
}

pub async fn delete_account(
    s: &Settings,
    req: Request<DeleteAccount>,
) -> Result<Response<()>, Status> {
    let p = principal(&req)?;
    let cancel = req.into_inner().cancel.unwrap_or(false);
    s.delete_account(&p, cancel).await.map_err(status)?;
    Ok(Response::new(()))
}

pub async fn setup_totp(s: &Settings, req: Request<SetupTotp>) -> Result<Response<Totp>, Status> {
    let p = principal(&req)?;
    let r = req.into_inner();
    let view = s
        .setup_totp(&p, r.enabled, r.code.as_deref())
        .await
        .map_err(status)?;
    Ok(Response::new(Totp {
        enabled: view.enabled,
        url: view.url,
        backup_codes: view
            .recovery_codes
            .into_iter()
            .map(|code| BackupCode { code, used: false })
            .collect(),
    }))
}
