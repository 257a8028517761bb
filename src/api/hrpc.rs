//! hRPC v1, Harmony's transport (DESIGN.md §1): unary calls as `POST <path>` with a bare
//! protobuf body (`content-type: application/hrpc`), server streams over a WebSocket with
//! the `hrpc1` subprotocol, refusals as `hrpc.v1.Error`. Each call runs through
//! `dispatch.rs`, so it is the same method, pipeline and answer as over gRPC.
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use prost::Message;
use tonic::Code;

use super::context::Transport;
use super::deadline::MAX_REQUEST_BYTES;
use super::dispatch::{Caller, Inner, Refusal};
use super::methods::{self, Kind};

/// hRPC's content type.
pub const CONTENT_TYPE: &str = "application/hrpc";
/// The WebSocket subprotocol of hRPC v1.
pub const SUBPROTOCOL: &str = "hrpc1";

/// `hrpc.v1.Error`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HrpcError {
    /// What went wrong, for programs: `hrpc.*` for the transport, `hearth.<REASON>` else.
    #[prost(string, tag = "1")]
    pub identifier: String,
    /// The bounded message, for people.
    #[prost(string, tag = "2")]
    pub human_message: String,
    /// Unused by Hearth.
    #[prost(bytes = "vec", tag = "3")]
    pub details: Vec<u8>,
}

/// The HTTP status and `hrpc.v1.Error` of a refusal.
pub fn error_of(r: &Refusal) -> (StatusCode, HrpcError) {
    let (status, transport_id) = match r.code {
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, None),
        Code::ResourceExhausted => (
            StatusCode::TOO_MANY_REQUESTS,
            Some("hrpc.resource-exhausted"),
        ),
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, Some("hrpc.not-implemented")),
        Code::Internal | Code::Unknown | Code::DataLoss => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("hrpc.internal-server-error"),
        ),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, None),
        _ => (StatusCode::BAD_REQUEST, None),
    };
    let identifier = match (&r.reason, transport_id) {
        (_, Some(id)) if r.code != Code::ResourceExhausted => id.to_owned(),
        (Some(reason), _) if reason.starts_with("hrpc.") => reason.clone(),
        (Some(reason), _) => format!("hearth.{reason}"),
        (None, Some(id)) => id.to_owned(),
        (None, None) => format!("hearth.{}", super::metrics::canonical(r.code)),
    };
    let error = HrpcError {
        identifier,
        human_message: r.message.clone(),
        details: Vec::new(),
    };
    (status, error)
}

fn hrpc_headers(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    h.insert("hrpc-version", HeaderValue::from_static("1"));
}

/// The hRPC answer of a refusal.
pub fn refuse(r: &Refusal) -> Response {
    let (status, error) = error_of(r);
    let mut res = Response::new(Body::from(error.encode_to_vec()));
    *res.status_mut() = status;
    hrpc_headers(&mut res);
    res
}

fn bad_unary(message: impl Into<String>) -> Response {
    refuse(&Refusal::transport(
        Code::InvalidArgument,
        "hrpc.http.bad-unary-request",
        message,
    ))
}

/// Whether `req` is an hRPC unary call.
pub fn is_unary(req: &Request<Body>) -> bool {
    req.method() == http::Method::POST
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(CONTENT_TYPE.as_bytes()))
}

/// A unary call: the bare request body in, the bare answer out.
pub async fn unary(inner: &Inner, timeout: Duration, req: Request<Body>) -> Response {
    let path = req.uri().path().to_owned();
    let method = methods::find(&path);
    if method.is_some_and(|m| !m.hrpc()) {
        return refuse(&Refusal::transport(
            Code::Unimplemented,
            "hrpc.not-implemented",
            format!("{path} is not served over hRPC"),
        ));
    }
    if method.is_some_and(|m| m.kind == Kind::ServerStream) {
        return bad_unary(format!(
            "{path} streams: open a WebSocket (GET with the `{SUBPROTOCOL}` subprotocol)"
        ));
    }
    let caller = Caller::of(&req);
    let body = http_body_util::Limited::new(req.into_body(), MAX_REQUEST_BYTES);
    let body = match tokio::time::timeout(timeout, body.collect()).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return bad_unary(format!(
                "the request body is over {} KiB",
                MAX_REQUEST_BYTES / 1024
            ))
        }
        Ok(Err(_)) => return bad_unary("the request body could not be read"),
        Err(_) => return bad_unary("the request body did not arrive in time"),
    };
    match inner.unary(&path, &caller, &body, Transport::Hrpc).await {
        Ok((headers, message)) => {
            let mut res = Response::new(Body::from(message));
            *res.headers_mut() = headers;
            hrpc_headers(&mut res);
            res
        }
        Err(r) => refuse(&r),
    }
}

