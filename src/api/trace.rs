//! The outermost layer: one tracing span per request with its method (path), request id and
//! (once the auth layer knows it) user id; the id is returned as `x-request-id`, and one
//! info line per request records the method, transport, status, latency, request id and user (never a
//! credential). A caller's own `x-request-id` is kept when it is short and plain.
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderName, HeaderValue};
use rand::RngCore;
use std::future::Future;
use tracing::Instrument;

/// The header that carries the request id both ways.
pub const REQUEST_ID: &str = "x-request-id";
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(REQUEST_ID);

/// The request id: the caller's own when it is short and plain, else 16 random hex digits.
fn request_id(req: &Request) -> HeaderValue {
    let given = req.headers().get(REQUEST_ID).filter(|v| {
        let v = v.as_bytes();
        !v.is_empty()
            && v.len() <= 64
            && v.iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    });
    if let Some(id) = given {
        return id.clone();
    }
    HeaderValue::from_bytes(&new_id()).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// 16 random lowercase hex digits. Not a secret: the thread-local generator avoids a system
/// call per request.
fn new_id() -> [u8; 16] {
    let mut hex = [b'0'; 16];
    let _ = hex::encode_to_slice(rand::thread_rng().next_u64().to_be_bytes(), &mut hex);
    hex
}

/// A new request id, for an adapter that makes calls of its own (the Osmium socket).
pub fn new_request_id() -> String {
    String::from_utf8_lossy(&new_id()).into_owned()
}

/// The middleware, around `next` (run by `pipeline.rs`).
pub async fn around<F: Future<Output = Response>>(
    req: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let id = request_id(&req);
    // Fields are recorded here, so the span borrows the path and id instead of copying them.
    let span = tracing::info_span!(
        "request",
        method = %req.uri().path(),
        transport = super::context::Transport::of(&req).name(),
        request_id = %id.to_str().unwrap_or_default(),
        user = tracing::field::Empty
    );
    let started = std::time::Instant::now();
    let mut res = next(req).instrument(span.clone()).await;
    res.headers_mut().insert(REQUEST_ID_HEADER, id);
    let status = super::metrics::code_label(&res);
    span.in_scope(|| {
        tracing::info!(
            %status,
            ms = started.elapsed().as_millis() as u64,
            "request"
        )
    });
    res
}
