//! The one conversion from [`DomainError`] to `tonic::Status`: the gRPC code of its kind, a
//! bounded message, and `google.rpc.ErrorInfo` with the stable reason code (and the field,
//! for bad input). Internal details are logged here, inside the request's span, and never
//! sent.
use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{DomainError, ErrorKind};

/// The `ErrorInfo.domain` of every refusal.
pub const ERROR_DOMAIN: &str = "hearth";
/// Longest message sent back (input echoed in messages is cut to fit).
pub const MAX_MESSAGE: usize = 1024;
const INTERNAL: &str = "internal error; the operator can find details in the node's log";

fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Unimplemented => Code::Unimplemented,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The message the caller sees: bounded, and never an internal detail.
fn public_message(e: &DomainError) -> String {
    if e.kind == ErrorKind::Internal {
        tracing::error!(detail = %e.message, "internal error");
        return INTERNAL.to_owned();
    }
    let text = e.to_string();
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The one mapping of a domain error to a gRPC status (code, bounded message, reason in
/// `ErrorInfo`). A function, not `From`: both types live in other crates.
pub fn status(e: DomainError) -> Status {
    let message = public_message(&e);
    let mut metadata = HashMap::new();
    if let Some(field) = e.field {
        metadata.insert("field".to_owned(), field.to_owned());
    }
    let details = ErrorDetails::with_error_info(e.reason.as_str(), ERROR_DOMAIN, metadata);
    Status::with_error_details(code(e.kind), message, details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Reason;

    #[test]
    fn refusals_carry_their_reason_and_bounded_messages() {
        let s = status(DomainError::invalid("email", "x".repeat(5000)));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().chars().count() <= MAX_MESSAGE + 1);
        let info = s.get_details_error_info();
        assert_eq!(
            info.as_ref().map(|i| i.reason.as_str()),
            Some("FIELD_INVALID")
        );
        assert_eq!(
            info.and_then(|i| i.metadata.get("field").cloned())
                .as_deref(),
            Some("email")
        );
        let s = status(DomainError::internal("the database is closed"));
        assert!(!s.message().contains("database"));
        assert_eq!(
            s.get_details_error_info().map(|i| i.reason),
            Some(Reason::Internal.as_str().to_owned())
        );
    }

    #[test]
    fn reason_codes_are_unique_screaming_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{s}"
            );
        }
    }
}
