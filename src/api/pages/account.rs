//! The account page and signing out: the address, the sessions (device, last active, how
//! each was made) with "end this" and "end all others", changing the password and the
//! address, deleting the account. A cookie whose session is gone sends the browser to sign
//! in again.
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::StatusCode;
use maud::html;

use super::html::{self, field};
use super::web::{self, failed, posted_with_session as posted, Visit};
use super::Pages;
use crate::api::dispatch::Refusal;
use crate::pb::tangle::client::auth as tangle;

const GET_SESSIONS: &str = "/tangle.client.auth.Auth/GetSessions";
const REVOKE_SESSIONS: &str = "/tangle.client.auth.Auth/RevokeSessions";
const GET_ACCOUNT: &str = "/tangle.client.auth.Auth/GetAccount";
const CHANGE_PASSWORD: &str = "/tangle.client.auth.Auth/ChangePassword";

/// Milliseconds since the epoch as a UTC date and time, to the minute.
fn when(ms: u64) -> String {
    let full = crate::clock::rfc3339(ms);
    match full.get(..16) {
        Some(minute) => format!("{} UTC", minute.replace('T', " ")),
        None => full,
    }
}

/// How a session was made, from its `amr`.
fn made_by(amr: &[String]) -> String {
    let names: Vec<&str> = amr
        .iter()
        .map(|m| match m.as_str() {
            "pwd" => "password",
            "otp" => "authenticator code",
            "recovery" => "recovery code",
            "federated" => "another server",
            other => other,
        })
        .collect();
    if names.is_empty() {
        "—".into()
    } else {
        names.join(" + ")
    }
}

fn device(s: &tangle::Session) -> String {
    let parts: Vec<&str> = [
        s.app_name.as_str(),
        s.app_version.as_str(),
        s.device_type.as_str(),
        s.device_version.as_str(),
    ]
    .into_iter()
    .filter(|p| !p.is_empty())
    .collect();
    if parts.is_empty() {
        "unknown device".into()
    } else {
        parts.join(" ")
    }
}

async fn account_page(
    pages: &Pages,
    visit: &Visit,
    note: Option<&str>,
    error: Option<&Refusal>,
) -> Response {
    let fetched = async {
        let account: tangle::Account = visit
            .call(pages, GET_ACCOUNT, &tangle::GetAccount {})
            .await?;
        let sessions: tangle::Sessions = visit
            .call(pages, GET_SESSIONS, &tangle::GetSessions {})
            .await?;
        Ok::<_, Refusal>((account, sessions))
    };
    let (account, sessions) = match fetched.await {
        Ok(a) => a,
        Err(e) => return failed(pages, visit, &e),
    };
    let token = visit.csrf_token(pages);
    let body = html! {
        @if let Some(n) = note { (html::notice(n)) }
        @if let Some(e) = error { (html::refusal(e)) }
        p {
            "Signed in as " strong { (account.email.clone().unwrap_or_default()) }
            @if !account.confirmed { " (not verified yet)" }
        }
        @if !account.confirmed {
            (html::button("/email/resend", &token, "Send a new verification link",
                html::hidden("email", &account.email.clone().unwrap_or_default())))
        }
        @if account.pending_delete {
            p.error role="alert" { "This account is set to be deleted. " }
            (html::button("/account/delete", &token, "Keep my account", html::hidden("cancel", "1")))
        }
        p {
            "Second factor: " @if account.totp_enabled { "on (authenticator app)" } @else { "off" }
            " · " a href="/account/second-factor" { "Change" }
        }
        p { a href="/account/passkeys" { "Passkeys" } " · " a href="/account/tokens" { "Personal access tokens" } }
        (html::button("/sign-out", &token, "Sign out", html! {}))

        h2 { "Sessions" }
        table {
            thead { tr { th { "Device" } th { "Last active" } th { "Signed in with" } th {} } }
            tbody {
                @for s in &sessions.sessions {
                    tr {
                        td { (device(s)) @if s.id == sessions.current { " " strong { "(this browser)" } } }
                        td { (when(s.last_active)) }
                        td { (made_by(&s.amr)) }
                        td {
                            @if s.id != sessions.current {
                                (html::button("/account/sessions/end", &token, "End this",
                                    html::hidden("id", &s.id.to_string())))
                            }
                        }
                    }
                }
            }
        }
        @if sessions.sessions.len() > 1 {
            (html::button("/account/sessions/end-others", &token, "End all other sessions", html! {}))
        }

        h2 { "Change password" }
        form method="post" action="/account/password" {
            (html::csrf(&token))
            (field("Current password", "current", "password", "current-password", ""))
            (field("New password", "password", "password", "new-password", ""))
            button type="submit" { "Change password" }
        }

        h2 { "Change e-mail address" }
        form method="post" action="/account/email" {
            (html::csrf(&token))
            (field("New e-mail address", "email", "email", "email", ""))
            p.hint { "We mail a link to the new address; the address changes when it is opened." }
            button type="submit" { "Change e-mail address" }
        }

        h2 { "Delete account" }
        form method="post" action="/account/delete" {
            (html::csrf(&token))
            (field("Type your e-mail address to confirm", "confirm", "email", "off", ""))
            p.hint { "Every session ends now." }
            button type="submit" { "Delete my account" }
        }
    };
    visit.render(pages, web::status(error), "Your account", true, body)
}

/// `GET /account`.
pub async fn show(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let visit = web::with_session(&pages, &req)?;
    Ok(account_page(&pages, &visit, None, None).await)
}

/// The account page after an action: `note` when it worked, else its refusal. (A session
/// that is gone shows as the page's own reads failing: the way to sign in.)
async fn after(pages: &Pages, visit: &Visit, done: Result<(), Refusal>, note: &str) -> Response {
    match done {
        Ok(()) => account_page(pages, visit, Some(note), None).await,
        Err(e) => account_page(pages, visit, None, Some(&e)).await,
    }
}

