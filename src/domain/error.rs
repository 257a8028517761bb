//! The one domain error enum. Variants are stable; `api::status` maps each to exactly one
//! gRPC code. Messages are safe to show the caller; `Internal` details are only logged.
use crate::store::StoreError;

/// Every way a domain operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A request field is wrong; `field` names it.
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The field, as the caller named it.
        field: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// No valid credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid credential that may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The thing does not exist (only where saying so leaks nothing).
    #[error("{0}")]
    NotFound(String),
    /// The thing exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is fine but the state does not allow it now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Throttled.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency (another node, DNS) could not be reached.
    #[error("{0}")]
    Unavailable(String),
    /// Not built yet.
    #[error("{0}")]
    Unimplemented(String),
    /// A bug or an I/O failure; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// Shorthand for [`DomainError::InvalidArgument`].
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::InvalidArgument {
            field,
            message: message.into(),
        }
    }
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => {
                DomainError::AlreadyExists(format!("{what} is already taken"))
            }
            other => DomainError::Internal(other.to_string()),
        }
    }
}
