//! Signing in and up. Sign-in walks Harmony's step flow (`protocol.auth.v1`) as a
//! client would: the password step, then, for an account with a second factor, the code
//! step of the same flow, so the password is typed once and never travels in a page.
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::StatusCode;
use maud::{html, Markup};

use super::html::{self, field};
use super::web::{self, visit, Form, Visit};
use super::Pages;
use crate::api::dispatch::Refusal;
use crate::config::Registration;
use crate::pb::protocol::auth::v1 as harmony;
use crate::pb::tangle::client::auth as tangle;
use harmony::auth_step::Step;
use harmony::next_step_request::{self as next, form_fields::Field};

const BEGIN: &str = "/protocol.auth.v1.AuthService/BeginAuth";
const NEXT: &str = "/protocol.auth.v1.AuthService/NextStep";

/// `/`: the account when signed in, else the sign-in form.
pub async fn home(req: Request) -> Response {
    match visit(&req).token {
        Some(_) => web::see_other("/account"),
        None => web::see_other("/sign-in"),
    }
}

fn sign_in_page(pages: &Pages, visit: &Visit, email: &str, error: Option<&Refusal>) -> Response {
    let body = html! {
        @if let Some(e) = error { (html::refusal(e)) }
        form method="post" action="/sign-in" {
            (html::csrf(&visit.csrf_token(pages)))
            (field("E-mail address", "email", "email", "username", email))
            (field("Password", "password", "password", "current-password", ""))
            button type="submit" { "Sign in" }
        }
        (super::passkeys::start(&visit.csrf_token(pages), "", "", "Sign in with a passkey"))
        p { a href="/reset" { "Forgot your password?" } }
        @if pages.registration != Registration::Closed {
            p { "New here? " a href="/register" { "Create an account" } }
        }
    };
    visit.render(pages, web::status(error), "Sign in", false, body)
}

/// `GET /sign-in`.
pub async fn form(State(pages): State<Arc<Pages>>, req: Request) -> Response {
    sign_in_page(&pages, &visit(&req), "", None)
}

fn code_page(
    pages: &Pages,
    visit: &Visit,
    flow: &str,
    handoff: &str,
    error: Option<&Refusal>,
) -> Response {
    let token = visit.csrf_token(pages);
    let body = html! {
        @if let Some(e) = error { (html::refusal(e)) }
        p { "Enter the code your authenticator app shows, or one of your recovery codes." }
        form method="post" action="/sign-in/code" {
            (html::csrf(&token))
            (html::hidden("flow", flow))
            (html::hidden("handoff", handoff))
            (field("Code", "code", "text", "one-time-code", ""))
            button type="submit" { "Continue" }
        }
        @if !handoff.is_empty() {
            (super::passkeys::start(&token, handoff, flow, "Use a passkey instead"))
        }
        p { a href="/sign-in" { "Start again" } }
    };
    visit.render(pages, web::status(error), "Second factor", false, body)
}

fn text(s: String) -> harmony::next_step_request::FormFields {
    next::FormFields {
        field: Some(Field::String(s)),
    }
}

/// The step an answer led to, and the handoff id its `fallback_url` names (a passkey can
/// answer it), if any.
async fn step(
    pages: &Pages,
    visit: &Visit,
    flow: &str,
    answer: next::Step,
) -> Result<(Option<Step>, String), Refusal> {
    let res: harmony::NextStepResponse = visit
        .call_as(
            pages,
            NEXT,
            &harmony::NextStepRequest {
                auth_id: flow.to_owned(),
                step: Some(answer),
            },
            None,
        )
        .await?;
    let step = res.step.unwrap_or_default();
    let handoff = step
        .fallback_url
        .split_once("handoff=")
        .map(|(_, h)| h.to_owned())
        .unwrap_or_default();
    Ok((step.step, handoff))
}

/// Where a sign-in step led: a session (the cookie is set), the second factor (a code, or
/// a passkey), or a refusal.
fn after_step(pages: &Pages, visit: &Visit, flow: &str, got: (Option<Step>, String)) -> Response {
    let (got, handoff) = got;
    match got {
        Some(Step::Session(s)) => visit.signed_in(pages, &s.session_token),
        Some(Step::Form(f)) if f.title == "second-factor" => {
            code_page(pages, visit, flow, &handoff, None)
        }
        Some(Step::Waiting(w)) if w.title == "second-factor" && !handoff.is_empty() => {
            let token = visit.csrf_token(pages);
            let body = html! {
                p { "This account signs in with a passkey after the password." }
                (super::passkeys::start(&token, &handoff, flow, "Use your passkey"))
                p { a href="/sign-in" { "Start again" } }
            };
            visit.render(pages, StatusCode::OK, "Second factor", false, body)
        }
        _ => sign_in_page(
            pages,
            visit,
            "",
            Some(&Refusal::transport(
                tonic::Code::FailedPrecondition,
                "UNEXPECTED_STEP",
                "this account needs a way of signing in the page does not offer yet",
            )),
        ),
    }
}

