//! Checks and canonical forms of user-supplied identity text: e-mail addresses and display
//! names. Shared by accounts, codes and federation.
use super::DomainError;

/// Checks and canonicalises an e-mail address (lower-cased; one `@`; no spaces).
pub fn canonical_email(field: &'static str, email: &str) -> Result<String, DomainError> {
    let email = email.trim();
    let shown: String = email.chars().take(64).collect();
    let bad = |why: &str| {
        DomainError::invalid(field, format!("`{shown}` is not an e-mail address: {why}"))
    };
    if email.is_empty() {
        return Err(DomainError::invalid(field, "is required"));
    }
    if email.len() > 254 {
        return Err(bad("longer than 254 characters"));
    }
    let (local, domain) = email.split_once('@').ok_or_else(|| bad("no '@'"))?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') || !domain.contains('.') {
        return Err(bad("expected name@example.org"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains spaces"));
    }
    Ok(email.to_lowercase())
}

/// Checks a display name: 1 to 64 printable characters.
pub fn display_name(field: &'static str, name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid(field, "is required"));
    }
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must be 1 to 64 printable characters",
        ));
    }
    Ok(name.to_owned())
}
