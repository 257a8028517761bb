//! The Osmium socket (DESIGN.md §1): one WebSocket per client at `/`, binary frames, each a
//! `ClientMessage{id, oneof message}` answered by a `ServerMessage{id, result: RPCResult}`.
//! A member of the method table's `osmium` column runs its method through `dispatch.rs`
//! (same pipeline, budgets, metrics and log line as over gRPC) with the credential the
//! socket holds; SignIn, SignUp and Authorize bind their session to the socket.
//! `Initialize` is answered here; an empty message is the client's heartbeat; every other
//! member is a chat call this node does not serve and gets an `RPCError`. Calls on one
//! socket run one at a time, frames are bounded, and each socket has a frame budget.
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes};
use http::{HeaderValue, Request};
use prost::encoding::{self, DecodeContext, WireType};
use prost::Message;
use tonic::Code;

use super::context::Transport;
use super::deadline::MAX_REQUEST_BYTES;
use super::dispatch::{Caller, Inner, Refusal};
use super::methods::{self, OSMIUM_INITIALIZE, OSMIUM_INITIALIZED};

/// A burst a socket may send, in seconds of its frame budget.
const BURST_SECONDS: f64 = 3.0;

/// `Initialize`: the client's device facts.
#[derive(Clone, PartialEq, prost::Message)]
struct Initialize {
    #[prost(uint32, tag = "1")]
    client_id: u32,
    #[prost(string, tag = "2")]
    device_type: String,
    #[prost(string, tag = "3")]
    device_version: String,
    #[prost(string, tag = "4")]
    app_version: String,
}

