//! The pages people use in a browser: sign in (password, then the second factor), sign out,
//! register, the e-mail link's landing, password reset, and the account (sessions, password,
//! e-mail address, deletion, the second factor, personal access tokens).
//! A page is one more transport over the method table: each form runs its method through
//! `dispatch.rs` (the same pipeline, budgets, throttles and log line as gRPC) with the
//! session its cookie holds. Server-rendered (maud); the one script (the browser's WebAuthn
//! call for passkeys) and the one style sheet are embedded and served from the node, never
//! inline; every answer carries a strict Content-Security-Policy and refuses framing.
mod account;
mod email;
mod factor;
mod html;
mod passkeys;
mod sign_in;
mod tokens;
mod web;

use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::{header, HeaderValue};
use zeroize::Zeroizing;

use super::dispatch::Inner;
use crate::clock::SharedClock;
use crate::config::Registration;
use crate::domain::Services;

/// What the page handlers share.
pub struct Pages {
    /// The pipeline and routes, set once the router is built (the pages are part of it).
    inner: OnceLock<Inner>,
    /// The key CSRF tokens are MACs under: derived from the node key, so every node of a
    /// cluster accepts a form another served.
    csrf_key: Zeroizing<[u8; 32]>,
    /// Cookies are `Secure` (the node serves TLS, or its public URL is https behind a proxy).
    secure: bool,
    registration: Registration,
    /// The node's clock (token expiries are counted from its now).
    clock: SharedClock,
}

impl Pages {
    /// The pages of the node `services` runs.
    pub fn new(services: &Services) -> Arc<Pages> {
        let config = services.config();
        let https = config
            .mail
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        Arc::new(Pages {
            inner: OnceLock::new(),
            csrf_key: services.node_key().derive("page csrf"),
            secure: config.tls.is_some() || https,
            registration: config.accounts.registration,
            clock: services.clock().clone(),
        })
    }

    /// Hands the pages the pipeline their forms call.
    pub fn connect(&self, inner: Inner) {
        let _ = self.inner.set(inner);
    }
}

/// The pages' routes.
pub fn routes(pages: Arc<Pages>) -> Router {
    Router::new()
        .route("/", get(sign_in::home))
        .route("/pages.css", get(|| async { html::css() }))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-in/code", post(sign_in::code))
        .route("/passkeys.js", get(passkeys::script))
        .route(
            "/sign-in/passkey",
            get(passkeys::fallback).post(passkeys::begin),
        )
        .route("/sign-in/passkey/finish", post(passkeys::finish))
        .route("/account/passkeys", get(passkeys::show))
        .route("/account/passkeys/add", post(passkeys::add))
        .route("/account/passkeys/finish", post(passkeys::finish_add))
        .route("/account/passkeys/remove", post(passkeys::remove))
        .route("/sign-out", post(account::sign_out))
        .route(
            "/register",
            get(sign_in::register_form).post(sign_in::register),
        )
        .route("/email/verify", get(email::landing).post(email::verify))
        .route("/email/resend", post(email::resend))
        .route("/reset", get(email::reset_form).post(email::reset))
        .route("/reset/confirm", post(email::reset_confirm))
        .route("/account", get(account::show))
        .route("/account/sessions/end", post(account::end_session))
        .route("/account/sessions/end-others", post(account::end_others))
        .route("/account/password", post(account::change_password))
        .route("/account/email", post(account::change_email))
        .route("/account/delete", post(account::delete))
        .route(
            "/account/second-factor",
            get(factor::show).post(factor::act),
        )
        .route("/account/tokens", get(tokens::show))
        .route("/account/tokens/create", post(tokens::create))
        .route("/account/tokens/expire", post(tokens::expire))
        .layer(axum::middleware::from_fn(guard))
        .with_state(pages)
}

/// The headers of every page answer: script only from the node's own files, no framing, no sniffing, no referrer, no
/// caching of pages that may show a session's facts.
async fn guard(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
