//! The gRPC surface: one adapter file per service, the request pipeline's stages, and the one
//! place (`router`) where services, HTTP routes and middleware are composed.
pub mod accounts_v1;
pub mod auth;
pub mod context;
pub mod cors;
pub mod deadline;
pub mod decode_errors;
pub mod dispatch;
pub mod endpoints;
pub mod harmony;
pub mod hrpc;
pub mod methods;
pub mod metrics;
pub mod node_gauges;
pub mod oidc;
pub mod osmium;
pub mod pages;
pub mod peer_auth;
pub mod pipeline;
pub mod rate_limits;
pub mod status;
pub mod steps;
pub mod tangle;
mod tangle_passkeys;
pub mod tangle_settings;
pub mod test_v1;
pub mod tokens_v1;
pub mod trace;
pub mod transports;

use std::sync::Arc;

use tonic::service::Routes;

use crate::domain::Services;
use crate::pb;

/// Every gRPC service the node serves, by full name (seed services first).
pub const SERVICES: &[&str] = &[
    "auth.Auth",
    "auth.v1alpha1.AuthAPI",
    "protocol.auth.v1.AuthService",
    "accounts.v1.AccountsService",
    "accounts.v1.PublicAccountsService",
    "tokens.v1.TokensService",
    "test.v1.TestAuthService",
    "test.v1.TestNoAuthService",
    "tangle.client.auth.Auth",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Why the router could not be built.
#[derive(Debug, thiserror::Error)]
#[error("gRPC reflection: {0}")]
pub struct RouterError(#[from] tonic_reflection::server::Error);

/// Builds the whole request path (`transports.rs`, `endpoints.rs`). Order, outermost
/// first: the transports' split (hRPC and the Osmium socket turn into calls of the rest)
/// → trace (span,
/// `x-request-id`) → CORS (preflights answered here) → metrics → deadline
/// (`limits.request_timeout_secs`) → rate limits (per client IP and class of costly method)
/// → auth (principal or refusal) → the method row's endpoint → [gRPC-Web translation →
/// undecodable requests answered INVALID_ARGUMENT, gRPC services only] → handler (requests
/// over `deadline::MAX_REQUEST_BYTES` are refused while decoding). tonic-web refuses
/// HTTP/1.1 requests that are not gRPC-Web, so it wraps only the gRPC services; auth reads
/// only the path and `authorization`, which it does not change.
pub async fn router(
    services: Arc<Services>,
    metrics: Arc<metrics::Metrics>,
    http_routes: axum::Router,
) -> Result<transports::Front, RouterError> {
    use pb::accounts::v1::{
        accounts_service_server::AccountsServiceServer,
        public_accounts_service_server::PublicAccountsServiceServer,
    };
    use pb::test::v1::{
        test_auth_service_server::TestAuthServiceServer,
        test_no_auth_service_server::TestNoAuthServiceServer,
    };

    // Reflection lists the standard health service too, so `grpcurl … Health/Check` works,
    // and google.rpc's error details, so grpcurl shows a refusal's ErrorInfo (its reason).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    for service in SERVICES {
        health_reporter
            .set_service_status(*service, tonic_health::ServingStatus::Serving)
            .await;
    }

    // Every seed service refuses requests over MAX_REQUEST_BYTES while decoding them.
    macro_rules! bounded {
        ($server:expr) => {
            $server.max_decoding_message_size(deadline::MAX_REQUEST_BYTES)
        };
    }
    let accounts = accounts_v1::AccountsApi::new(&services);
    let grpc = Routes::new(bounded!(pb::auth::auth_server::AuthServer::new(
        peer_auth::PeerAuthApi::new(&services),
    )))
    .add_service(bounded!(
        pb::auth::v1alpha1::auth_api_server::AuthApiServer::new(oidc::OidcApi::new(&services))
    ))
    .add_service(bounded!(
        pb::protocol::auth::v1::auth_service_server::AuthServiceServer::new(
            harmony::HarmonyApi::new(&services)
        )
    ))
    .add_service(bounded!(AccountsServiceServer::new(accounts.clone())))
    .add_service(bounded!(PublicAccountsServiceServer::new(accounts)))
    .add_service(bounded!(
        pb::tokens::v1::tokens_service_server::TokensServiceServer::new(tokens_v1::TokensApi::new(
            &services
        ))
    ))
    .add_service(bounded!(TestAuthServiceServer::new(test_v1::TestApi)))
    .add_service(bounded!(TestNoAuthServiceServer::new(test_v1::TestApi)))
    .add_service(bounded!(
        pb::tangle::client::auth::auth_server::AuthServer::new(tangle::TangleApi::new(&services),)
    ))
    .add_service(health)
    .add_service(reflection_v1)
    .add_service(reflection_v1alpha);

    let trusted =
        context::TrustedProxies(Arc::new(services.config().listen.trusted_proxies.clone()));
    let cors_origins = services.config().http.cors_origins.clone();
    let rate_limits = rate_limits::RateLimits::new(
        services.config().limits.clone(),
        services.config().accounts.sign_ins_per_ip_per_minute,
        crate::domain::rate_limit::RateLimiter::new(
            services.state().buckets.clone(),
            services.clock().clone(),
        ),
    );
    let limits = &services.config().limits;
    let bounds = deadline::Bounds {
        timeout: std::time::Duration::from_secs(limits.request_timeout_secs.max(1)),
        in_flight: tokio::sync::Semaphore::new(limits.max_requests_in_flight.max(1)),
    };
    let pipeline = pipeline::Pipeline {
        credentials: services.credentials.clone(),
        trusted,
        rate_limits,
        bounds,
        metrics,
        cors: cors::Cors::new(&cors_origins),
    };
    let pages = pages::Pages::new(&services);
    let endpoints =
        endpoints::Endpoints::new(grpc, http_routes.merge(pages::routes(pages.clone())));
    let inner = dispatch::Inner(Arc::new(endpoints::Pipelined::new(pipeline, endpoints)));
    // hRPC, the Osmium socket and the pages call `inner` themselves, so their requests take the same
    // pipeline as gRPC's.
    pages.connect(inner.clone());
    let transports = transports::Transports::new(inner, services.config());
    Ok(transports::Front::new(Arc::new(transports)))
}
