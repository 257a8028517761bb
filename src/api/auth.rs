//! The auth layer: runs before every handler, turns `authorization` into a [`Principal`]
//! and refuses everything that is not on the public allowlist when no valid credential
//! came. Deny by default: a method missing from these lists needs a credential.
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tonic::Status;

use crate::domain::Domain;

/// gRPC methods callable without a credential.
pub const PUBLIC_METHODS: &[&str] = &[
    "/test.v1.TestNoAuthService/Ping",
    "/accounts.v1.PublicAccountsService/SignIn",
    "/accounts.v1.PublicAccountsService/SignUp",
    "/accounts.v1.PublicAccountsService/ResetPassword",
    "/accounts.v1.PublicAccountsService/NewPassword",
    "/tangle.client.auth.Auth/SignIn",
    "/tangle.client.auth.Auth/SignUp",
    "/tangle.client.auth.Auth/Authorize",
    "/tangle.client.auth.Auth/ResetPassword",
    "/tangle.client.auth.Auth/VerifyEmail",
    "/tangle.client.auth.Auth/ResendEmailVerification",
    "/tangle.client.auth.Auth/LookupInvite",
    "/auth.v1alpha1.AuthAPI/GetJWT",
    "/protocol.auth.v1.AuthService/Key",
    "/protocol.auth.v1.AuthService/LoginFederated",
    "/protocol.auth.v1.AuthService/BeginAuth",
    "/protocol.auth.v1.AuthService/NextStep",
    "/protocol.auth.v1.AuthService/StepBack",
    "/protocol.auth.v1.AuthService/StreamSteps",
];

/// Whole services that are public: peer tokens travel in the body (auth.Auth), and the
/// standard health and reflection services.
pub const PUBLIC_SERVICES: &[&str] = &[
    "/auth.Auth/",
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Plain HTTP routes (all public).
pub const HTTP_ROUTES: &[&str] = &[
    "/healthz",
    "/metrics",
    "/email/verify",
    "/.well-known/hearth/server",
];

/// True when `path` may be called without a credential.
pub fn is_public(path: &str) -> bool {
    PUBLIC_METHODS.contains(&path)
        || PUBLIC_SERVICES.iter().any(|s| path.starts_with(s))
        || HTTP_ROUTES.contains(&path)
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

fn refuse(status: Status) -> Response {
    status.into_http::<axum::body::Body>()
}

/// The middleware.
pub async fn layer(State(domain): State<Arc<Domain>>, mut req: Request, next: Next) -> Response {
    let public = is_public(req.uri().path());
    match bearer(req.headers()) {
        Some(token) => match domain.authenticate(token).await {
            Ok(principal) => {
                req.extensions_mut().insert(principal);
            }
            Err(e) if !public => return refuse(e.into()),
            Err(_) => {}
        },
        None if !public => {
            return refuse(Status::unauthenticated(
                "this call needs a credential: send `authorization: Bearer <session token>`",
            ))
        }
        None => {}
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_is_exact() {
        assert!(is_public("/test.v1.TestNoAuthService/Ping"));
        assert!(!is_public("/test.v1.TestAuthService/Pong"));
        assert!(!is_public("/test.v1.TestNoAuthService/PingX"));
        assert!(!is_public("/tangle.client.auth.Auth/GetSessions"));
        assert!(!is_public("/nothing/here"));
        assert!(is_public("/grpc.health.v1.Health/Check"));
    }

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
