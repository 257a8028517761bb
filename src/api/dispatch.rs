//! How a transport adapter runs a method: it builds the gRPC request that the method
//! table's path names, sends it through the same pipeline and routes a gRPC client's
//! request goes through (so auth, budgets, metrics and the log line are the same), and reads
//! the answer back as bare messages or a [`Refusal`].
use axum::body::Body;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::BodyExt;
use tonic::Code;
use tonic_types::StatusExt;

use super::context::{PeerAddr, Transport};

/// A refusal as every transport reports it: the gRPC code, the bounded message and the
/// stable reason code of `google.rpc.ErrorInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The gRPC code.
    pub code: Code,
    /// The message (already bounded by `status.rs`).
    pub message: String,
    /// The reason code, when the refusal carries one.
    pub reason: Option<String>,
}

impl Refusal {
    fn of(status: &tonic::Status) -> Refusal {
        Refusal {
            code: status.code(),
            message: status.message().to_owned(),
            reason: status.get_details_error_info().map(|i| i.reason),
        }
    }

    /// A refusal of the transport itself (bad framing, a body over the limit).
    pub fn transport(code: Code, reason: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            reason: Some(reason.to_owned()),
        }
    }
}

/// The read buffer of a WebSocket (tungstenite's default is 128 KiB, which 1,000 idle
/// sockets turn into ~150 MB; frames are at most 16 KiB and the buffer grows to fit one).
/// Writes are not buffered (`write_buffer_size(0)`): each answer is flushed as it is sent.
pub const SOCKET_BUFFER: usize = 4096;

/// Largest answer read back from a unary method (every answer of the seeds is far smaller).
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Request headers an adapter does not hand on: they describe its own framing.
const FRAMING: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "hrpc-version",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// The facts of the outer request an adapter hands to each call it makes.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Headers: `authorization`, `origin`, `x-forwarded-for`, device facts, `x-request-id`.
    pub headers: HeaderMap,
    /// The TCP peer.
    pub peer: Option<PeerAddr>,
}

impl Caller {
    /// The caller of `req`, without its framing headers.
    pub fn of(req: &Request<Body>) -> Caller {
        let mut headers = req.headers().clone();
        for name in FRAMING {
            headers.remove(*name);
        }
        Caller {
            headers,
            peer: req.extensions().get::<PeerAddr>().copied(),
        }
    }
}

/// The pipeline and routes, as an adapter calls them.
#[derive(Clone)]
pub struct Inner(pub std::sync::Arc<super::endpoints::Pipelined>);

/// A message in gRPC's length-prefixed framing.
fn framed(message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + message.len());
    buf.put_u8(0);
    buf.put_u32(message.len() as u32);
    buf.put_slice(message);
    buf.freeze()
}

/// The refusal a response carries, in its headers (trailers-only) or its trailers.
fn refusal_in(headers: &HeaderMap) -> Option<Refusal> {
    let status = tonic::Status::from_header_map(headers)?;
    (status.code() != Code::Ok).then(|| Refusal::of(&status))
}

fn broken(what: &str) -> Refusal {
    Refusal::transport(Code::Internal, "INTERNAL", format!("the answer {what}"))
}

/// Reads length-prefixed messages out of a gRPC response body.
pub struct Messages {
    body: Body,
    buf: BytesMut,
    done: bool,
}

impl Messages {
    /// The next message; `Some(Err)` once when the call ended in a refusal; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, Refusal>> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf[0] != 0 {
                    self.done = true;
                    return Some(Err(broken("is compressed")));
                }
                if self.buf.len() >= 5 + len {
                    self.buf.advance(5);
                    return Some(Ok(self.buf.split_to(len).freeze()));
                }
            }
            if self.done {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(frame) => {
                        self.done = true;
                        if let Some(r) = frame.trailers_ref().and_then(refusal_in) {
                            return Some(Err(r));
                        }
                    }
                },
                Some(Err(_)) => {
                    self.done = true;
                    return Some(Err(broken("was cut off")));
                }
                None => self.done = true,
            }
        }
    }
}

impl Inner {
    /// Runs an HTTP request as it came (gRPC, gRPC-Web, plain HTTP) through the pipeline.
    pub async fn call_http(&self, req: Request<Body>) -> axum::response::Response {
        self.0.call(req).await
    }

    fn request(&self, path: &str, caller: &Caller, message: &[u8], t: Transport) -> Request<Body> {
        let mut req = Request::new(Body::from(framed(message)));
        *req.method_mut() = http::Method::POST;
        *req.version_mut() = http::Version::HTTP_2;
        *req.uri_mut() = http::Uri::try_from(path).unwrap_or_default();
        let headers = req.headers_mut();
        headers.clone_from(&caller.headers);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        if let Some(peer) = caller.peer {
            req.extensions_mut().insert(peer);
        }
        req.extensions_mut().insert(t);
        req
    }

    /// Starts `path` with `message`: the answer's headers (without gRPC's) and its messages,
    /// or the refusal it began with.
    pub async fn call(
        &self,
        path: &str,
        caller: &Caller,
        message: &[u8],
        t: Transport,
    ) -> Result<(HeaderMap, Messages), Refusal> {
        let req = self.request(path, caller, message, t);
        let res = self.0.call(req).await;
        let (parts, body) = res.into_parts();
        if let Some(r) = refusal_in(&parts.headers) {
            return Err(r);
        }
        let mut headers = parts.headers;
        for name in [
            "content-type",
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
        ] {
            headers.remove(name);
        }
        let body = Body::new(http_body_util::Limited::new(body, MAX_ANSWER_BYTES));
        Ok((
            headers,
            Messages {
                body,
                buf: BytesMut::new(),
                done: false,
            },
        ))
    }

    /// Runs a unary method: the answer's headers and its one message.
    pub async fn unary(
        &self,
        path: &str,
        caller: &Caller,
        message: &[u8],
        t: Transport,
    ) -> Result<(HeaderMap, Bytes), Refusal> {
        let (headers, mut messages) = self.call(path, caller, message, t).await?;
        let first = messages
            .next()
            .await
            .unwrap_or_else(|| Err(broken("was empty")))?;
        // The trailers say whether the call ended well.
        match messages.next().await {
            Some(Err(r)) => Err(r),
            _ => Ok((headers, first)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips() {
        let f = framed(b"abc");
        assert_eq!(&f[..], &[0, 0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
