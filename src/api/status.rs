//! The one conversion from [`DomainError`] to `tonic::Status`. Internal details are logged
//! here and never sent.
use tonic::Status;

use crate::domain::DomainError;

impl From<DomainError> for Status {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::InvalidArgument { .. } => Status::invalid_argument(e.to_string()),
            DomainError::Unauthenticated(m) => Status::unauthenticated(m),
            DomainError::PermissionDenied(m) => Status::permission_denied(m),
            DomainError::NotFound(m) => Status::not_found(m),
            DomainError::AlreadyExists(m) => Status::already_exists(m),
            DomainError::FailedPrecondition(m) => Status::failed_precondition(m),
            DomainError::ResourceExhausted(m) => Status::resource_exhausted(m),
            DomainError::Unavailable(m) => Status::unavailable(m),
            DomainError::Unimplemented(m) => Status::unimplemented(m),
            DomainError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error; the operator can find details in the node's log")
            }
        }
    }
}

/// UNIMPLEMENTED naming the method, for RPCs a later version builds.
pub fn unimplemented(method: &str) -> Status {
    Status::unimplemented(format!(
        "{method} is not implemented by this version of Hearth yet"
    ))
}
