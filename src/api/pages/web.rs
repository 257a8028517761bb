//! What every page handler needs from HTTP: the visit (the caller's facts, its session
//! cookie, its CSRF cookie), the posted form, the CSRF check, cookies, and a call of a
//! method through the table with the visit's session.
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use maud::html;
use tonic::Code;

use super::super::context::PeerAddr;
use super::super::dispatch::{Caller, Refusal, Transport};
use super::Pages;

/// The session cookie's name; `__Host-` (Secure, host-only, path `/`) when served securely.
const SESSION: &str = "hearth_session";
const SESSION_SECURE: &str = "__Host-hearth_session";
/// The CSRF cookie: a random value the forms' tokens are a MAC of.
const CSRF: &str = "hearth_csrf";
const CSRF_SECURE: &str = "__Host-hearth_csrf";
/// Largest form a page accepts (every form is a few short fields).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// One request to a page: who asks, with which cookies.
pub struct Visit {
    caller: Caller,
    /// The session token the cookie holds.
    pub token: Option<String>,
    csrf: Option<String>,
    /// A CSRF cookie made for this visit (none came): set it on the answer.
    fresh_csrf: Option<String>,
}

/// A posted form's fields.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The field `name`, empty when absent.
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Every value of the field `name` (checkboxes).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
}

fn cookie(headers: &HeaderMap, names: [&str; 2]) -> Option<String> {
    cookies(headers)
        .find(|(k, v)| names.contains(k) && !v.is_empty() && v.len() <= 512)
        .map(|(_, v)| v.to_owned())
}

impl Visit {
    /// The visit of a request's head. The request's own `authorization` is not used: a page
    /// acts only with the session its cookie holds.
    pub fn of(headers: &HeaderMap, peer: Option<PeerAddr>) -> Visit {
        let mut kept = headers.clone();
        for name in [
            header::COOKIE,
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
        ] {
            kept.remove(name);
        }
        let csrf = cookie(headers, [CSRF, CSRF_SECURE]);
        let fresh_csrf = csrf
            .is_none()
            .then(|| hex::encode(rand::random::<[u8; 16]>()));
        Visit {
            caller: Caller {
                headers: kept,
                peer,
            },
            token: cookie(headers, [SESSION, SESSION_SECURE]),
            csrf: csrf.or_else(|| fresh_csrf.clone()),
            fresh_csrf,
        }
    }

    /// The visit and posted form of `req` (a form over [`MAX_FORM_BYTES`] is refused).
    pub async fn posted(req: Request<Body>) -> Result<(Visit, Form), Response> {
        let (parts, body) = req.into_parts();
        let visit = Visit::of(&parts.headers, parts.extensions.get::<PeerAddr>().copied());
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the form is larger than a page sends\n",
                )
                    .into_response()
            })?;
        let form = form_urlencoded::parse(&bytes).into_owned().collect();
        Ok((visit, Form(form)))
    }

    /// The token a form of this visit carries.
    pub fn csrf_token(&self, pages: &Pages) -> String {
        self.csrf
            .as_deref()
            .map(|c| token_of(pages, c))
            .unwrap_or_default()
    }

    /// Whether `form` carries this visit's CSRF token. A visit without the cookie (the
    /// form was not loaded from this node, or cookies are off) never passes.
    pub fn csrf_ok(&self, pages: &Pages, form: &Form) -> bool {
        let (Some(cookie), None) = (&self.csrf, &self.fresh_csrf) else {
            return false;
        };
        let (Some(mac), Ok(given)) = (mac_of(pages, cookie), hex::decode(form.get("csrf"))) else {
            return false;
        };
        mac.verify_slice(&given).is_ok()
    }

    /// Calls the unary method `path` with `message`, with this visit's session if it has
    /// one: the pipeline charges, throttles and logs it as it does over any transport.
    pub async fn call<Q: prost::Message, A: prost::Message + Default>(
        &self,
        pages: &Pages,
        path: &str,
        message: &Q,
    ) -> Result<A, Refusal> {
        self.call_as(pages, path, message, self.token.as_deref())
            .await
    }

    /// [`Visit::call`] with `token` instead of the cookie's.
    pub async fn call_as<Q: prost::Message, A: prost::Message + Default>(
        &self,
        pages: &Pages,
        path: &str,
        message: &Q,
        token: Option<&str>,
    ) -> Result<A, Refusal> {
        let (_, bytes) = inner(pages)?
            .unary(
                path,
                &self.caller_with(token),
                &message.encode_to_vec(),
                Transport::Page,
            )
            .await?;
        A::decode(bytes).map_err(|_| unreadable())
    }

    /// Calls the server-streaming method `path` with the cookie's session: its answers, at
    /// most [`MAX_STREAMED`].
    pub async fn call_stream<Q: prost::Message, A: prost::Message + Default>(
        &self,
        pages: &Pages,
        path: &str,
        message: &Q,
    ) -> Result<Vec<A>, Refusal> {
        let caller = self.caller_with(self.token.as_deref());
        let (_, mut messages) = inner(pages)?
            .call(path, &caller, &message.encode_to_vec(), Transport::Page)
            .await?;
        let mut out = Vec::new();
        while let Some(next) = messages.next().await {
            out.push(A::decode(next?).map_err(|_| unreadable())?);
            if out.len() >= MAX_STREAMED {
                break;
            }
        }
        Ok(out)
    }

    fn caller_with(&self, token: Option<&str>) -> Caller {
        let mut caller = self.caller.clone();
        if let Some(t) = token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
            caller.headers.insert(header::AUTHORIZATION, t);
        }
        caller
    }

    /// `res` with the cookies this visit must set.
    pub fn finish(&self, pages: &Pages, mut res: Response) -> Response {
        if let Some(value) = &self.fresh_csrf {
            let name = if pages.secure { CSRF_SECURE } else { CSRF };
            add_cookie(&mut res, pages, name, value, None);
        }
        res
    }
}

