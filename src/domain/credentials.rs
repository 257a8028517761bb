//! Credentials: one dispatcher turns a bearer credential into a [`Principal`] that carries
//! its kind; the table of which gRPC method needs what lives in `api/auth.rs`.
use std::sync::Arc;

use super::error::Reason;
use super::principal::Principal;
use super::sessions::Sessions;
use super::DomainError;
use crate::secret::{BearerSecret, SecretKind};

/// The dispatcher.
#[derive(Debug)]
pub struct Credentials {
    sessions: Arc<Sessions>,
}

impl Credentials {
    /// A dispatcher over the credential services.
    pub fn new(sessions: Arc<Sessions>) -> Self {
        Self { sessions }
    }

    /// Resolves a bearer credential. Format and checksum are checked before any database
    /// access; then the credential's kind decides which service resolves it.
    pub async fn resolve(&self, token: &str) -> Result<Principal, DomainError> {
        let secret = BearerSecret::parse(token).map_err(|e| {
            DomainError::unauthenticated(
                Reason::CredentialMalformed,
                format!("{e}; send a Hearth token in `authorization`"),
            )
        })?;
        match secret.kind() {
            SecretKind::Session => self.sessions.resolve(&secret).await,
            other => Err(DomainError::unauthenticated(
                Reason::CredentialWrongKind,
                format!("a {} token cannot be used here", other.prefix()),
            )),
        }
    }
}
