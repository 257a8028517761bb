//! The pipeline every request goes through (`endpoints.rs` runs it): request id and span
//! (`trace`), CORS, metrics, the in-flight cap and deadline, per-IP budgets for costly
//! methods, then the credential check (`auth`), in that order. The method's row of the
//! method table (`methods.rs`) and the client's address are found once here and handed to
//! every stage; every transport's requests arrive here as the same paths. One function of
//! nested stages rather than a layer per concern because a tower or axum layer clones and
//! boxes the stack below it on every request (`endpoints.rs` says what that cost). The
//! stages are our own rather than tower-http's (CorsLayer, TimeoutLayer, the request-id and
//! trace layers) because each reads the method's row found once here (its requirement,
//! cost, label); all six together cost about 0.7 µs of a public call, under 2% of a Ping's
//! CPU (the `stages` rows of `cargo bench --bench table`).
use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;

use super::context::{http_client_ip, ClientIp, TrustedProxies};
use super::{auth, cors, deadline, methods, metrics, rate_limits, trace};
use crate::domain::credentials::Credentials;

/// What the pipeline's stages need.
pub struct Pipeline {
    /// For `auth`: resolves a bearer credential to its principal.
    pub credentials: Arc<Credentials>,
    /// Proxies whose forwarded-for headers count (also an extension for handlers).
    pub trusted: TrustedProxies,
    /// For `rate_limits`.
    pub rate_limits: rate_limits::RateLimits,
    /// For `deadline`.
    pub bounds: deadline::Bounds,
    /// For `metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// For `cors`.
    pub cors: cors::Cors,
}

/// Runs `req` through the stages, then `endpoint` with the method's row.
pub async fn run<F: Future<Output = Response>>(
    p: &Pipeline,
    mut req: Request,
    endpoint: impl FnOnce(&'static methods::Method, Request) -> F,
) -> Response {
    let method = methods::find(req.uri().path());
    let ip = ClientIp(http_client_ip(&req, &p.trusted.0));
    req.extensions_mut().insert(ip);
    req.extensions_mut().insert(p.trusted.clone());
    trace::around(req, |req| {
        cors::around(&p.cors, req, |req| {
            metrics::around(&p.metrics, method, req, |req| {
                deadline::around(&p.bounds, req, |req| async move {
                    let Some(method) = method else {
                        return auth::not_served(&req);
                    };
                    rate_limits::around(&p.rate_limits, method, req, |req| {
                        auth::around(&p.credentials, method, req, |req| endpoint(method, req))
                    })
                    .await
                })
            })
        })
    })
    .await
}
