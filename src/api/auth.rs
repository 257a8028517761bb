//! The auth layer: runs before every handler, turns `authorization` into a [`Principal`]
//! through the credential dispatcher, and checks it against the method's one requirement in
//! [`REQUIREMENTS`]. Deny by default: a path missing from the table never reaches a handler
//! (UNIMPLEMENTED for gRPC, 404 otherwise), and a test fails when a served method has no
//! entry.
use std::future::Future;

use axum::extract::Request;
use axum::response::Response;
use tonic::Status;

use crate::domain::{DomainError, Reason, Requirement, Services};

use Requirement::{AnyCredential, Public, Scope, SessionOnly, TokenOnly};

/// Every gRPC method the node serves, with its one requirement.
pub const REQUIREMENTS: &[(&str, Requirement)] = &[
    ("/auth.Auth/GetChallenge", Public),
    ("/auth.Auth/Authenticate", Public),
    ("/auth.Auth/TokenRefresh", Public),
    ("/auth.Auth/Signout", Public),
    ("/auth.v1alpha1.AuthAPI/GetJWT", Public),
    (
        "/protocol.auth.v1.AuthService/Federate",
        Scope("federation"),
    ),
    ("/protocol.auth.v1.AuthService/LoginFederated", Public),
    ("/protocol.auth.v1.AuthService/Key", Public),
    ("/protocol.auth.v1.AuthService/BeginAuth", Public),
    ("/protocol.auth.v1.AuthService/NextStep", Public),
    ("/protocol.auth.v1.AuthService/StepBack", Public),
    ("/protocol.auth.v1.AuthService/StreamSteps", Public),
    ("/protocol.auth.v1.AuthService/CheckLoggedIn", AnyCredential),
    ("/test.v1.TestAuthService/Pong", AnyCredential),
    ("/test.v1.TestNoAuthService/Ping", Public),
    ("/tangle.client.auth.Auth/SignIn", Public),
    ("/tangle.client.auth.Auth/SignUp", Public),
    ("/tangle.client.auth.Auth/Authorize", Public),
    (
        "/tangle.client.auth.Auth/GetSessions",
        Scope("sessions:read"),
    ),
    (
        "/tangle.client.auth.Auth/RevokeSessions",
        Scope("sessions:write"),
    ),
    ("/tangle.client.auth.Auth/ResetPassword", Public),
    ("/tangle.client.auth.Auth/VerifyEmail", Public),
    ("/tangle.client.auth.Auth/ResendEmailVerification", Public),
    ("/tangle.client.auth.Auth/LookupInvite", Public),
    ("/tangle.client.auth.Auth/UseInvite", Scope("account:write")),
    (
        "/tangle.client.auth.Auth/CreateInvite",
        Scope("account:write"),
    ),
    (
        "/tangle.client.auth.Auth/ListInvites",
        Scope("account:read"),
    ),
    (
        "/tangle.client.auth.Auth/RevokeInvite",
        Scope("account:write"),
    ),
    (
        "/tokens.v1.TokensService/CreateToken",
        Scope("tokens:write"),
    ),
    (
        "/tokens.v1.TokensService/UpdateToken",
        Scope("tokens:write"),
    ),
    (
        "/tokens.v1.TokensService/ForceTokenExpiration",
        Scope("tokens:write"),
    ),
    (
        "/tokens.v1.TokensService/RegenerateToken",
        Scope("tokens:write"),
    ),
    ("/tokens.v1.TokensService/GetToken", Scope("tokens:read")),
    ("/tokens.v1.TokensService/ListTokens", Scope("tokens:read")),
    (
        "/accounts.v1.AccountsService/IsEmailVerified",
        Scope("account:read"),
    ),
    ("/accounts.v1.AccountsService/RefreshSession", SessionOnly),
    ("/accounts.v1.AccountsService/TokenAuthorization", TokenOnly),
    ("/accounts.v1.PublicAccountsService/SignIn", Public),
    ("/accounts.v1.PublicAccountsService/SignUp", Public),
    ("/accounts.v1.PublicAccountsService/ResetPassword", Public),
    ("/accounts.v1.PublicAccountsService/NewPassword", Public),
    ("/grpc.health.v1.Health/Check", Public),
    ("/grpc.health.v1.Health/Watch", Public),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Public,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Public,
    ),
];

