//! The outermost layer: one tracing span per request with its method (path) and request id,
//! the id returned as `x-request-id`, and one debug line when the request ends. A caller's
//! own `x-request-id` is kept when it is short and plain; otherwise a fresh one is made.
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
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

/// The middleware.
pub async fn layer(req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let method = req.uri().path().to_owned();
    let span = tracing::info_span!("request", %method, request_id = %id);
    let started = std::time::Instant::now();
    let mut res = next.run(req).instrument(span.clone()).await;
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    span.in_scope(|| {
        tracing::debug!(
            status = res.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request done"
        )
    });
    res
}
