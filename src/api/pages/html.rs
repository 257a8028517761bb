//! The pages' markup: one layout, labelled fields, notices, and the style sheet (embedded,
//! served at `/pages.css`, the only asset). maud escapes every value it prints.
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use maud::{html, Markup, DOCTYPE};

use super::super::dispatch::Refusal;

/// The style sheet: readable at phone and desktop widths, visible focus for keyboards.
pub const CSS: &str = r#"
:root { color-scheme: light dark; --accent: #b4461e; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; }
header { padding: .75rem 1rem; border-bottom: 1px solid #8884; display: flex; gap: 1rem; align-items: center; }
header a { font-weight: 600; text-decoration: none; color: inherit; }
main { max-width: 34rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; }
label { display: block; margin: .75rem 0 .25rem; font-weight: 500; }
input[type=text], input[type=email], input[type=password] { width: 100%; padding: .6rem; font: inherit; border: 1px solid #8888; border-radius: .3rem; }
button { margin-top: 1rem; padding: .6rem 1.2rem; font: inherit; border: 0; border-radius: .3rem; background: var(--accent); color: #fff; cursor: pointer; }
button.quiet { background: transparent; color: inherit; border: 1px solid #8888; margin-top: .25rem; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.notice { padding: .75rem; border-radius: .3rem; background: #8882; }
.error { padding: .75rem; border-radius: .3rem; background: #d002; border-left: 4px solid #d00; }
.hint { color: #888; font-size: .9rem; }
table { width: 100%; border-collapse: collapse; }
td, th { text-align: left; padding: .4rem .25rem; border-bottom: 1px solid #8883; vertical-align: top; }
form.inline { display: inline; }
label.inline { display: inline; font-weight: 400; }
fieldset { border: 1px solid #8884; border-radius: .3rem; margin-top: 1rem; }
select { padding: .5rem; font: inherit; }
code { word-break: break-all; }
img { display: block; margin: 1rem 0; background: #fff; }
"#;

/// The style sheet's response (cached: it changes only with the binary).
pub fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// A whole page: `title`, and `body` below it.
pub fn page(title: &str, signed_in: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Hearth" }
                link rel="stylesheet" href="/pages.css";
            }
            body {
                header {
                    a href="/" { "Hearth" }
                    @if signed_in { a href="/account" { "Account" } }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// `markup` as an HTML response with `status`.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut res = (status, markup.into_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

/// A labelled input. `kind` is the HTML type; `autocomplete` tells password managers what
/// the field is.
pub fn field(label: &str, name: &str, kind: &str, autocomplete: &str, value: &str) -> Markup {
    let id = format!("f-{name}");
    html! {
        label for=(id) { (label) }
        input id=(id) name=(name) type=(kind) autocomplete=(autocomplete) value=(value) required;
    }
}

/// Milliseconds since the epoch as a UTC date (lists: tokens, passkeys).
pub fn day(ms: u64) -> String {
    let full = crate::clock::rfc3339(ms);
    full.get(..10).unwrap_or(&full).to_owned()
}

/// The hidden CSRF field every form carries.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A hidden field.
pub fn hidden(name: &str, value: &str) -> Markup {
    html! { input type="hidden" name=(name) value=(value); }
}

/// A refusal as a person reads it: the message, and the reason code for a support request.
pub fn refusal(r: &Refusal) -> Markup {
    html! {
        p.error role="alert" {
            (r.message)
            @if let Some(reason) = &r.reason { " " span.hint { "(" (reason) ")" } }
        }
    }
}

/// A notice (something went well, or what happens next).
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// A form that posts to `action` with one button (and the CSRF field).
pub fn button(action: &str, csrf_token: &str, label: &str, fields: Markup) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(csrf_token)) (fields)
            button.quiet type="submit" { (label) }
        }
    }
}
