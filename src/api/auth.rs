//! The auth layer: runs before every handler, turns `authorization` into a [`Principal`]
//! through the credential dispatcher, and checks it against the method's one requirement in
//! the method table (`methods.rs`). Deny by default: a path missing from the table never
//! reaches a handler (UNIMPLEMENTED for gRPC, 404 otherwise).
use std::future::Future;

use axum::extract::Request;
use axum::response::Response;
use tonic::Status;

use super::context::ClientIp;
use super::methods::Method;
use crate::domain::credentials::Credentials;
use crate::domain::{DomainError, Reason, Requirement};

/// The answer for a path the node does not serve: UNIMPLEMENTED for a gRPC call, 404 for
/// anything else (so a mistyped probe does not look healthy).
pub(crate) fn not_served(req: &Request) -> Response {
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if grpc {
        return Status::unimplemented(format!(
            "{} is not a method this node serves",
            crate::domain::validate::printable(req.uri().path(), 200)
        ))
        .into_http::<axum::body::Body>();
    }
    let mut res = Response::new(axum::body::Body::from(
        "not found: this node serves gRPC, gRPC-Web, hRPC, the Osmium socket at /, /healthz, /readyz, /metrics, /.well-known/hearth/server, /.well-known/jwks.json and /_harmony/server\n",
    ));
    *res.status_mut() = http::StatusCode::NOT_FOUND;
    res
}

/// The token from `authorization`: `Bearer <token>` or the bare token.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value.trim(),
    };
    // A scheme with no token (the header value may have lost its trailing space) is none.
    (!token.is_empty() && !token.eq_ignore_ascii_case("bearer")).then_some(token)
}

fn refuse(e: DomainError) -> Response {
    crate::api::status::status(e).into_http::<axum::body::Body>()
}

/// The middleware, around `next` (run by `pipeline.rs`).
pub async fn around<F: Future<Output = Response>>(
    credentials: &Credentials,
    method: &Method,
    mut req: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let need = method.need;
    match (bearer(req.headers()), need) {
        (Some(token), _) => {
            let ip = req.extensions().get::<ClientIp>().and_then(|c| c.0);
            match credentials.resolve(token, ip).await {
            Ok(principal) => {
                tracing::Span::current().record("user", principal.user_id);
                if let Err(e) = principal.check(need) {
                    return refuse(e);
                }
                req.extensions_mut().insert(principal);
            }
            Err(e) if need != Requirement::Public => return refuse(e),
            Err(_) => {}
            }
        }
        (None, Requirement::Public) => {}
        (None, _) => {
            return refuse(DomainError::unauthenticated(
                Reason::CredentialMissing,
                "this call needs a credential: send `authorization: Bearer <session or personal access token>`",
            ))
        }
    }
    next(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_or_bare() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", http::HeaderValue::from_static("abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", http::HeaderValue::from_static("bearer "));
        assert_eq!(bearer(&h), None);
    }
}