/// Whether `req` asks for a WebSocket.
pub fn is_upgrade(req: &Request<Body>) -> bool {
    req.method() == http::Method::GET
        && req
            .headers()
            .get(http::header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// The subprotocols a WebSocket request offers.
pub fn subprotocols(req: &Request<Body>) -> impl Iterator<Item = &str> {
    req.headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// A server stream over a WebSocket: the client's first binary frame is the request; each
/// message goes out as `0x00` + message, a refusal as `0x01` + `hrpc.v1.Error`, then close.
pub async fn stream(inner: Inner, timeout: Duration, req: Request<Body>) -> Response {
    let path = req.uri().path().to_owned();
    if !methods::find(&path).is_some_and(|m| m.kind == Kind::ServerStream && m.hrpc()) {
        return refuse(&Refusal::transport(
            Code::InvalidArgument,
            "hrpc.http.bad-streaming-request",
            format!("{path} is not a streaming method of this node"),
        ));
    }
    let mut caller = Caller::of(&req);
    // Browsers cannot set headers on a WebSocket: their token is the second subprotocol.
    if !caller.headers.contains_key(http::header::AUTHORIZATION) {
        let token = subprotocols(&req).find(|p| *p != SUBPROTOCOL);
        if let Some(v) = token.and_then(|t| HeaderValue::from_str(t).ok()) {
            caller.headers.insert(http::header::AUTHORIZATION, v);
        }
    }
    let (mut parts, _) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.protocols([SUBPROTOCOL])
        .max_message_size(MAX_REQUEST_BYTES)
        .max_frame_size(MAX_REQUEST_BYTES)
        .read_buffer_size(super::dispatch::SOCKET_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| run_stream(inner, timeout, path, caller, socket))
}

fn frame(tag: u8, body: &[u8]) -> WsMessage {
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(tag);
    out.extend_from_slice(body);
    WsMessage::Binary(Bytes::from(out))
}

async fn run_stream(
    inner: Inner,
    timeout: Duration,
    path: String,
    caller: Caller,
    mut socket: WebSocket,
) {
    let first = tokio::time::timeout(timeout, async {
        while let Some(Ok(m)) = socket.recv().await {
            match m {
                WsMessage::Binary(b) => return Some(b),
                WsMessage::Close(_) => return None,
                _ => continue,
            }
        }
        None
    })
    .await;
    let Ok(Some(request)) = first else {
        let _ = socket.send(WsMessage::Close(None)).await;
        return;
    };
    let refusal = match inner.call(&path, &caller, &request, Transport::Hrpc).await {
        Err(r) => Some(r),
        Ok((_, mut messages)) => loop {
            tokio::select! {
                next = messages.next() => match next {
                    Some(Ok(m)) => {
                        if socket.send(frame(0, &m)).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(r)) => break Some(r),
                    None => break None,
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => {}
                },
            }
        },
    };
    if let Some(r) = refusal {
        let _ = socket.send(frame(1, &error_of(&r).1.encode_to_vec())).await;
    }
    let _ = socket
        .send(WsMessage::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(code: Code, reason: Option<&str>) -> Refusal {
        Refusal {
            code,
            message: "m".into(),
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn refusals_map_to_design_statuses_and_identifiers() {
        let cases = [
            (
                Code::Unauthenticated,
                Some("CREDENTIAL_MISSING"),
                401,
                "hearth.CREDENTIAL_MISSING",
            ),
            (
                Code::InvalidArgument,
                Some("FIELD_INVALID"),
                400,
                "hearth.FIELD_INVALID",
            ),
            (
                Code::NotFound,
                Some("FLOW_UNKNOWN"),
                400,
                "hearth.FLOW_UNKNOWN",
            ),
            (
                Code::ResourceExhausted,
                Some("IP_THROTTLED"),
                429,
                "hearth.IP_THROTTLED",
            ),
            (
                Code::ResourceExhausted,
                None,
                429,
                "hrpc.resource-exhausted",
            ),
            (Code::Unimplemented, None, 501, "hrpc.not-implemented"),
            (
                Code::Internal,
                Some("INTERNAL"),
                500,
                "hrpc.internal-server-error",
            ),
            (
                Code::InvalidArgument,
                Some("hrpc.http.bad-unary-request"),
                400,
                "hrpc.http.bad-unary-request",
            ),
        ];
        for (code, reason, status, id) in cases {
            let (s, e) = error_of(&refusal(code, reason));
            assert_eq!(
                (s.as_u16(), e.identifier.as_str()),
                (status, id),
                "{code:?}"
            );
        }
    }
}
