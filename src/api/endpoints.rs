//! What sits behind the transports' split (`transports.rs`): the pipeline (`pipeline.rs`),
//! then the endpoint the method's row names, a gRPC service (through tonic-web's
//! translation where the request is gRPC-Web) or an HTTP route or page. Plain calls and
//! functions, not axum Routers with `from_fn` middleware: each such middleware clones and
//! boxes the service below it and boxes its own future on every request, and each Router
//! matches the path again. That chain made a Ping cost 5.5 µs of CPU more than tonic's own
//! server answering health Check; without it a Ping costs about 2 µs less (the "CPU a Ping
//! costs beyond plain tonic's Check" row of `cargo bench --bench table`).
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, ServiceExt};

use super::methods::{Kind, Method};
use super::pipeline::Pipeline;
use super::{decode_errors, pipeline};

/// What the pipeline hands a request to.
pub struct Endpoints {
    grpc: tonic::service::Routes,
    grpc_web: tonic_web::GrpcWebService<tonic::service::Routes>,
    http: axum::Router,
}

impl Endpoints {
    /// The gRPC services and the HTTP routes and pages.
    pub fn new(grpc: tonic::service::Routes, http: axum::Router) -> Self {
        let grpc = grpc.prepare();
        Endpoints {
            grpc_web: tonic_web::GrpcWebLayer::new().layer(grpc.clone()),
            grpc,
            http: http.with_state(()),
        }
    }

    async fn call(&self, method: &'static Method, req: Request) -> Response {
        if method.kind == Kind::Http {
            let Ok(res) = self.http.clone().oneshot(req).await;
            return res;
        }
        // tonic-web passes HTTP/2 requests that are not gRPC-Web straight through, so
        // those skip it; it answers HTTP/1.1 requests that are not gRPC-Web 400.
        let web = req.version() != http::Version::HTTP_2
            || req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc-web"));
        let Ok(res) = if web {
            self.grpc_web.clone().oneshot(req).await
        } else {
            self.grpc.clone().oneshot(req).await
        };
        decode_errors::answer(method.path, res.map(Body::new))
    }
}

/// The pipeline and the endpoints behind it: what every transport's calls go through.
pub struct Pipelined {
    pipeline: Pipeline,
    endpoints: Endpoints,
}

impl Pipelined {
    pub fn new(pipeline: Pipeline, endpoints: Endpoints) -> Self {
        Pipelined {
            pipeline,
            endpoints,
        }
    }

    /// Runs `req` through the pipeline to its endpoint.
    pub async fn call(&self, req: Request) -> Response {
        pipeline::run(&self.pipeline, req, |method, req| {
            self.endpoints.call(method, req)
        })
        .await
    }
}