async fn revoke(pages: &Pages, visit: &Visit, ids: Vec<u64>, note: &str) -> Response {
    let end = tangle::RevokeSessions { session_ids: ids };
    match visit.call::<_, ()>(pages, REVOKE_SESSIONS, &end).await {
        Ok(()) => account_page(pages, visit, Some(note), None).await,
        Err(e) => failed(pages, visit, &e),
    }
}

/// `POST /account/sessions/end`: ends one other session.
pub async fn end_session(
    State(pages): State<Arc<Pages>>,
    req: Request,
) -> Result<Response, Response> {
    let (visit, form) = posted(&pages, req).await?;
    let Ok(id) = form.get("id").parse::<u64>() else {
        let e = Refusal::transport(
            tonic::Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "the form names no session",
        );
        return Err(failed(&pages, &visit, &e));
    };
    Ok(revoke(&pages, &visit, vec![id], "The session has ended.").await)
}

/// `POST /account/sessions/end-others`: ends every session but this browser's.
pub async fn end_others(
    State(pages): State<Arc<Pages>>,
    req: Request,
) -> Result<Response, Response> {
    let (visit, _) = posted(&pages, req).await?;
    let sessions: tangle::Sessions = match visit
        .call(&pages, GET_SESSIONS, &tangle::GetSessions {})
        .await
    {
        Ok(s) => s,
        Err(e) => return Err(failed(&pages, &visit, &e)),
    };
    let others: Vec<u64> = sessions
        .sessions
        .iter()
        .map(|s| s.id)
        .filter(|id| *id != sessions.current)
        .collect();
    if others.is_empty() {
        return Ok(account_page(&pages, &visit, Some("No other session was open."), None).await);
    }
    Ok(revoke(&pages, &visit, others, "Every other session has ended.").await)
}

/// `POST /account/password`: the current password and a new one; other sessions end.
pub async fn change_password(
    State(pages): State<Arc<Pages>>,
    req: Request,
) -> Result<Response, Response> {
    let (visit, form) = posted(&pages, req).await?;
    let change = tangle::ChangePassword {
        current_password: form.get("current"),
        new_password: form.get("password"),
        revoke_sessions: true,
    };
    let done = visit.call(&pages, CHANGE_PASSWORD, &change).await;
    let note = "Your password is changed; your other sessions have ended.";
    Ok(after(&pages, &visit, done, note).await)
}

/// `POST /sign-out`: ends this browser's session.
pub async fn sign_out(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, _) = web::posted(&pages, req).await?;
    if visit.token.is_some() {
        let sessions: Result<tangle::Sessions, _> = visit
            .call(&pages, GET_SESSIONS, &tangle::GetSessions {})
            .await;
        if let Ok(s) = sessions {
            let end = tangle::RevokeSessions {
                session_ids: vec![s.current],
            };
            if let Err(e) = visit.call::<_, ()>(&pages, REVOKE_SESSIONS, &end).await {
                // The cookie stays: the session it holds still works.
                return Err(failed(&pages, &visit, &e));
            }
        }
    }
    let mut res = web::see_other("/sign-in");
    web::clear_session(&mut res, &pages);
    Ok(visit.finish(&pages, res))
}

const CHANGE_EMAIL: &str = "/tangle.client.auth.Auth/ChangeEmail";
const DELETE_ACCOUNT: &str = "/tangle.client.auth.Auth/DeleteAccount";

/// `POST /account/email`: mails a link to the new address.
pub async fn change_email(
    State(pages): State<Arc<Pages>>,
    req: Request,
) -> Result<Response, Response> {
    let (visit, form) = posted(&pages, req).await?;
    let change = tangle::ChangeEmail {
        new_email: form.get("email"),
    };
    let done = visit.call(&pages, CHANGE_EMAIL, &change).await;
    let note = format!(
        "We mailed a link to {}. Your address changes when it is opened.",
        form.get("email")
    );
    Ok(after(&pages, &visit, done, &note).await)
}

/// `POST /account/delete`: deletes (or schedules the deletion of) the account once its
/// address is typed; with `cancel`, keeps a scheduled one.
pub async fn delete(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = posted(&pages, req).await?;
    let cancel = !form.get("cancel").is_empty();
    if !cancel {
        let account: tangle::Account = match visit
            .call(&pages, GET_ACCOUNT, &tangle::GetAccount {})
            .await
        {
            Ok(a) => a,
            Err(e) => return Err(failed(&pages, &visit, &e)),
        };
        let typed = form.get("confirm");
        if !typed
            .trim()
            .eq_ignore_ascii_case(account.email.as_deref().unwrap_or_default())
        {
            let e = Refusal::transport(
                tonic::Code::InvalidArgument,
                "FIELD_INVALID",
                "type the account's e-mail address to confirm the deletion",
            );
            return Ok(account_page(&pages, &visit, None, Some(&e)).await);
        }
    }
    let ask = tangle::DeleteAccount {
        cancel: Some(cancel),
    };
    let done = visit.call(&pages, DELETE_ACCOUNT, &ask).await;
    if cancel || done.is_err() {
        return Ok(after(&pages, &visit, done, "Your account stays.").await);
    }
    let body = html! {
        (html::notice("Your account is deleted, or set to be deleted after the server's grace period; every session has ended. Signing in within that period lets you keep it."))
        p { a href="/" { "Home" } }
    };
    let mut res = visit.render(&pages, StatusCode::OK, "Account deleted", false, body);
    web::clear_session(&mut res, &pages);
    Ok(res)
}
