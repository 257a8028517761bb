//! One layer that limits every public method that costs a hash, a signature, a database
//! write or a mail, per (client IP, class of method), before the method runs. Budgets come
//! from `[limits] *_calls_per_ip_per_minute`; the buckets live in the node state's bounded
//! budget map (shared by every node of a cluster).
use std::future::Future;
use std::net::IpAddr;

use axum::extract::Request;
use axum::response::Response;

use super::context::ClientIp;
use super::methods::{Cost, Method};
use crate::config::Limits;
use crate::domain::rate_limit::RateLimiter;
use crate::domain::DomainError;

/// The layer's state.
#[derive(Debug)]
pub struct RateLimits {
    limits: Limits,
    sign_ins_per_minute: u32,
    limiter: RateLimiter,
}

impl RateLimits {
    /// Budgets from `limits`, and `sign_ins_per_minute` for password sign-ins.
    pub fn new(limits: Limits, sign_ins_per_minute: u32, limiter: RateLimiter) -> Self {
        Self {
            limits,
            sign_ins_per_minute,
            limiter,
        }
    }

    fn budget(&self, class: Cost) -> u32 {
        match class {
            Cost::Hashing => self.limits.hashing_calls_per_ip_per_minute,
            Cost::Mail => self.limits.mail_calls_per_ip_per_minute,
            Cost::Peer => self.limits.peer_calls_per_ip_per_minute,
            Cost::Node => self.limits.node_calls_per_ip_per_minute,
            Cost::Flow => self.limits.flow_calls_per_ip_per_minute,
            Cost::Session => self.limits.session_calls_per_ip_per_minute,
        }
    }

    /// Takes one call of `class` from `ip`'s budget, and for a password sign-in one from
    /// its sign-in budget too, in one write; a refusal when one is spent.
    pub async fn take(&self, class: Cost, ip: IpAddr, sign_in: bool) -> Result<(), DomainError> {
        use crate::domain::rate_limit::SIGN_IN;
        let both = [
            (class.name(), self.budget(class)),
            (SIGN_IN, self.sign_ins_per_minute),
        ];
        let classes = if sign_in { &both[..] } else { &both[..1] };
        self.limiter.charge(ip, classes).await
    }
}

/// The middleware, around `next` (run by `pipeline.rs`).
pub async fn around<F: Future<Output = Response>>(
    state: &RateLimits,
    method: &Method,
    req: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let ip = req.extensions().get::<ClientIp>().and_then(|c| c.0);
    if let (Some(class), Some(ip)) = (method.cost, ip) {
        if let Err(e) = state.take(class, ip, method.sign_in).await {
            return crate::api::status::status(e).into_http::<axum::body::Body>();
        }
    }
    next(req).await
}
