//! CORS for browsers on other origins (`[http] cors_origins`; empty by default, `"*"`
//! allowed). Preflights are answered here, before the auth layer (they carry no
//! credential); answers to allowed origins expose `grpc-status`, `grpc-message` and
//! `x-request-id` so gRPC-Web clients can read them.
use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use http::{header, HeaderValue, Method, StatusCode};

/// Headers a browser may read from an answer.
pub const EXPOSED: &str = "grpc-status, grpc-message, grpc-status-details-bin, x-request-id";
/// Headers a browser may send.
pub const ALLOWED_HEADERS: &str =
    "authorization, content-type, x-grpc-web, x-user-agent, grpc-timeout, x-request-id, \
     x-client-id, x-device-type, x-device-version, x-app-name, x-app-version";

/// The allowed origins.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    any: bool,
    origins: Arc<Vec<String>>,
}

impl Cors {
    /// From `[http] cors_origins`: exact origins (`https://app.example.org`), or `"*"`.
    pub fn new(origins: &[String]) -> Self {
        Self {
            any: origins.iter().any(|o| o == "*"),
            origins: Arc::new(
                origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.any
            || self
                .origins
                .iter()
                .any(|o| *o == origin.to_ascii_lowercase())
    }
}

fn decorate(res: &mut Response, origin: &HeaderValue, any: bool) {
    let h = res.headers_mut();
    let allow = if any {
        HeaderValue::from_static("*")
    } else {
        origin.clone()
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    h.append(header::VARY, HeaderValue::from_static("origin"));
}

/// The middleware, around `next` (run by `pipeline.rs`).
pub async fn around<F: Future<Output = Response>>(
    cors: &Cors,
    req: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed = origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| cors.allows(o));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    match (origin, allowed, preflight) {
        (Some(origin), true, true) => {
            let mut res = Response::new(axum::body::Body::empty());
            *res.status_mut() = StatusCode::NO_CONTENT;
            decorate(&mut res, &origin, cors.any);
            let h = res.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, GET, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOWED_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            res
        }
        (Some(_), false, true) => {
            let mut res = Response::new(axum::body::Body::from(
                "this origin may not call this node (http.cors_origins)\n",
            ));
            *res.status_mut() = StatusCode::FORBIDDEN;
            res
        }
        (Some(origin), true, false) => {
            let mut res = next(req).await;
            decorate(&mut res, &origin, cors.any);
            res
        }
        _ => next(req).await,
    }
}
