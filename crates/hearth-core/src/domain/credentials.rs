//! Credentials: one dispatcher turns a bearer credential (session token, personal access
//! token, Hearth JWT) into a [`Principal`] that carries its kind and scopes; the table of which gRPC method needs what lives in `api/auth.rs`.
use std::net::IpAddr;
use std::sync::Arc;

use super::access_tokens::AccessTokens;
use super::error::Reason;
use super::jwts::Jwts;
use super::principal::Principal;
use super::sessions::Sessions;
use super::DomainError;
use crate::secret::{BearerSecret, SecretKind};

/// The dispatcher.
#[derive(Debug)]
pub struct Credentials {
    sessions: Arc<Sessions>,
    tokens: Arc<AccessTokens>,
    jwts: Arc<Jwts>,
}

impl Credentials {
    /// A dispatcher over the credential services.
    pub fn new(sessions: Arc<Sessions>, tokens: Arc<AccessTokens>, jwts: Arc<Jwts>) -> Self {
        Self {
            sessions,
            tokens,
            jwts,
        }
    }

    /// Resolves a bearer credential presented from `ip`. Format and checksum are checked
    /// before any database access; then the credential's kind decides which service
    /// resolves it.
    pub async fn resolve(&self, token: &str, ip: Option<IpAddr>) -> Result<Principal, DomainError> {
        // A Hearth JWT: checked in memory (signature and claims) before anything else.
        if crate::identity::jwt::looks_like(token) {
            return self.jwts.resolve(token).await;
        }
        let secret = BearerSecret::parse(token).map_err(|e| {
            DomainError::unauthenticated(
                Reason::CredentialMalformed,
                format!("{e}; send a Hearth token in `authorization`"),
            )
        })?;
        match secret.kind() {
            SecretKind::Session => self.sessions.resolve(&secret).await,
            SecretKind::PersonalAccessToken => self.tokens.resolve(&secret, ip).await,
            other => Err(DomainError::unauthenticated(
                Reason::CredentialWrongKind,
                format!("a {} token cannot be used here", other.prefix()),
            )),
        }
    }
}
