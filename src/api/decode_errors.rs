//! Requests that do not decode (bad UTF-8, truncated, wrong wire type, broken gRPC or
//! gRPC-Web framing) are the caller's mistake: tonic answers them INTERNAL; this layer turns
//! that answer into INVALID_ARGUMENT naming the request message, with reason
//! `FIELD_INVALID` and field `request`.
use std::collections::HashMap;
use std::sync::OnceLock;

use axum::response::Response;
use prost::Message;

use crate::domain::DomainError;

/// What tonic's message for an undecodable request starts with.
const DECODE_FAILURE: &str = "failed to decode Protobuf message";
/// What tonic and tonic-web say of a body whose framing is broken (a frame cut short,
/// gRPC-Web text that is not base64).
const FRAMING_FAILURES: &[&str] = &["Unexpected EOF decoding stream", "tonic-web:"];

/// `/pkg.Service/Method` → `pkg.RequestMessage`, from the served descriptor set.
fn request_types() -> &'static HashMap<String, String> {
    static TYPES: OnceLock<HashMap<String, String>> = OnceLock::new();
    TYPES.get_or_init(|| {
        let set = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET)
            .unwrap_or_default();
        let mut map = HashMap::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    map.insert(
                        format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                        method.input_type().trim_start_matches('.').to_owned(),
                    );
                }
            }
        }
        map
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `res`, tonic's answer to a call of `path`, with a decoding failure made the caller's.
pub fn answer(path: &str, res: Response) -> Response {
    let internal = res
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"13");
    if !internal {
        return res;
    }
    let message = res
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    // A body cut short, or gRPC-Web framing that does not decode: the caller's mistake too.
    if FRAMING_FAILURES.iter().any(|f| message.starts_with(f)) {
        let detail: String = message.chars().take(200).collect();
        return crate::api::status::status(DomainError::invalid(
            "request",
            format!("the request's framing is malformed ({detail})"),
        ))
        .into_http::<axum::body::Body>();
    }
    let Some(detail) = message.strip_prefix(DECODE_FAILURE) else {
        return res;
    };
    let name = request_types().get(path).map_or("request", String::as_str);
    let detail: String = detail
        .trim_start_matches(':')
        .trim()
        .chars()
        .take(200)
        .collect();
    crate::api::status::status(DomainError::invalid(
        "request",
        format!("the request is not a valid {name} message ({detail})"),
    ))
    .into_http::<axum::body::Body>()
}
