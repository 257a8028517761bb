//! Who is calling: the [`Principal`] a credential resolves to, its kind and scopes, and the
//! one check of a principal against a method's [`Requirement`]. No dependencies on other
//! services.
use super::error::Reason;
use super::scopes::ScopeSet;
use super::DomainError;

/// Which kind of credential a principal presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A session token (`hs_`).
    Session,
    /// A personal access token (`hpat_`).
    PersonalAccessToken,
    /// A Hearth JWT bound to a session (it holds that session's scopes).
    Jwt,
}

/// Who is calling: resolved from a bearer credential by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: u64,
    /// The session, or for a personal access token the token's id.
    pub session_id: u64,
    /// Which kind of credential it was.
    pub kind: CredentialKind,
    /// What it may do: every scope for a session made by signing in; the token's scopes
    /// for a personal access token and for a session made from one (TokenAuthorization).
    pub scopes: ScopeSet,
    /// SHA-256 of the presented secret (compare-and-swap on refresh needs it).
    pub token_hash: [u8; 32],
    /// The node requires verified e-mail addresses and this account's is not verified yet:
    /// only the calls in [`Principal::check`]'s exception may be made.
    pub email_unverified: bool,
}

/// What a method needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone; a credential, if sent and valid, is still resolved.
    Public,
    /// Any valid credential.
    AnyCredential,
    /// A session (not a token with scopes).
    SessionOnly,
    /// A personal access token (TokenAuthorization exchanges one for a session).
    TokenOnly,
    /// A session or a personal access token holding this scope.
    Scope(&'static str),
}

impl Principal {
    /// Whether this principal may call a method with requirement `r`. An account whose
    /// e-mail must still be verified may only make public calls and those that need
    /// `account:read` (IsEmailVerified), until it is verified.
    pub fn check(&self, r: Requirement) -> Result<(), DomainError> {
        if self.email_unverified
            && !matches!(r, Requirement::Public | Requirement::Scope("account:read"))
        {
            return Err(DomainError::precondition(
                Reason::EmailNotVerified,
                "verify your e-mail address first (see the code we sent, or call ResendEmailVerification)",
            ));
        }
        use CredentialKind::{Jwt, PersonalAccessToken, Session};
        match (r, self.kind) {
            (Requirement::Public | Requirement::AnyCredential, _) => Ok(()),
            (Requirement::SessionOnly, Session) => Ok(()),
            (Requirement::TokenOnly, PersonalAccessToken) => Ok(()),
            (Requirement::Scope(s), _) if self.scopes.has(s) => Ok(()),
            (Requirement::Scope(s), _) => Err(DomainError::denied(
                Reason::CredentialInsufficient,
                format!("this credential lacks the scope `{s}`"),
            )),
            (Requirement::SessionOnly, PersonalAccessToken | Jwt) => Err(DomainError::denied(
                Reason::CredentialInsufficient,
                "this call needs a session token, not another kind of credential",
            )),
            (Requirement::TokenOnly, _) => Err(DomainError::denied(
                Reason::CredentialInsufficient,
                "this call exchanges a personal access token (hpat_…) for a session; \
                 a session token is one already (RefreshSession renews it)",
            )),
        }
    }
}