/// Answers a page lists at most (a stream's first ones).
const MAX_STREAMED: usize = 500;

fn inner(pages: &Pages) -> Result<&super::super::dispatch::Inner, Refusal> {
    pages
        .inner
        .get()
        .ok_or_else(|| Refusal::transport(Code::Unavailable, "STARTING", "the node is starting"))
}

fn unreadable() -> Refusal {
    Refusal::transport(Code::Internal, "INTERNAL", "the answer could not be read")
}

/// The form token of a CSRF cookie: a MAC under the node's page key, so a value a page
/// did not make for that cookie never passes.
fn token_of(pages: &Pages, cookie: &str) -> String {
    mac_of(pages, cookie)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

fn mac_of(pages: &Pages, cookie: &str) -> Option<Hmac<sha2::Sha256>> {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(pages.csrf_key.as_slice()).ok()?;
    mac.update(b"hearth page csrf\0");
    mac.update(cookie.as_bytes());
    Some(mac)
}

fn add_cookie(res: &mut Response, pages: &Pages, name: &str, value: &str, max_age: Option<u32>) {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if pages.secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Sets the session cookie to `token`.
pub fn set_session(res: &mut Response, pages: &Pages, token: &str) {
    let name = if pages.secure {
        SESSION_SECURE
    } else {
        SESSION
    };
    add_cookie(res, pages, name, token, None);
}

/// Clears the session cookie.
pub fn clear_session(res: &mut Response, pages: &Pages) {
    let name = if pages.secure {
        SESSION_SECURE
    } else {
        SESSION
    };
    add_cookie(res, pages, name, "", Some(0));
}

/// A 303 to `to`: what a form answers once it did its work, so reloading does not post
/// it again.
pub fn see_other(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// The HTTP status a refusal shows as.
pub fn status_of(r: &Refusal) -> StatusCode {
    match r.code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The visit of a request that posts nothing.
pub fn visit(req: &Request<Body>) -> Visit {
    Visit::of(req.headers(), req.extensions().get::<PeerAddr>().copied())
}

/// The answer to a form whose CSRF token is missing or wrong: nothing was done.
fn expired(pages: &Pages, visit: &Visit) -> Response {
    let body = super::html::page(
        "This form has expired",
        false,
        html! {
            p.error role="alert" { "Nothing was changed. Go back, reload the page and try again." }
            p { a href="/" { "Start again" } }
        },
    );
    visit.finish(pages, super::html::respond(StatusCode::FORBIDDEN, body))
}

/// The visit and form of a POST whose CSRF token is right; otherwise the answer to give
/// (nothing was done).
pub async fn posted(pages: &Pages, req: Request<Body>) -> Result<(Visit, Form), Response> {
    let (visit, form) = Visit::posted(req).await?;
    if !visit.csrf_ok(pages, &form) {
        return Err(expired(pages, &visit));
    }
    Ok((visit, form))
}