/// `Initialized{entrypoints}`.
#[derive(Clone, PartialEq, prost::Message)]
struct Initialized {
    #[prost(message, optional, tag = "1")]
    entrypoints: Option<Entrypoints>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Entrypoints {
    #[prost(message, repeated, tag = "1")]
    entrypoints: Vec<Entrypoint>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Entrypoint {
    #[prost(string, tag = "1")]
    hostname: String,
    #[prost(uint32, tag = "3")]
    port: u32,
    #[prost(uint32, tag = "4")]
    region: u32,
}

/// `RPCError{error_code, error_message}`: the gRPC code and `<REASON>: <message>`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcError {
    /// The gRPC code number.
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    /// The reason code, a colon and the bounded message.
    #[prost(string, tag = "2")]
    pub error_message: String,
}

impl From<&Refusal> for RpcError {
    fn from(r: &Refusal) -> Self {
        RpcError {
            error_code: r.code as u32,
            error_message: format!(
                "{}: {}",
                r.reason
                    .as_deref()
                    .unwrap_or(super::metrics::canonical(r.code)),
                r.message
            ),
        }
    }
}

/// A `ClientMessage`: its id and the one member it carries (none: a heartbeat).
#[derive(Debug, PartialEq, Eq)]
pub struct ClientMessage {
    /// The id the answer's `req_id` repeats.
    pub id: u32,
    /// The member's number and its message's bytes.
    pub member: Option<(u32, Bytes)>,
}

/// Reads a `ClientMessage` frame. Fields it does not know are skipped; a oneof member that
/// appears twice counts as its last appearance, as protobuf decoders do.
pub fn parse(mut frame: Bytes) -> Result<ClientMessage, prost::DecodeError> {
    let mut msg = ClientMessage {
        id: 0,
        member: None,
    };
    while frame.has_remaining() {
        let (field, wire) = encoding::decode_key(&mut frame)?;
        match (field, wire) {
            (1, WireType::Varint) => msg.id = encoding::decode_varint(&mut frame)? as u32,
            (n, WireType::LengthDelimited) if n > 1 => {
                let mut body = Bytes::new();
                encoding::bytes::merge(wire, &mut body, &mut frame, DecodeContext::default())?;
                msg.member = Some((n, body));
            }
            _ => encoding::skip_field(wire, field, &mut frame, DecodeContext::default())?,
        }
    }
    Ok(msg)
}

/// A `ServerMessage{id, result: RPCResult{req_id, trace_id, member or error}}`; member 0
/// means an answer of `()`.
pub fn answer(
    id: u32,
    req_id: u32,
    trace_id: &str,
    result: Result<(u32, Bytes), RpcError>,
) -> Vec<u8> {
    let mut rpc = Vec::new();
    encoding::uint32::encode(1, &req_id, &mut rpc);
    match result {
        Ok((0, _)) => {}
        Ok((member, bytes)) => encoding::bytes::encode(member, &bytes, &mut rpc),
        Err(e) => encoding::message::encode(2, &e, &mut rpc),
    }
    if !trace_id.is_empty() {
        encoding::string::encode(37, &trace_id.to_owned(), &mut rpc);
    }
    let mut out = Vec::with_capacity(rpc.len() + 8);
    encoding::uint32::encode(1, &id, &mut out);
    encoding::bytes::encode(3, &Bytes::from(rpc), &mut out);
    out
}

/// Whether `req` opens the Osmium socket: a WebSocket at `/` that does not offer hRPC.
pub fn is_socket(req: &Request<Body>) -> bool {
    req.uri().path() == "/"
        && super::hrpc::is_upgrade(req)
        && !super::hrpc::subprotocols(req).any(|p| p == super::hrpc::SUBPROTOCOL)
}

/// What a socket needs besides its connection.
#[derive(Clone)]
pub struct Socket {
    /// The pipeline and routes.
    pub inner: Inner,
    /// Closed after this long without a frame from the client.
    pub idle: Duration,
    /// `Initialized`'s entry point: this node's public host and port.
    pub entrypoint: (String, u16),
    /// `[limits] socket_frames_per_second`.
    pub frames_per_second: f64,
}

/// Accepts the upgrade and runs the socket.
pub async fn accept(socket: Socket, req: Request<Body>) -> Response {
    let caller = Caller::of(&req);
    let (mut parts, _) = req.into_parts();
    match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws
            .max_message_size(MAX_REQUEST_BYTES)
            .max_frame_size(MAX_REQUEST_BYTES)
            .read_buffer_size(super::dispatch::SOCKET_BUFFER)
            .write_buffer_size(0)
            .on_upgrade(move |ws| run(socket, caller, ws)),
        Err(rejection) => rejection.into_response(),
    }
}

/// A token bucket of frames.
struct Budget {
    tokens: f64,
    per_second: f64,
    at: tokio::time::Instant,
}

impl Budget {
    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.per_second * BURST_SECONDS);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

