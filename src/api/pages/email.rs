//! What a mail's reader lands on: the verification link's page (GET and HEAD only show a
//! button, so a mail scanner that fetches links verifies nothing; the button's POST uses the
//! code), asking for a new link, and the password reset (ask by address, then code and
//! new password). Unknown addresses get the same answers as known ones.
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::response::Response;
use http::StatusCode;
use maud::html;

use super::html::{self, field};
use super::web::{self, visit, Visit};
use super::Pages;
use crate::api::dispatch::Refusal;
use crate::pb::tangle::client::auth as tangle;

const VERIFY: &str = "/tangle.client.auth.Auth/VerifyEmail";
const RESEND: &str = "/tangle.client.auth.Auth/ResendEmailVerification";
const RESET: &str = "/tangle.client.auth.Auth/ResetPassword";

/// `GET /email/verify?email=…&code=…`: a page with one button; nothing is verified yet.
pub async fn landing(
    State(pages): State<Arc<Pages>>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let visit = visit(&req);
    let (email, code) = (
        q.get("email").cloned().unwrap_or_default(),
        q.get("code").cloned().unwrap_or_default(),
    );
    if email.is_empty() || code.is_empty() {
        let body = html! {
            p.error role="alert" { "This link is missing its address or its code. Open the link from the mail again, or ask for a new one." }
            (resend_form(&pages, &visit, &email))
        };
        return visit.render(
            &pages,
            StatusCode::BAD_REQUEST,
            "Verify your address",
            false,
            body,
        );
    }
    let body = html! {
        p { "Confirm that " strong { (email) } " is your address." }
        form method="post" action="/email/verify" {
            (html::csrf(&visit.csrf_token(&pages)))
            (html::hidden("email", &email))
            (html::hidden("code", &code))
            button type="submit" { "Verify my address" }
        }
    };
    visit.render(&pages, StatusCode::OK, "Verify your address", false, body)
}

fn resend_form(pages: &Pages, visit: &Visit, email: &str) -> maud::Markup {
    html! {
        h2 { "Send a new link" }
        form method="post" action="/email/resend" {
            (html::csrf(&visit.csrf_token(pages)))
            (field("E-mail address", "email", "email", "email", email))
            button type="submit" { "Send a new link" }
        }
    }
}

/// `POST /email/verify`: uses the link's code.
pub async fn verify(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted(&pages, req).await?;
    let email = form.get("email");
    let ask = tangle::VerifyEmail {
        email: email.clone(),
        code: form.get("code"),
    };
    Ok(
        match visit.call_as::<_, ()>(&pages, VERIFY, &ask, None).await {
            Ok(()) => {
                let body = html! {
                    (html::notice(&format!("{email} is verified.")))
                    p { a href="/" { "Continue" } }
                };
                visit.render(&pages, StatusCode::OK, "Address verified", false, body)
            }
            Err(e) => {
                let body = html! {
                    (html::refusal(&e))
                    p { "If your address is already verified, there is nothing more to do: " a href="/sign-in" { "sign in" } "." }
                    (resend_form(&pages, &visit, &email))
                };
                visit.render(
                    &pages,
                    web::status_of(&e),
                    "This link did not work",
                    false,
                    body,
                )
            }
        },
    )
}

/// `POST /email/resend`: a new link, if the address has an account awaiting one (the
/// answer does not say whether it has).
pub async fn resend(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted(&pages, req).await?;
    let ask = tangle::ResendEmailVerification {
        email: Some(form.get("email")),
    };
    Ok(
        match visit.call_as::<_, ()>(&pages, RESEND, &ask, None).await {
            Ok(()) => {
                let body = html! {
                    (html::notice("If this address has an account that is not verified yet, a new link is on its way. It works once."))
                };
                visit.render(&pages, StatusCode::OK, "Check your mail", false, body)
            }
            Err(e) => {
                let body =
                    html! { (html::refusal(&e)) (resend_form(&pages, &visit, &form.get("email"))) };
                visit.render(&pages, web::status_of(&e), "Send a new link", false, body)
            }
        },
    )
}

fn ask_page(pages: &Pages, visit: &Visit, error: Option<&Refusal>) -> Response {
    let body = html! {
        @if let Some(e) = error { (html::refusal(e)) }
        p { "We will mail a code to the address of your account." }
        form method="post" action="/reset" {
            (html::csrf(&visit.csrf_token(pages)))
            (field("E-mail address", "email", "email", "username", ""))
            button type="submit" { "Send a code" }
        }
    };
    visit.render(
        pages,
        web::status(error),
        "Reset your password",
        false,
        body,
    )
}

fn confirm_page(pages: &Pages, visit: &Visit, email: &str, error: Option<&Refusal>) -> Response {
    let body = html! {
        @if let Some(e) = error { (html::refusal(e)) }
        @else { (html::notice("If an account has this address, we mailed it a code. It works for a limited time.")) }
        form method="post" action="/reset/confirm" {
            (html::csrf(&visit.csrf_token(pages)))
            (field("E-mail address", "email", "email", "username", email))
            (field("Code from the mail", "code", "text", "one-time-code", ""))
            (field("New password", "password", "password", "new-password", ""))
            button type="submit" { "Set the new password" }
        }
    };
    visit.render(
        pages,
        web::status(error),
        "Choose a new password",
        false,
        body,
    )
}

/// `GET /reset`.
pub async fn reset_form(State(pages): State<Arc<Pages>>, req: Request) -> Response {
    ask_page(&pages, &visit(&req), None)
}

/// `POST /reset`: mails a code; the same answer whether or not an account has the address.
pub async fn reset(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted(&pages, req).await?;
    let email = form.get("email");
    let ask = tangle::ResetPassword {
        email: email.clone(),
        confirm: None,
    };
    Ok(
        match visit.call_as::<_, ()>(&pages, RESET, &ask, None).await {
            Ok(()) => confirm_page(&pages, &visit, &email, None),
            Err(e) => ask_page(&pages, &visit, Some(&e)),
        },
    )
}

/// `POST /reset/confirm`: the code and the new password.
pub async fn reset_confirm(
    State(pages): State<Arc<Pages>>,
    req: Request,
) -> Result<Response, Response> {
    let (visit, form) = web::posted(&pages, req).await?;
    let email = form.get("email");
    let ask = tangle::ResetPassword {
        email: email.clone(),
        confirm: Some(tangle::reset_password::ResetPasswordConfirm {
            code: form.get("code").trim().to_owned(),
            new_password: form.get("password"),
        }),
    };
    Ok(
        match visit.call_as::<_, ()>(&pages, RESET, &ask, None).await {
            Ok(()) => {
                let body = html! {
                    (html::notice("Your password is changed, and every session of your account has ended."))
                    p { a href="/sign-in" { "Sign in" } }
                };
                visit.render(&pages, StatusCode::OK, "Password changed", false, body)
            }
            Err(e) => confirm_page(&pages, &visit, &email, Some(&e)),
        },
    )
}
