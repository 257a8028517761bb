//! Request metrics for `/metrics` (Prometheus text): requests by method and status, and a
//! latency histogram by method. The status is read from the response headers, which is
//! exact for unary calls (tonic sends errors as trailers-only responses).
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::methods::Method;

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

/// Every gRPC code, in `tonic::Code` order (the index of a code is its number).
const CODES: usize = 17;

/// One method's series, taken from the families on first use and kept: a request then
/// costs a map lookup on its path and two atomic updates, where asking the families costs
/// two label-set hashes, a lock each and three `String`s. A series exists from its first
/// request on, as it would through the families.
#[derive(Debug)]
struct MethodSeries {
    label: &'static str,
    latency: OnceLock<Histogram>,
    by_code: [OnceLock<Counter>; CODES],
}

/// The node's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    sign_ins: Family<OutcomeLabels, Counter>,
    /// Served methods and routes by path, and "other".
    series: HashMap<&'static str, MethodSeries>,
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
        let series = super::methods::METHODS
            .iter()
            .map(|m| m.label())
            .chain([OTHER])
            .map(|label| {
                let series = MethodSeries {
                    label,
                    latency: OnceLock::new(),
                    by_code: Default::default(),
                };
                (label, series)
            })
            .collect();
        Self {
            registry,
            requests,
            latency,
            sign_ins,
            series,
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

    /// The series of `path`: served methods and HTTP routes keep their name; anything else
    /// (a made-up method under a known service included) is "other", so the label set is
    /// fixed whatever clients send.
    fn series(&self, path: &str) -> &MethodSeries {
        match self.series.get(path) {
            Some(series) => series,
            // Always there: `default` adds it.
            None => &self.series[OTHER],
        }
    }
}

/// The method label of paths the node does not serve.
const OTHER: &str = "other";

/// The gRPC code of a response (from the headers of a trailers-only answer; a gRPC answer
/// without one is `Ok`); `None` when it is not a gRPC answer.
fn grpc_code(res: &Response) -> Option<tonic::Code> {
    if let Some(code) = res.headers().get("grpc-status") {
        let code = std::str::from_utf8(code.as_bytes())
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(2);
        return Some(tonic::Code::from_i32(code));
    }
    res.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
        .then_some(tonic::Code::Ok)
}

/// The status of a response as the metrics and the request log name it: the gRPC code,
/// else the HTTP status.
pub(crate) fn code_label(res: &Response) -> Cow<'static, str> {
    label_of(grpc_code(res), res)
}

/// [`code_label`] for a response whose [`grpc_code`] is known.
fn label_of(code: Option<tonic::Code>, res: &Response) -> Cow<'static, str> {
    match code {
        Some(code) => Cow::Borrowed(canonical(code)),
        None => Cow::Owned(res.status().as_u16().to_string()),
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

/// The middleware, around `next` (run by `pipeline.rs`).
pub async fn around<F: Future<Output = Response>>(
    metrics: &Metrics,
    method: Option<&Method>,
    req: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let series = metrics.series(method.map_or(OTHER, |m| m.label()));
    let start = Instant::now();
    let res = next(req).await;
    let code = grpc_code(&res);
    let label = label_of(code, &res);
    if method.is_some_and(|m| m.sign_in) {
        let outcome = match label.as_ref() {
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
    let method = || series.label.to_owned();
    series
        .latency
        .get_or_init(|| {
            let labels = MethodLabels { method: method() };
            metrics.latency.get_or_create(&labels).clone()
        })
        .observe(start.elapsed().as_secs_f64());
    let requests = |code: Cow<'static, str>| {
        let labels = RequestLabels {
            method: method(),
            code: code.into_owned(),
        };
        metrics.requests.get_or_create(&labels).clone()
    };
    match code {
        // `tonic::Code` numbers run 0..=16.
        Some(c) => series.by_code[c as usize]
            .get_or_init(|| requests(label))
            .inc(),
        // Plain HTTP answers (rare: probes and scrapes) go through the family.
        None => requests(label).inc(),
    };
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_become_labels() {
        let m = Metrics::default();
        assert_eq!(
            m.series("/test.v1.TestAuthService/Pong").label,
            "/test.v1.TestAuthService/Pong"
        );
        assert_eq!(m.series("/healthz").label, "/healthz");
        for made_up in [
            "/test.v1.TestAuthService/Pong2",
            "/test.v1.TestAuthService/x8f3a",
            "/grpc.health.v1.Health/Nope",
            "/nothing",
        ] {
            assert_eq!(m.series(made_up).label, "other", "{made_up}");
        }
    }

    #[test]
    fn every_code_has_a_slot() {
        assert_eq!(tonic::Code::Unauthenticated as usize, CODES - 1);
    }
}
