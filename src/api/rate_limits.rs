//! One layer that limits every public method that costs a hash, a signature, a database
//! write or a mail, per (client IP, class of method), before the method runs. Budgets come
//! from `[limits] *_calls_per_ip_per_minute`; the buckets live in the node state's bounded
//! budget map (shared by every node of a cluster).
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use tonic::Status;

use super::context::http_client_ip;
use crate::config::Limits;
use crate::domain::rate_limit::RateLimiter;
use crate::domain::{DomainError, Reason};

/// What a method costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A password hash.
    Hashing,
    /// A mail.
    Mail,
    /// Signatures and key fetches between nodes, and calls to identity providers (GetJWT).
    Peer,
    /// Flow state and invite look-ups.
    Flow,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Hashing => "password",
            Class::Mail => "mail",
            Class::Peer => "federation",
            Class::Flow => "flow",
        }
    }
}

/// The costly public methods and their class.
pub const COSTLY: &[(&str, Class)] = &[
    ("/accounts.v1.PublicAccountsService/SignUp", Class::Hashing),
    ("/accounts.v1.PublicAccountsService/SignIn", Class::Hashing),
    (
        "/accounts.v1.PublicAccountsService/NewPassword",
        Class::Hashing,
    ),
    (
        "/accounts.v1.PublicAccountsService/ResetPassword",
        Class::Mail,
    ),
    ("/tangle.client.auth.Auth/SignUp", Class::Hashing),
    ("/tangle.client.auth.Auth/SignIn", Class::Hashing),
    ("/tangle.client.auth.Auth/ResetPassword", Class::Mail),
    (
        "/tangle.client.auth.Auth/ResendEmailVerification",
        Class::Mail,
    ),
    ("/tangle.client.auth.Auth/LookupInvite", Class::Flow),
    ("/tangle.client.auth.Auth/UseInvite", Class::Flow),
    ("/protocol.auth.v1.AuthService/LoginFederated", Class::Peer),
    ("/protocol.auth.v1.AuthService/BeginAuth", Class::Flow),
    ("/protocol.auth.v1.AuthService/NextStep", Class::Flow),
    ("/protocol.auth.v1.AuthService/StepBack", Class::Flow),
    ("/auth.v1alpha1.AuthAPI/GetJWT", Class::Peer),
    ("/auth.Auth/GetChallenge", Class::Peer),
    ("/auth.Auth/Authenticate", Class::Peer),
    ("/auth.Auth/TokenRefresh", Class::Peer),
];

/// The layer's state.
#[derive(Debug)]
pub struct RateLimits {
    limits: Limits,
    trusted: Arc<Vec<IpAddr>>,
    limiter: RateLimiter,
}

impl RateLimits {
    /// Budgets from `limits`; `trusted` are the proxies whose `X-Forwarded-For` counts.
    pub fn new(limits: Limits, trusted: Arc<Vec<IpAddr>>, limiter: RateLimiter) -> Self {
        Self {
            limits,
            trusted,
            limiter,
        }
    }

    fn budget(&self, class: Class) -> u32 {
        match class {
            Class::Hashing => self.limits.hashing_calls_per_ip_per_minute,
            Class::Mail => self.limits.mail_calls_per_ip_per_minute,
            Class::Peer => self.limits.peer_calls_per_ip_per_minute,
            Class::Flow => self.limits.flow_calls_per_ip_per_minute,
        }
    }
}

/// The middleware, around `next` (run by `pipeline.rs`).
pub async fn around<F: Future<Output = Response>>(
    state: &RateLimits,
    req: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let path = req.uri().path();
    let Some(class) = COSTLY.iter().find(|(p, _)| *p == path).map(|(_, c)| *c) else {
        return next(req).await;
    };
    if let Some(ip) = http_client_ip(&req, &state.trusted) {
        let key = format!("{} {ip}", class.name());
        if !state.limiter.take(&key, state.budget(class)).await {
            return Status::from(DomainError::exhausted(
                Reason::IpThrottled,
                format!(
                    "too many {} calls from {ip}; try again in a minute",
                    class.name()
                ),
            ))
            .into_http::<axum::body::Body>();
        }
    }
    next(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limited_method_is_served_and_public() {
        for (path, _) in COSTLY {
            let entry = super::super::auth::REQUIREMENTS
                .iter()
                .find(|(p, _)| p == path);
            assert!(entry.is_some(), "{path} is not served");
        }
    }
}
