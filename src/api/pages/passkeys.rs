//! Passkeys on a page: the account's list (add with a name, remove), a sign-in with a
//! passkey alone, and the second factor of a sign-in (the step flow's `fallback_url`
//! leads here too, for a client that cannot run WebAuthn). The browser's WebAuthn call is
//! the pages' one script (`/passkeys.js`, embedded); everything else is a form post through
//! the `tangle.client.auth` passkey methods.
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use maud::{html, Markup};

use super::html::{self, field};
use super::web::{self, failed, visit, Visit};
use super::Pages;
use crate::api::dispatch::Refusal;
use crate::pb::protocol::auth::v1 as harmony;
use crate::pb::tangle::client::auth as tangle;

const LIST: &str = "/tangle.client.auth.Auth/ListPasskeys";
const BEGIN_ADD: &str = "/tangle.client.auth.Auth/BeginPasskeyRegistration";
const FINISH_ADD: &str = "/tangle.client.auth.Auth/FinishPasskeyRegistration";
const REMOVE: &str = "/tangle.client.auth.Auth/RemovePasskey";
const BEGIN_SIGN_IN: &str = "/tangle.client.auth.Auth/BeginPasskeySignIn";
const FINISH_SIGN_IN: &str = "/tangle.client.auth.Auth/FinishPasskeySignIn";
const FINISH_STEP: &str = "/tangle.client.auth.Auth/FinishPasskeyStep";

/// `GET /passkeys.js`.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("assets/passkeys.js"),
    )
        .into_response()
}

/// A form whose button runs the browser's WebAuthn call (`mode`: create or get) with
/// `options` and posts the answer to `action`.
fn ceremony(
    token: &str,
    action: &str,
    mode: &str,
    options: &str,
    fields: Markup,
    label: &str,
) -> Markup {
    html! {
        form method="post" action=(action) data-mode=(mode) data-options=(options) {
            (html::csrf(token)) (fields)
            input type="hidden" name="credential" value="";
            p.hint data-status="" role="status" aria-live="polite" {
                "Press the button, then confirm on your device."
            }
            button type="button" data-go="" { (label) }
        }
        script src="/passkeys.js" {}
    }
}

/// The start of a passkey sign-in: a button that begins the ceremony (`handoff` and `flow`
/// for the second factor of a step flow).
pub fn start(token: &str, handoff: &str, flow: &str, label: &str) -> Markup {
    html! {
        form method="post" action="/sign-in/passkey" {
            (html::csrf(token))
            @if !handoff.is_empty() { (html::hidden("handoff", handoff)) }
            @if !flow.is_empty() { (html::hidden("flow", flow)) }
            button type="submit" { (label) }
        }
    }
}

async fn list_page(
    pages: &Pages,
    visit: &Visit,
    note: Option<&str>,
    error: Option<&Refusal>,
) -> Response {
    let list: tangle::PasskeyList = match visit.call(pages, LIST, &tangle::ListPasskeys {}).await {
        Ok(l) => l,
        Err(e) => return failed(pages, visit, &e),
    };
    let token = visit.csrf_token(pages);
    let body = html! {
        @if let Some(e) = error { (html::refusal(e)) }
        @if let Some(n) = note { (html::notice(n)) }
        p { "A passkey signs you in with your device's screen lock or security key, with no password to type or steal. Once you have one, a password alone no longer signs you in." }
        @if list.passkeys.is_empty() { p.hint { "You have no passkeys." } }
        @else {
            table {
                thead { tr { th { "Name" } th { "Added" } th { "Last used" } th { "Synced" } th {} } }
                tbody {
                    @for k in &list.passkeys {
                        tr {
                            td { (k.name) }
                            td { (html::day(k.created_at)) }
                            td { (k.last_used_at.map(html::day).unwrap_or_else(|| "—".into())) }
                            td { @if k.backed_up { "yes" } @else { "no" } }
                            td { (html::button("/account/passkeys/remove", &token, "Remove", html::hidden("id", &k.id.to_string()))) }
                        }
                    }
                }
            }
        }
        h2 { "Add a passkey" }
        form method="post" action="/account/passkeys/add" {
            (html::csrf(&token))
            (field("Name (to tell your passkeys apart)", "name", "text", "off", ""))
            button type="submit" { "Add a passkey" }
        }
        p { a href="/account" { "Back to your account" } }
    };
    visit.render(pages, web::status(error), "Passkeys", true, body)
}

/// The list after an action: its note when it worked, else its refusal.
async fn after(pages: &Pages, visit: &Visit, done: Result<String, Refusal>) -> Response {
    match done {
        Ok(note) => list_page(pages, visit, Some(&note), None).await,
        Err(e) => list_page(pages, visit, None, Some(&e)).await,
    }
}

/// `GET /account/passkeys`.
pub async fn show(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let visit = web::with_session(&pages, &req)?;
    Ok(list_page(&pages, &visit, None, None).await)
}

/// `POST /account/passkeys/add`: begins the ceremony; the page's button finishes it.
pub async fn add(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted_with_session(&pages, req).await?;
    let ask = tangle::BeginPasskeyRegistration {
        name: form.get("name"),
    };
    let begun: Result<tangle::PasskeyChallenge, _> = visit.call(&pages, BEGIN_ADD, &ask).await;
    Ok(match begun {
        Ok(c) => {
            let token = visit.csrf_token(&pages);
            let body = ceremony(
                &token,
                "/account/passkeys/finish",
                "create",
                &c.options,
                html::hidden("ceremony", &c.ceremony),
                "Create the passkey",
            );
            visit.render(&pages, StatusCode::OK, "Add a passkey", true, body)
        }
        Err(e) => list_page(&pages, &visit, None, Some(&e)).await,
    })
}

