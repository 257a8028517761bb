//! Personal access tokens on a page: the list (name, scopes, expiry, last use; never a
//! value), making one with scopes and an expiry (its value shown once), and ending one at
//! once. All through `tokens.v1`.
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use maud::{html, Markup};
use prost_types::Timestamp;

use super::html::{self, field};
use super::web::{self, failed, Visit};
use super::Pages;
use crate::api::dispatch::Refusal;
use crate::domain::scopes::SCOPES;
use crate::pb::tokens::v1 as tokens;

const LIST: &str = "/tokens.v1.TokensService/ListTokens";
const CREATE: &str = "/tokens.v1.TokensService/CreateToken";
const EXPIRE: &str = "/tokens.v1.TokensService/ForceTokenExpiration";
/// The expiries offered, in days.
const DAYS: &[u32] = &[7, 30, 90, 365];

fn date(t: Option<&Timestamp>) -> String {
    match t {
        Some(t) if t.seconds > 0 => html::day(t.seconds as u64 * 1000),
        _ => "—".into(),
    }
}

async fn list_page(
    pages: &Pages,
    visit: &Visit,
    made: Option<&tokens::CreateTokenResponse>,
    error: Option<&Refusal>,
) -> Response {
    let list: Vec<tokens::ListTokensResponse> = match visit.call_stream(pages, LIST, &()).await {
        Ok(l) => l,
        Err(e) => return failed(pages, visit, &e),
    };
    let token = visit.csrf_token(pages);
    let body = html! {
        @if let Some(e) = error { (html::refusal(e)) }
        @if let Some(m) = made {
            div.notice role="status" {
                p { "Your new token. Copy it now: it is shown only once." }
                p { code { (m.token_value.as_ref().map(|v| v.token.as_str()).unwrap_or_default()) } }
            }
        }
        p { "A personal access token lets a script or a tool act for you, with only the scopes you give it. Send it as " code { "authorization: Bearer …" } "." }
        @if list.is_empty() { p.hint { "You have no tokens." } }
        @else {
            table {
                thead { tr { th { "Name" } th { "Scopes" } th { "Expires" } th { "Last used" } th {} } }
                tbody {
                    @for t in &list {
                        @let uuid = t.token_uuid.as_ref().map(|u| u.uuid.clone()).unwrap_or_default();
                        tr {
                            td { (t.token_metadata.as_ref().map(|m| m.name.as_str()).unwrap_or_default()) }
                            td { (t.token_permissions.as_ref().map(|p| p.scopes.join(", ")).unwrap_or_default()) }
                            td { (date(t.token_metadata.as_ref().and_then(|m| m.expires_at.as_ref()))) }
                            td { (date(t.last_used_at.as_ref())) }
                            td { (html::button("/account/tokens/expire", &token, "End now", html::hidden("uuid", &uuid))) }
                        }
                    }
                }
            }
        }
        h2 { "Make a token" }
        (create_form(&token))
        p { a href="/account" { "Back to your account" } }
    };
    visit.render(pages, web::status(error), "Access tokens", true, body)
}

fn create_form(token: &str) -> Markup {
    html! {
        form method="post" action="/account/tokens/create" {
            (html::csrf(token))
            (field("Name", "name", "text", "off", ""))
            fieldset {
                legend { "Scopes" }
                @for (scope, what) in SCOPES {
                    @let id = format!("scope-{scope}");
                    div {
                        input id=(id) type="checkbox" name="scope" value=(scope);
                        " "
                        label.inline for=(id) { code { (scope) } " — " (what) }
                    }
                }
            }
            label for="f-days" { "Expires after" }
            select id="f-days" name="days" {
                @for d in DAYS { option value=(d) selected[*d == 30] { (d) " days" } }
            }
            button type="submit" { "Make token" }
        }
    }
}

/// `GET /account/tokens`.
pub async fn show(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let visit = web::with_session(&pages, &req)?;
    Ok(list_page(&pages, &visit, None, None).await)
}

/// `POST /account/tokens/create`: name, scopes, days.
pub async fn create(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted_with_session(&pages, req).await?;
    let days = form
        .get("days")
        .parse::<u32>()
        .ok()
        .filter(|d| DAYS.contains(d))
        .unwrap_or(30);
    let expires_ms = pages.clock.now_ms() + u64::from(days) * 86_400_000;
    let ask = tokens::CreateTokenRequest {
        token_metadata: Some(tokens::TokenMetadata {
            name: form.get("name"),
            expires_at: Some(crate::api::tokens_v1::timestamp(expires_ms)),
        }),
        token_permissions: Some(tokens::TokenPermissions {
            scopes: form.all("scope"),
        }),
    };
    let made: Result<tokens::CreateTokenResponse, _> = visit.call(&pages, CREATE, &ask).await;
    // A session that is gone shows as the list's own read failing: the way to sign in.
    Ok(match made {
        Ok(m) => list_page(&pages, &visit, Some(&m), None).await,
        Err(e) => list_page(&pages, &visit, None, Some(&e)).await,
    })
}

/// `POST /account/tokens/expire`: the token (and its sessions) stop working now.
pub async fn expire(State(pages): State<Arc<Pages>>, req: Request) -> Result<Response, Response> {
    let (visit, form) = web::posted_with_session(&pages, req).await?;
    let ask = tokens::ForceTokenExpirationRequest {
        token_uuid: Some(tokens::TokenUuid {
            uuid: form.get("uuid"),
        }),
    };
    let ended: Result<(), _> = visit.call(&pages, EXPIRE, &ask).await;
    Ok(list_page(&pages, &visit, None, ended.err().as_ref()).await)
}
