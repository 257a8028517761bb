//! The request timeout of `[limits] request_timeout_secs`: a request not answered in time
//! gets DEADLINE_EXCEEDED (reason `REQUEST_TIMEOUT`) and its handler is dropped, so
//! unfinished requests cannot pin memory. For a server stream the bound is the time to its
//! first message; the stream itself may run on.
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tonic::Status;

use crate::domain::{DomainError, ErrorKind, Reason};

/// Largest request message a gRPC method accepts (every request of the seeds is tiny).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The middleware; the state is the timeout.
pub async fn layer(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => Status::from(DomainError::new(
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
