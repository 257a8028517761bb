//! The one place that tells transports apart on the shared port: hRPC unary calls and
//! WebSockets (hRPC streams, the Osmium socket at `/`) go to their adapters, which call the
//! pipeline themselves; gRPC, gRPC-Web and plain HTTP go straight to the pipeline. A POST
//! to a method with a content type no transport speaks gets 415. [`Front`] is the service
//! hyper calls: one boxed future per request for the whole path (`endpoints.rs` says why).
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use http::StatusCode;

use super::context::PeerAddr;
use super::dispatch::Inner;
use super::methods::{self, Kind};
use super::{hrpc, osmium};

/// What the adapters need.
pub struct Transports {
    /// The pipeline and routes.
    pub inner: Inner,
    /// How long a request body or a stream's first frame may take.
    pub timeout: Duration,
    /// The Osmium socket's settings.
    pub socket: osmium::Socket,
}

impl Transports {
    /// Over `inner`, with the node's request timeout, idle timeout and public URL.
    pub fn new(inner: Inner, config: &crate::config::Config) -> Self {
        let url = config.mail.public_url.as_deref().unwrap_or_default();
        let uri = url.parse::<http::Uri>().ok();
        let host = uri.as_ref().and_then(|u| u.host()).unwrap_or("localhost");
        let tls = uri.as_ref().and_then(|u| u.scheme_str()) == Some("https");
        let port = uri
            .as_ref()
            .and_then(|u| u.port_u16())
            .unwrap_or(if tls { 443 } else { 80 });
        Transports {
            inner: inner.clone(),
            timeout: Duration::from_secs(config.limits.request_timeout_secs.max(1)),
            socket: osmium::Socket {
                inner,
                idle: Duration::from_secs(config.limits.idle_timeout_secs.max(1)),
                entrypoint: (host.to_owned(), port),
                frames_per_second: f64::from(config.limits.socket_frames_per_second.max(1)),
            },
        }
    }
}

fn unsupported(path: &str) -> Response {
    let mut res = Response::new(axum::body::Body::from(format!(
        "{}: send application/grpc (gRPC), application/grpc-web (gRPC-Web) or application/hrpc (hRPC)\n",
        crate::domain::validate::printable(path, 200)
    )));
    *res.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    res
}

/// Where `req` goes first ([`Connection`] calls this for every request).
pub async fn route(t: &Transports, req: Request) -> Response {
    if hrpc::is_unary(&req) {
        return hrpc::unary(&t.inner, t.timeout, req).await;
    }
    if hrpc::is_upgrade(&req) {
        if osmium::is_socket(&req) {
            return osmium::accept(t.socket.clone(), req).await;
        }
        if methods::find(req.uri().path()).is_some_and(|m| m.kind != Kind::Http) {
            return hrpc::stream(t.inner.clone(), t.timeout, req).await;
        }
    }
    if req.method() == http::Method::POST {
        let method = methods::find(req.uri().path()).filter(|m| m.kind != Kind::Http);
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
        if method.is_some() && !grpc {
            return unsupported(req.uri().path());
        }
    }
    t.inner.call_http(req).await
}

/// The service hyper serves on the port.
#[derive(Clone)]
pub struct Front(Arc<Transports>);

impl Front {
    pub fn new(transports: Arc<Transports>) -> Self {
        Front(transports)
    }

    /// The service of one connection from `peer`.
    pub fn connection(&self, peer: SocketAddr) -> Connection {
        Connection {
            transports: self.0.clone(),
            peer: PeerAddr(peer),
        }
    }
}

/// [`Front`] for one connection: every request learns the peer's address.
#[derive(Clone)]
pub struct Connection {
    transports: Arc<Transports>,
    peer: PeerAddr,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Answer {
        let (transports, peer) = (self.transports.clone(), self.peer);
        Box::pin(async move {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(peer);
            Ok(route(&transports, req).await)
        })
    }
}
