//! Request bounds: at most `[limits] max_requests_in_flight` requests are handled at once
//! (more are refused at once with RESOURCE_EXHAUSTED, `NODE_BUSY`; health probes are
//! exempt), and a request not answered within `request_timeout_secs` gets DEADLINE_EXCEEDED
//! (`REQUEST_TIMEOUT`) and its handler is dropped. Together with the request size cap they
//! bound what unfinished requests can pin: in flight × `MAX_REQUEST_BYTES`. For a server
//! stream the time bound is to its first message; the stream itself may run on.
use std::future::Future;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;

use crate::domain::{DomainError, ErrorKind, Reason};

/// Largest request message a gRPC method accepts (every request of the seeds is tiny; the
/// largest, RevokeSessions with 1000 ids, is about 10 KiB).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// The layer's state.
#[derive(Debug)]
pub struct Bounds {
    /// The request timeout.
    pub timeout: Duration,
    /// Requests handled at once.
    pub in_flight: tokio::sync::Semaphore,
}

/// The middleware, around `next` (run by `pipeline.rs`).
pub async fn around<F: Future<Output = Response>>(
    bounds: &Bounds,
    req: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
    let _permit = match bounds.in_flight.try_acquire() {
        Ok(p) => Some(p),
        Err(_) if probe => None,
        Err(_) => {
            return crate::api::status::status(DomainError::exhausted(
                Reason::NodeBusy,
                "the node is handling as many requests as it may (limits.max_requests_in_flight); try again shortly",
            ))
            .into_http::<axum::body::Body>()
        }
    };
    let limit = bounds.timeout;
    match tokio::time::timeout(limit, next(req)).await {
        Ok(res) => res,
        Err(_) => crate::api::status::status(DomainError::new(
            ErrorKind::DeadlineExceeded,
            Reason::RequestTimeout,
            format!(
                "the request took longer than {} s (limits.request_timeout_secs)",
                limit.as_secs()
            ),
        ))
        .into_http::<axum::body::Body>(),
    }
}
