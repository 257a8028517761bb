//! The second factor's page: start a setup (a QR code of the `otpauth://` URL, rendered here
//! as SVG, and the secret to type by hand), confirm it with a first code (the recovery codes
//! are shown once), make new recovery codes, turn it off. All through `SetupTotp`.
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine;
use http::StatusCode;
use maud::{html, Markup};

use super::html::{self, field};
use super::web::{self, failed, Visit};
use super::Pages;
use crate::api::dispatch::Refusal;
use crate::pb::tangle::client::auth as tangle;

const SETUP: &str = "/tangle.client.auth.Auth/SetupTotp";
const GET_ACCOUNT: &str = "/tangle.client.auth.Auth/GetAccount";

/// The QR code of `url` as an SVG data URL (the CSP allows `data:` images, no script).
fn qr(url: &str) -> Option<String> {
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// The `secret` parameter of an `otpauth://` URL, for typing by hand.
fn secret_of(url: &str) -> String {
    url.split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap_or_default()
        .to_owned()
}

fn code_form(token: &str, action: &str, label: &str) -> Markup {
    html! {
        form method="post" action="/account/second-factor" {
            (html::csrf(token))
            (html::hidden("action", action))
            (field("Code from your authenticator app (or a recovery code)", &format!("code-{action}"), "text", "one-time-code", ""))
            button type="submit" { (label) }
        }
    }
}

async fn overview(pages: &Pages, visit: &Visit, error: Option<&Refusal>) -> Response {
    let account: tangle::Account =
        match visit.call(pages, GET_ACCOUNT, &tangle::GetAccount {}).await {
            Ok(a) => a,
            Err(e) => return failed(pages, visit, &e),
        };
    let token = visit.csrf_token(pages);
    let body = html! {
        @if let Some(e) = error { (html::refusal(e)) }
        @if account.totp_enabled {
            p { "Your account asks for a code from your authenticator app after the password." }
            h2 { "New recovery codes" }
            p.hint { "The old recovery codes stop working." }
            (code_form(&token, "confirm", "Make new recovery codes"))
            h2 { "Turn it off" }
            (code_form(&token, "off", "Turn the second factor off"))
        } @else {
            p { "With a second factor, signing in also takes a code from an authenticator app on your phone, so a stolen password is not enough." }
            form method="post" action="/account/second-factor" {
                (html::csrf(&token))
                (html::hidden("action", "start"))
                button type="submit" { "Set up an authenticator app" }
            }
        }
        p { a href="/account" { "Back to your account" } }
    };
    visit.render(pages, web::status(error), "Second factor", true, body)
}

/// `GET /account/second-factor`.
pub async fn show(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let visit = web::with_session(&pages, &req)?;
    Ok(overview(&pages, &visit, None).await)
}

fn scan_page(pages: &Pages, visit: &Visit, url: &str, error: Option<&Refusal>) -> Response {
    let token = visit.csrf_token(pages);
    let body = html! {
        @if let Some(e) = error { (html::refusal(e)) }
        ol {
            li { "Scan this code with your authenticator app." }
            li { "Type the 6-digit code it shows below." }
        }
        @if let Some(src) = qr(url) {
            img src=(src) width="220" height="220" alt="QR code of your new authenticator secret";
        }
        p { "Cannot scan? Type this key: " code { (secret_of(url)) } }
        form method="post" action="/account/second-factor" {
            (html::csrf(&token))
            (html::hidden("action", "confirm"))
            (html::hidden("url", url))
            (field("Code from your authenticator app", "code-confirm", "text", "one-time-code", ""))
            button type="submit" { "Turn on" }
        }
    };
    visit.render(pages, web::status(error), "Second factor", true, body)
}

fn recovery_page(pages: &Pages, visit: &Visit, totp: &tangle::Totp) -> Response {
    let body = html! {
        (html::notice("The second factor is on."))
        h2 { "Recovery codes" }
        p { "Keep these somewhere safe: each signs you in once if your phone is lost. They are shown only now." }
        ul { @for c in &totp.backup_codes { li { code { (c.code) } } } }
        p { a href="/account" { "Done" } }
    };
    visit.render(pages, StatusCode::OK, "Second factor", true, body)
}

/// `POST /account/second-factor`: `action` is `start`, `confirm` (a first code, or new
/// recovery codes) or `off`.
pub async fn act(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted_with_session(&pages, req).await?;
    let action = form.get("action");
    let code = Some(form.get(&format!("code-{action}")).trim().to_owned());
    let ask = match action.as_str() {
        "start" => tangle::SetupTotp {
            enabled: true,
            code: None,
        },
        "confirm" => tangle::SetupTotp {
            enabled: true,
            code,
        },
        "off" => tangle::SetupTotp {
            enabled: false,
            code,
        },
        _ => return Ok(overview(&pages, &visit, None).await),
    };
    let answer: Result<tangle::Totp, _> = visit.call(&pages, SETUP, &ask).await;
    Ok(match (action.as_str(), answer) {
        ("start", Ok(t)) => scan_page(&pages, &visit, &t.url.unwrap_or_default(), None),
        ("confirm", Ok(t)) => recovery_page(&pages, &visit, &t),
        (_, Ok(_)) => overview(&pages, &visit, None).await,
        // A wrong first code: the same secret stays to be confirmed.
        ("confirm", Err(e))
            if !form.get("url").is_empty() && e.code != tonic::Code::Unauthenticated =>
        {
            scan_page(&pages, &visit, &form.get("url"), Some(&e))
        }
        // Not every UNAUTHENTICATED means the session is gone (turning the factor off
        // without a code is SECOND_FACTOR_REQUIRED): the overview reads the account first,
        // and only a gone session fails that read.
        (_, Err(e)) => overview(&pages, &visit, Some(&e)).await,
    })
}