/// Plain HTTP routes (all public).
pub const HTTP_ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/email/verify",
    "/.well-known/hearth/server",
    "/.well-known/jwks.json",
];

/// The requirement of `path`: its table entry, or public for HTTP routes; `None` for a path
/// the node does not serve (it never reaches a handler).
pub fn requirement(path: &str) -> Option<Requirement> {
    // Looked up on every request: a map, built once, instead of a scan of the table.
    static TABLE: std::sync::OnceLock<std::collections::HashMap<&'static str, Requirement>> =
        std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        REQUIREMENTS
            .iter()
            .copied()
            .chain(HTTP_ROUTES.iter().map(|r| (*r, Public)))
            .collect()
    });
    table.get(path).copied()
}

/// The answer for a path the node does not serve: UNIMPLEMENTED for a gRPC call, 404 for
/// anything else (so a mistyped probe does not look healthy).
fn not_served(req: &Request) -> Response {
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
        "not found: this node serves gRPC, /healthz, /readyz, /metrics, /.well-known/hearth/server and /.well-known/jwks.json\n",
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

/// The client's IP, recorded as a personal access token's last use.
fn ip(req: &Request) -> Option<std::net::IpAddr> {
    let trusted = req.extensions().get::<super::context::TrustedProxies>();
    super::context::http_client_ip(req, trusted.map_or(&[][..], |t| &t.0[..]))
}

fn refuse(e: DomainError) -> Response {
    Status::from(e).into_http::<axum::body::Body>()
}

/// The middleware, around `next` (run by `pipeline.rs`).
pub async fn around<F: Future<Output = Response>>(
    services: &Services,
    mut req: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let Some(need) = requirement(req.uri().path()) else {
        return not_served(&req);
    };
    match (bearer(req.headers()), need) {
        (Some(token), _) => match services.credentials.resolve(token, ip(&req)).await {
            Ok(principal) => {
                tracing::Span::current().record("user", principal.user_id);
                if let Err(e) = principal.check(need) {
                    return refuse(e);
                }
                req.extensions_mut().insert(principal);
            }
            Err(e) if need != Public => return refuse(e),
            Err(_) => {}
        },
        (None, Public) => {}
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
    use prost::Message;

    #[test]
    fn every_served_method_has_exactly_one_requirement() {
        let set = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET)
            .unwrap_or_default();
        let mut served = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    served.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        assert!(served.len() > 30, "the descriptor set lists our services");
        for path in &served {
            let n = REQUIREMENTS.iter().filter(|(p, _)| p == path).count();
            assert_eq!(n, 1, "{path} has {n} requirements in the table, not one");
        }
        for (path, _) in REQUIREMENTS {
            assert!(
                served.contains(&path.to_string()) || path.starts_with("/grpc."),
                "{path} is in the table but not served"
            );
        }
    }

    #[test]
    fn every_scope_in_the_table_is_a_scope_tokens_can_hold() {
        use crate::domain::scopes::ScopeSet;
        for (path, need) in REQUIREMENTS {
            if let Scope(s) = need {
                assert!(
                    ScopeSet::ALL.has(s),
                    "{path} needs `{s}`, which is no scope"
                );
            }
        }
    }

    #[test]
    fn unknown_paths_are_not_served() {
        assert_eq!(requirement("/test.v1.TestNoAuthService/Ping"), Some(Public));
        assert_eq!(requirement("/test.v1.TestNoAuthService/PingX"), None);
        assert_eq!(requirement("/nothing/here"), None);
        assert_eq!(requirement("/healthz"), Some(Public));
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
