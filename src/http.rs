//! Plain HTTP routes served on the gRPC port: health, metrics, this node's federation
//! well-known document, its JWK set and Harmony's `/_harmony/server` (the pages people use
//! are in `api/pages`).
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::api::metrics::Metrics;
use crate::domain::Services;

#[derive(Clone)]
struct HttpState {
    services: Arc<Services>,
    metrics: Arc<Metrics>,
}

/// The HTTP routes of the main port (`/metrics` only when it has no listener of its own).
pub fn routes(services: Arc<Services>, metrics: Arc<Metrics>) -> Router {
    let own_listener = services.config().metrics.addr.is_some();
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready));
    let router = if own_listener {
        router.route(
            "/metrics",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    "metrics are served on their own listener ([metrics] addr)\n",
                )
            }),
        )
    } else {
        router.route("/metrics", get(metrics_on_main_port))
    };
    router
        .route("/.well-known/hearth/server", get(well_known))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/_harmony/server", get(harmony_server))
        .with_state(HttpState { services, metrics })
}

/// The keys Hearth's JWTs are signed with (the current one and a retired one in its grace
/// period), as a JWK set.
async fn jwks(State(s): State<HttpState>) -> impl IntoResponse {
    axum::Json(s.services.jwts.jwks())
}

/// Readiness: 200 while the store can serve (its writer is alive), 503 otherwise.
async fn ready(State(s): State<HttpState>) -> impl IntoResponse {
    if s.services.store().is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the database cannot take writes\n",
        )
    }
}

/// The router of the separate metrics listener (`[metrics] addr`).
pub fn metrics_only(services: Arc<Services>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(HttpState { services, metrics })
}

/// `/metrics` on the main port: for loopback clients only (a scraper on the host or a
/// sidecar), since the main port is public; `[metrics] addr` gives it a listener of its own.
async fn metrics_on_main_port(
    State(s): State<HttpState>,
    client: Option<axum::Extension<crate::api::context::ClientIp>>,
) -> axum::response::Response {
    let loopback = client
        .and_then(|c| c.0 .0)
        .is_some_and(|ip| ip.is_loopback());
    if !loopback {
        return (
            StatusCode::FORBIDDEN,
            "metrics are served to loopback clients only on this port; set [metrics] addr for a listener of its own\n",
        )
            .into_response();
    }
    metrics_text(State(s)).await.into_response()
}

async fn metrics_text(State(s): State<HttpState>) -> impl IntoResponse {
    s.metrics.node.refresh(&s.services).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn well_known(State(s): State<HttpState>) -> impl IntoResponse {
    let config = s.services.config();
    let server = match config.server_id.port() {
        Some(_) => config.server_id.to_string(),
        None => format!(
            "{}:{}",
            config.server_id.host(),
            s.services.advertised_port()
        ),
    };
    Json(serde_json::json!({ "server": server }))
}

/// Harmony's discovery document: where this node's hRPC API is (the node's public URL;
/// Hearth serves hRPC on its one port, not on Harmony's default 2289).
async fn harmony_server(State(s): State<HttpState>) -> impl IntoResponse {
    let url = s
        .services
        .config()
        .mail
        .public_url
        .clone()
        .unwrap_or_default();
    Json(serde_json::json!({ "h.server": url }))
}