/// `POST /account/passkeys/finish`: the authenticator's answer.
pub async fn finish_add(
    State(pages): State<Arc<Pages>>,
    req: Request,
) -> Result<Response, Response> {
    let (visit, form) = web::posted_with_session(&pages, req).await?;
    let ask = tangle::FinishPasskeyRegistration {
        ceremony: form.get("ceremony"),
        credential: form.get("credential"),
    };
    let added: Result<tangle::Passkey, _> = visit.call(&pages, FINISH_ADD, &ask).await;
    let note = added.map(|k| format!("Passkey \"{}\" added.", k.name));
    Ok(after(&pages, &visit, note).await)
}

/// `POST /account/passkeys/remove`.
pub async fn remove(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted_with_session(&pages, req).await?;
    let id = form.get("id").parse::<u64>().unwrap_or_default();
    let removed: Result<(), _> = visit
        .call(&pages, REMOVE, &tangle::RemovePasskey { id })
        .await;
    Ok(after(
        &pages,
        &visit,
        removed.map(|()| "Passkey removed.".to_owned()),
    )
    .await)
}

/// `GET /sign-in/passkey?handoff=…`: where a step flow's `fallback_url` leads.
pub async fn fallback(
    State(pages): State<Arc<Pages>>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let handoff = q.get("handoff").cloned().unwrap_or_default();
    let visit = visit(&req);
    let token = visit.csrf_token(&pages);
    let body = html! {
        p { "Your app asks you to confirm this sign-in with your passkey." }
        (start(&token, &handoff, "", "Continue with a passkey"))
    };
    visit.render(
        &pages,
        StatusCode::OK,
        "Confirm with a passkey",
        false,
        body,
    )
}

fn sign_in_refused(pages: &Pages, visit: &Visit, e: &Refusal) -> Response {
    let token = visit.csrf_token(pages);
    let body = html! {
        (html::refusal(e))
        p { a href="/sign-in" { "Back to sign in" } }
        (start(&token, "", "", "Try a passkey again"))
    };
    visit.render(
        pages,
        web::status_of(e),
        "Sign in with a passkey",
        false,
        body,
    )
}

/// `POST /sign-in/passkey`: begins a passkey sign-in (alone, or a flow's second factor).
pub async fn begin(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted(&pages, req).await?;
    let (handoff, flow) = (form.get("handoff"), form.get("flow"));
    let ask = tangle::BeginPasskeySignIn {
        handoff: Some(handoff.clone()).filter(|h| !h.is_empty()),
    };
    let begun: Result<tangle::PasskeyChallenge, _> =
        visit.call_as(&pages, BEGIN_SIGN_IN, &ask, None).await;
    Ok(match begun {
        Ok(c) => {
            let token = visit.csrf_token(&pages);
            let fields = html! {
                (html::hidden("ceremony", &c.ceremony))
                @if !handoff.is_empty() { (html::hidden("handoff", &handoff)) }
                @if !flow.is_empty() { (html::hidden("flow", &flow)) }
            };
            let body = ceremony(
                &token,
                "/sign-in/passkey/finish",
                "get",
                &c.options,
                fields,
                "Use your passkey",
            );
            visit.render(
                &pages,
                StatusCode::OK,
                "Sign in with a passkey",
                false,
                body,
            )
        }
        Err(e) => sign_in_refused(&pages, &visit, &e),
    })
}

/// `POST /sign-in/passkey/finish`: the authenticator's answer. Alone: this browser is
/// signed in. A flow's second factor: the flow ends with a session, which is this browser's
/// only when the flow is the page's own (`flow`); otherwise the app that began it gets it.
pub async fn finish(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted(&pages, req).await?;
    let (ceremony, credential) = (form.get("ceremony"), form.get("credential"));
    let (handoff, flow) = (form.get("handoff"), form.get("flow"));
    if handoff.is_empty() {
        let ask = tangle::FinishPasskeySignIn {
            ceremony,
            credential,
        };
        let signed: Result<tangle::Authorization, _> =
            visit.call_as(&pages, FINISH_SIGN_IN, &ask, None).await;
        return Ok(match signed {
            Ok(a) => visit.signed_in(&pages, &a.token),
            Err(e) => sign_in_refused(&pages, &visit, &e),
        });
    }
    let ask = tangle::FinishPasskeyStep {
        handoff,
        ceremony,
        credential,
    };
    let answered: Result<(), _> = visit.call_as(&pages, FINISH_STEP, &ask, None).await;
    if let Err(e) = answered {
        return Ok(sign_in_refused(&pages, &visit, &e));
    }
    if flow.is_empty() {
        let body = html! {
            (html::notice("Confirmed. Go back to your app: it is signed in now."))
        };
        return Ok(visit.render(&pages, StatusCode::OK, "Signed in", false, body));
    }
    let now: Result<harmony::NextStepResponse, _> = visit
        .call_as(
            &pages,
            "/protocol.auth.v1.AuthService/NextStep",
            &harmony::NextStepRequest {
                auth_id: flow,
                step: None,
            },
            None,
        )
        .await;
    Ok(match now.map(|r| r.step.and_then(|s| s.step)) {
        Ok(Some(harmony::auth_step::Step::Session(s))) => visit.signed_in(&pages, &s.session_token),
        Ok(_) => sign_in_refused(
            &pages,
            &visit,
            &Refusal::transport(
                tonic::Code::FailedPrecondition,
                "UNEXPECTED_STEP",
                "the sign-in did not finish; start again",
            ),
        ),
        Err(e) => sign_in_refused(&pages, &visit, &e),
    })
}
