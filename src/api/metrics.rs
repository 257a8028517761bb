//! Request metrics for `/metrics` (Prometheus text): requests by method and status, and a
//! latency histogram by method. The status is read from the response headers, which is
//! exact for unary calls (tonic sends errors as trailers-only responses).
use std::future::Future;
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

type LatencyFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The node's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    sign_ins: Family<OutcomeLabels, Counter>,
    /// Gauges read from the node at each scrape.
    pub node: super::node_gauges::NodeGauges,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hearth");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "requests",
            "Requests by method and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to response headers, by method",
            latency.clone(),
        );
        let sign_ins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sign_ins",
            "Sign-ins by outcome: ok, failed, throttled, refused (other errors)",
            sign_ins.clone(),
        );
        let node = super::node_gauges::NodeGauges::register(&mut registry);
        Self {
            registry,
            requests,
            latency,
            sign_ins,
            node,
        }
    }
}

impl Metrics {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Served methods and HTTP routes keep their name; anything else (a made-up method under a
/// known service included) is "other", so the label set is fixed whatever clients send.
fn method_label(path: &str) -> String {
    let known = super::auth::requirement(path).is_some();
    if known {
        path.to_owned()
    } else {
        "other".to_owned()
    }
}

/// The status of a response as the metrics and the request log name it: the gRPC code
/// (from the headers of a trailers-only answer; a gRPC answer without one is `Ok`), else the
/// HTTP status.
pub(crate) fn code_label(res: &Response) -> String {
    if let Some(code) = res
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
    {
        let code: i32 = code.parse().unwrap_or(2);
        return canonical(tonic::Code::from_i32(code)).to_owned();
    }
    let grpc = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if grpc {
        "OK".into()
    } else {
        res.status().as_u16().to_string()
    }
}

/// A gRPC code in the canonical form of the gRPC specification (`OK`, `UNAUTHENTICATED`).
pub fn canonical(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

const SIGN_IN_METHODS: &[&str] = &[
    "/tangle.client.auth.Auth/SignIn",
    "/accounts.v1.PublicAccountsService/SignIn",
];

/// The middleware, around `next` (run by `pipeline.rs`).
pub async fn around<F: Future<Output = Response>>(
    metrics: &Metrics,
    req: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let method = method_label(req.uri().path());
    let start = Instant::now();
    let res = next(req).await;
    let code = code_label(&res);
    if SIGN_IN_METHODS.contains(&method.as_str()) {
        let outcome = match code.as_str() {
            "OK" => "ok",
            "UNAUTHENTICATED" => "failed",
            "RESOURCE_EXHAUSTED" => "throttled",
            _ => "refused",
        };
        metrics
            .sign_ins
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
    metrics
        .latency
        .get_or_create(&MethodLabels {
            method: method.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels { method, code })
        .inc();
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_become_labels() {
        assert_eq!(
            method_label("/test.v1.TestAuthService/Pong"),
            "/test.v1.TestAuthService/Pong"
        );
        assert_eq!(method_label("/healthz"), "/healthz");
        for made_up in [
            "/test.v1.TestAuthService/Pong2",
            "/test.v1.TestAuthService/x8f3a",
            "/grpc.health.v1.Health/Nope",
            "/nothing",
        ] {
            assert_eq!(method_label(made_up), "other", "{made_up}");
        }
    }
}
