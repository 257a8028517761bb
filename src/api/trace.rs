//! The outermost layer: one tracing span per request with its method (path), request id and
//! (once the auth layer knows it) user id; the id is returned as `x-request-id`, and one
//! info line per request records the method, status, latency, request id and user (never a
//! credential). A caller's own `x-request-id` is kept when it is short and plain.
use axum::extract::Request;
use axum::response::Response;
use rand::RngCore;
use std::future::Future;
use tracing::Instrument;

/// The header that carries the request id both ways.
pub const REQUEST_ID: &str = "x-request-id";

fn request_id(req: &Request) -> String {
    let given = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    match given {
        Some(id) => id.to_owned(),
        None => {
            // Not a secret: the thread-local generator avoids a system call per request.
            format!("{:016x}", rand::thread_rng().next_u64())
        }
    }
}

/// The middleware, around `next` (run by `pipeline.rs`).
pub async fn around<F: Future<Output = Response>>(
    req: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let id = request_id(&req);
    let method = req.uri().path().to_owned();
    let span = tracing::info_span!(
        "request",
        %method,
        request_id = %id,
        user = tracing::field::Empty
    );
    let started = std::time::Instant::now();
    let mut res = next(req).instrument(span.clone()).await;
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
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
