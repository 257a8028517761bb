//! Reading transport facts: the caller's principal (put there by the auth layer), its IP
//! (honouring `X-Forwarded-For` only from trusted proxies) and device facts from metadata.
use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::domain::model::DeviceFacts;
use crate::domain::{DomainError, Principal, Reason, RequestContext};

/// The TCP peer of a connection, inserted by the server for every request.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Proxies whose `X-Forwarded-For` is believed, inserted by the router.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub std::sync::Arc<Vec<IpAddr>>);

/// The client's IP, worked out once per request by the pipeline (see [`client_ip`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

/// Which transport carried a request (an extension the request log reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/2 gRPC.
    Grpc,
    /// gRPC-Web.
    GrpcWeb,
    /// Harmony's hRPC (HTTP POST or a WebSocket).
    Hrpc,
    /// The Osmium socket.
    Osmium,
    /// A form of the pages people use in a browser.
    Page,
    /// A plain HTTP route.
    Http,
}

impl Transport {
    /// The name in the request log.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::GrpcWeb => "grpc-web",
            Transport::Hrpc => "hrpc",
            Transport::Osmium => "osmium",
            Transport::Page => "page",
            Transport::Http => "http",
        }
    }

    /// The transport of a request that no adapter marked: by its content-type.
    pub fn of(req: &http::Request<Body>) -> Transport {
        if let Some(t) = req.extensions().get::<Transport>() {
            return *t;
        }
        let ct = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map_or(&b""[..], |v| v.as_bytes());
        if ct.starts_with(b"application/grpc-web") {
            Transport::GrpcWeb
        } else if ct.starts_with(b"application/grpc") {
            Transport::Grpc
        } else {
            Transport::Http
        }
    }
}

/// The authenticated caller; UNAUTHENTICATED if the auth layer found none.
pub fn principal<T>(req: &Request<T>) -> Result<Principal, Status> {
    req.extensions().get::<Principal>().cloned().ok_or_else(|| {
        crate::api::status::status(DomainError::unauthenticated(
            Reason::CredentialMissing,
            "this call needs a session token in `authorization`",
        ))
    })
}

/// The caller if a valid credential was sent (public methods).
pub fn optional_principal<T>(req: &Request<T>) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

/// The client's IP: the TCP peer, or for a trusted proxy the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, xff: Option<&str>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = xff.into_iter().flat_map(|h| h.rsplit(',')).map(str::trim);
    for hop in forwarded {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return Some(ip),
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

/// The client's IP of a plain HTTP request (the layers see these, before tonic).
pub fn http_client_ip(req: &http::Request<axum::body::Body>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    let xff = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    client_ip(peer, xff, trusted)
}

fn text(md: &MetadataMap, key: &str) -> Option<String> {
    md.get(key)?
        .to_str()
        .ok()
        .map(|s| s.chars().take(128).collect())
}

/// Builds the [`RequestContext`] of a request.
pub fn request_context<T>(req: &Request<T>) -> RequestContext {
    let md = req.metadata();
    let ip = match req.extensions().get::<ClientIp>() {
        Some(known) => known.0,
        None => {
            let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
            let trusted = req.extensions().get::<TrustedProxies>();
            let xff = md.get("x-forwarded-for").and_then(|v| v.to_str().ok());
            client_ip(peer, xff, trusted.map_or(&[][..], |t| &t.0[..]))
        }
    };
    RequestContext {
        ip,
        device: DeviceFacts {
            client_id: text(md, "x-client-id")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            device_type: text(md, "x-device-type").unwrap_or_default(),
            device_version: text(md, "x-device-version").unwrap_or_default(),
            app_name: text(md, "x-app-name")
                .or_else(|| text(md, "user-agent"))
                .unwrap_or_default(),
            app_version: text(md, "x-app-version").unwrap_or_default(),
        },
    }
}

/// A response whose initial metadata carries `authorization: Bearer <token>`.
pub fn with_token<T>(body: T, token: &str) -> Result<tonic::Response<T>, Status> {
    let mut res = tonic::Response::new(body);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| Status::internal("token is not valid metadata"))?;
    res.metadata_mut().insert("authorization", value);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = ip("10.0.0.1");
        let xff = Some("6.6.6.6, 1.2.3.4");
        assert_eq!(
            client_ip(Some(ip("9.9.9.9")), xff, &[proxy]),
            Some(ip("9.9.9.9"))
        );
        assert_eq!(client_ip(Some(proxy), xff, &[proxy]), Some(ip("1.2.3.4")));
        assert_eq!(client_ip(Some(proxy), None, &[proxy]), Some(proxy));
        assert_eq!(
            client_ip(Some(proxy), Some("1.2.3.4, 10.0.0.1"), &[proxy]),
            Some(ip("1.2.3.4"))
        );
    }
}