fn close(code: u16, reason: &'static str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

async fn run(socket: Socket, mut caller: Caller, mut ws: WebSocket) {
    let mut budget = Budget {
        tokens: socket.frames_per_second * BURST_SECONDS,
        per_second: socket.frames_per_second,
        at: tokio::time::Instant::now(),
    };
    let mut sent: u32 = 0;
    loop {
        let frame = match tokio::time::timeout(socket.idle, ws.recv()).await {
            Err(_) => {
                let _ = ws.send(close(1000, "idle")).await;
                return;
            }
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(WsMessage::Close(_)))) => return,
            // Pings are answered by the WebSocket layer itself.
            Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
            Ok(Some(Ok(WsMessage::Text(_)))) => None,
            Ok(Some(Ok(WsMessage::Binary(b)))) => Some(b),
        };
        if !budget.take() {
            let _ = ws.send(close(1008, "too many messages")).await;
            return;
        }
        let out = match frame.map(parse) {
            Some(Ok(msg)) => handle(&socket, &mut caller, msg).await,
            _ => Some((
                0,
                String::new(),
                Err(RpcError::from(&Refusal::transport(
                    Code::InvalidArgument,
                    crate::domain::Reason::FrameInvalid.as_str(),
                    "a frame is one binary ClientMessage",
                ))),
            )),
        };
        if let Some((req_id, trace, result)) = out {
            sent = sent.wrapping_add(1);
            let bytes = answer(sent, req_id, &trace, result);
            if ws
                .send(WsMessage::Binary(Bytes::from(bytes)))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

type Outcome = (u32, String, Result<(u32, Bytes), RpcError>);

/// One message's answer; `None` for a heartbeat.
async fn handle(socket: &Socket, caller: &mut Caller, msg: ClientMessage) -> Option<Outcome> {
    let (member, body) = msg.member?;
    if member == OSMIUM_INITIALIZE {
        return Some((msg.id, String::new(), initialize(socket, caller, &body)));
    }
    let Some(method) = methods::osmium(member) else {
        let r = Refusal::transport(
            Code::Unimplemented,
            crate::domain::Reason::MethodNotServed.as_str(),
            format!("member {member} is a chat call; this node serves accounts and sessions only"),
        );
        return Some((msg.id, String::new(), Err(RpcError::from(&r))));
    };
    let trace = super::trace::new_request_id();
    if let Ok(v) = HeaderValue::from_str(&trace) {
        caller.headers.insert(super::trace::REQUEST_ID, v);
    }
    let result = socket
        .inner
        .unary(method.path, caller, &body, Transport::Osmium)
        .await;
    caller.headers.remove(super::trace::REQUEST_ID);
    let result = match result {
        Ok((_, answer)) => {
            let result = method.osmium.map_or(0, |o| o.result);
            if result == 4 {
                bind(caller, &answer);
            }
            Ok((result, answer))
        }
        Err(r) => Err(RpcError::from(&r)),
    };
    Some((msg.id, trace, result))
}

/// SignIn, SignUp and Authorize answer an `Authorization`: later calls use its token.
fn bind(caller: &mut Caller, answer: &[u8]) {
    let Ok(auth) = crate::pb::tangle::client::auth::Authorization::decode(answer) else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", auth.token)) {
        caller.headers.insert(http::header::AUTHORIZATION, v);
    }
}

fn initialize(socket: &Socket, caller: &mut Caller, body: &[u8]) -> Result<(u32, Bytes), RpcError> {
    let init = Initialize::decode(body).map_err(|_| {
        RpcError::from(&Refusal::transport(
            Code::InvalidArgument,
            "FIELD_INVALID",
            "Initialize could not be decoded",
        ))
    })?;
    let facts = [
        ("x-client-id", init.client_id.to_string()),
        ("x-device-type", init.device_type),
        ("x-device-version", init.device_version),
        ("x-app-version", init.app_version),
    ];
    for (name, value) in facts {
        let value: String = value.chars().take(128).collect();
        if let Ok(v) = HeaderValue::from_str(&value) {
            caller.headers.insert(name, v);
        }
    }
    let (hostname, port) = socket.entrypoint.clone();
    let answer = Initialized {
        entrypoints: Some(Entrypoints {
            entrypoints: vec![Entrypoint {
                hostname,
                port: port.into(),
                region: 0,
            }],
        }),
    };
    Ok((OSMIUM_INITIALIZED, Bytes::from(answer.encode_to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_message_is_its_id_and_last_member() {
        let mut b = Vec::new();
        encoding::uint32::encode(1, &7, &mut b);
        encoding::bytes::encode(2, &Bytes::from_static(b"a"), &mut b);
        encoding::uint64::encode(9, &5, &mut b);
        encoding::bytes::encode(41, &Bytes::from_static(b"bc"), &mut b);
        let m = parse(Bytes::from(b)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.id, 7);
        assert_eq!(m.member, Some((41, Bytes::from_static(b"bc"))));
        let heartbeat = {
            let mut b = Vec::new();
            encoding::uint32::encode(1, &3, &mut b);
            b
        };
        assert_eq!(parse(Bytes::from(heartbeat)).map(|m| m.member), Ok(None));
        assert!(parse(Bytes::from_static(&[0x12, 0x05, 1])).is_err());
    }
}