/// `POST /sign-in`: e-mail and password.
pub async fn submit(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted(&pages, req).await?;
    let email = form.get("email");
    let walked = async {
        let begun: harmony::BeginAuthResponse = visit
            .call_as(&pages, BEGIN, &harmony::BeginAuthRequest::default(), None)
            .await?;
        let flow = begun.auth_id;
        let login = next::Step::Choice(next::Choice {
            choice: "login".into(),
        });
        step(&pages, &visit, &flow, login).await?;
        let fields = vec![
            text(email.clone()),
            next::FormFields {
                field: Some(Field::Bytes(form.get("password").into_bytes())),
            },
        ];
        let got = step(
            &pages,
            &visit,
            &flow,
            next::Step::Form(next::Form { fields }),
        )
        .await?;
        Ok::<_, Refusal>((flow, got))
    };
    Ok(match walked.await {
        Ok((flow, got)) => after_step(&pages, &visit, &flow, got),
        Err(e) => sign_in_page(&pages, &visit, &email, Some(&e)),
    })
}

/// `POST /sign-in/code`: the second factor of the flow the password step left.
pub async fn code(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted(&pages, req).await?;
    let flow = form.get("flow");
    let fields = vec![text(form.get("code").trim().to_owned())];
    let answered = step(
        &pages,
        &visit,
        &flow,
        next::Step::Form(next::Form { fields }),
    )
    .await;
    Ok(match answered {
        Ok(got) => after_step(&pages, &visit, &flow, got),
        // A flow that is gone (expired, or used up) cannot take another code.
        Err(e) if e.code == tonic::Code::NotFound => sign_in_page(&pages, &visit, "", Some(&e)),
        Err(e) => code_page(&pages, &visit, &flow, &form.get("handoff"), Some(&e)),
    })
}

fn register_page(pages: &Pages, visit: &Visit, form: &Form, error: Option<&Refusal>) -> Response {
    let body: Markup = match pages.registration {
        Registration::Closed => html! {
            p.notice role="status" {
                "This server does not take new accounts. Ask its operator for one."
            }
            p { a href="/sign-in" { "Sign in" } }
        },
        mode => html! {
            @if let Some(e) = error { (html::refusal(e)) }
            form method="post" action="/register" {
                (html::csrf(&visit.csrf_token(pages)))
                (field("Name", "name", "text", "name", &form.get("name")))
                (field("E-mail address", "email", "email", "email", &form.get("email")))
                (field("Password", "password", "password", "new-password", ""))
                p.hint { "At least 8 characters; a long phrase is best." }
                @if mode == Registration::Invite {
                    (field("Invite code", "invite", "text", "off", &form.get("invite")))
                    p.hint { "This server takes new accounts by invite only." }
                }
                button type="submit" { "Create account" }
            }
            p { "Have an account? " a href="/sign-in" { "Sign in" } }
        },
    };
    let status = match (pages.registration, error) {
        (_, Some(e)) => web::status_of(e),
        (Registration::Closed, None) => StatusCode::FORBIDDEN,
        _ => StatusCode::OK,
    };
    visit.render(pages, status, "Create an account", false, body)
}

/// `GET /register`.
pub async fn register_form(State(pages): State<Arc<Pages>>, req: Request) -> Response {
    register_page(&pages, &visit(&req), &Form::default(), None)
}

/// `POST /register`: tangle `SignUp`; the new session is this browser's.
pub async fn register(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted(&pages, req).await?;
    let invite = Some(form.get("invite")).filter(|c| !c.trim().is_empty());
    let up = tangle::SignUp {
        email: Some(form.get("email")),
        password: Some(form.get("password")),
        name: form.get("name"),
        invite_code: invite,
    };
    let made: Result<tangle::Authorization, _> = visit
        .call_as(&pages, "/tangle.client.auth.Auth/SignUp", &up, None)
        .await;
    Ok(match made {
        Ok(a) => visit.signed_in(&pages, &a.token),
        Err(e) => register_page(&pages, &visit, &form, Some(&e)),
    })
}
