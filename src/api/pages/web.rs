//! What every page handler needs from HTTP: the visit (the caller's facts, its session
//! cookie, its CSRF cookie), the posted form, the CSRF check, cookies, a call of a method
//! through the table with the visit's session, and the answers every page shares (a page,
//! signed in, on to sign in, a refusal).
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use maud::{html, Markup};
use tonic::Code;

use super::super::context::PeerAddr;
use super::super::context::Transport;
use super::super::dispatch::{Caller, Refusal};
use super::Pages;

/// A cookie's two names: plain, and with `__Host-` (Secure, host-only, path `/`) when the
/// node is reached securely.
struct CookieName {
    plain: &'static str,
    secure: &'static str,
}

impl CookieName {
    fn for_pages(&self, pages: &Pages) -> &'static str {
        if pages.secure {
            self.secure
        } else {
            self.plain
        }
    }

    /// Its value in `headers`, under either name.
    fn read(&self, headers: &HeaderMap) -> Option<String> {
        cookies(headers)
            .find(|(k, v)| {
                (*k == self.plain || *k == self.secure) && !v.is_empty() && v.len() <= 512
            })
            .map(|(_, v)| v.to_owned())
    }
}

/// The session cookie: the session token.
const SESSION: CookieName = CookieName {
    plain: "hearth_session",
    secure: "__Host-hearth_session",
};
/// The CSRF cookie: a random value the forms' tokens are a MAC of.
const CSRF: CookieName = CookieName {
    plain: "hearth_csrf",
    secure: "__Host-hearth_csrf",
};
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
        let csrf = CSRF.read(headers);
        let fresh_csrf = csrf
            .is_none()
            .then(|| hex::encode(rand::random::<[u8; 16]>()));
        Visit {
            caller: Caller {
                headers: kept,
                peer,
            },
            token: SESSION.read(headers),
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
            add_cookie(&mut res, pages, CSRF.for_pages(pages), value, None);
        }
        res
    }

    /// A whole page as this visit's answer.
    pub fn render(
        &self,
        pages: &Pages,
        status: StatusCode,
        title: &str,
        signed_in: bool,
        body: Markup,
    ) -> Response {
        let page = super::html::page(title, signed_in, body);
        self.finish(pages, super::html::respond(status, page))
    }

    /// Signed in with the session `token`: its cookie set, on to the account.
    pub fn signed_in(&self, pages: &Pages, token: &str) -> Response {
        let mut res = see_other("/account");
        add_cookie(&mut res, pages, SESSION.for_pages(pages), token, None);
        self.finish(pages, res)
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

/// Clears the session cookie.
pub fn clear_session(res: &mut Response, pages: &Pages) {
    add_cookie(res, pages, SESSION.for_pages(pages), "", Some(0));
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

/// The HTTP status of a page showing `error`, if any.
pub fn status(error: Option<&Refusal>) -> StatusCode {
    error.map_or(StatusCode::OK, status_of)
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
    let body = html! {
        p.error role="alert" { "Nothing was changed. Go back, reload the page and try again." }
        p { a href="/" { "Start again" } }
    };
    visit.render(
        pages,
        StatusCode::FORBIDDEN,
        "This form has expired",
        false,
        body,
    )
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

/// The visit of a page that needs a session; without a cookie, the way to sign in.
// The Err is the answer itself, handed straight back by `?` as `posted`'s is.
#[allow(clippy::result_large_err)]
pub fn with_session(pages: &Pages, req: &Request<Body>) -> Result<Visit, Response> {
    let visit = visit(req);
    match visit.token {
        Some(_) => Ok(visit),
        None => Err(visit.finish(pages, see_other("/sign-in"))),
    }
}

/// [`posted`], for an action that needs a session.
pub async fn posted_with_session(
    pages: &Pages,
    req: Request<Body>,
) -> Result<(Visit, Form), Response> {
    let (visit, form) = posted(pages, req).await?;
    if visit.token.is_none() {
        return Err(visit.finish(pages, see_other("/sign-in")));
    }
    Ok((visit, form))
}

/// A refusal of an account action: the session is gone (the cookie is cleared and the
/// browser sent to sign in), or the refusal is shown.
pub fn failed(pages: &Pages, visit: &Visit, e: &Refusal) -> Response {
    if e.code == Code::Unauthenticated {
        let mut res = see_other("/sign-in");
        clear_session(&mut res, pages);
        return visit.finish(pages, res);
    }
    let body =
        html! { (super::html::refusal(e)) p { a href="/account" { "Back to your account" } } };
    visit.render(pages, status_of(e), "That did not work", true, body)
}
