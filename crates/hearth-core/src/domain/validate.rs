//! Identity text: e-mail addresses, display names, and text other nodes send. The policy
//! (docs/SECURITY.md): no control or format characters anywhere (zero-width, bidi
//! overrides, soft hyphen); e-mail addresses are NFKC-normalised, their local part must then
//! be ASCII (so `аdmin` in Cyrillic or `admin\u{200b}` cannot pose as `admin`), their domain
//! is converted to its ASCII (IDNA) form and loses a trailing dot; text from peers is
//! bounded and escaped before it is stored or shown.
use unicode_normalization::UnicodeNormalization;

use super::DomainError;

/// Unicode format characters (category Cf) that change how text looks without being
/// seen: zero-width characters, bidi controls, the soft hyphen, the BOM, tag characters.
pub fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{070f}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}'
        | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e0001}' | '\u{e0020}'..='\u{e007f}')
}

/// True for characters that must never appear in identity text.
pub fn is_invisible(c: char) -> bool {
    c.is_control() || is_format(c)
}

/// `text` cut to `max` characters, with control and format characters escaped as `\u{…}`,
/// safe to store, log and print.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if is_invisible(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks and canonicalises an e-mail address: NFKC, an ASCII local part, the domain in
/// IDNA ASCII form without a trailing dot, lower-cased.
pub fn canonical_email(field: &'static str, email: &str) -> Result<String, DomainError> {
    let shown = printable(email.trim(), 64);
    let bad = |why: &str| {
        DomainError::invalid(field, format!("`{shown}` is not an e-mail address: {why}"))
    };
    let email = email.trim();
    if email.is_empty() {
        return Err(DomainError::invalid(field, "is required"));
    }
    if email.len() > 254 * 4 {
        return Err(bad("longer than 254 characters"));
    }
    if email.chars().any(is_invisible) {
        return Err(bad("it contains invisible (control or format) characters"));
    }
    let email: String = email.nfkc().collect();
    if email.chars().any(char::is_whitespace) {
        return Err(bad("it contains spaces"));
    }
    let (local, domain) = email.split_once('@').ok_or_else(|| bad("no '@'"))?;
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if local.is_empty() || domain.is_empty() || domain.contains('@') || !domain.contains('.') {
        return Err(bad("expected name@example.org"));
    }
    if !local.is_ascii() {
        return Err(bad(
            "the part before '@' must be ASCII (letters that look alike are refused)",
        ));
    }
    let domain = idna::domain_to_ascii(domain)
        .map_err(|_| bad("the domain is not a valid internationalised domain name"))?;
    let email = format!("{local}@{domain}");
    if email.len() > 254 {
        return Err(bad("longer than 254 characters"));
    }
    Ok(email.to_lowercase())
}

/// Checks a display name: 1 to 64 visible characters.
pub fn display_name(field: &'static str, name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid(field, "is required"));
    }
    if name.chars().count() > 64 || name.chars().any(is_invisible) {
        return Err(DomainError::invalid(
            field,
            "must be 1 to 64 characters, none of them control or format characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(e: &str) -> String {
        canonical_email("email", e).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn look_alikes_are_refused_or_folded_onto_the_real_address() {
        assert_eq!(ok("Admin@Example.org"), "admin@example.org");
        assert_eq!(ok("admin@example.org."), "admin@example.org");
        assert_eq!(ok("ａｄｍｉｎ@example.org"), "admin@example.org");
        assert_eq!(ok("admin@bücher.example"), "admin@xn--bcher-kva.example");
        for bad in [
            "\u{0430}dmin@example.org",
            "admin\u{200b}@example.org",
            "admin\u{202e}@example.org",
            "ad\u{00ad}min@example.org",
            "admin@exa\u{200d}mple.org",
        ] {
            assert!(canonical_email("email", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_refuse_invisible_characters_and_printing_escapes_them() {
        assert!(display_name("name", "Eve\u{202e}gnp.exe").is_err());
        assert!(display_name("name", "Zero\u{200b}Width").is_err());
        assert!(display_name("name", "Ünïcödé ok").is_ok());
        assert_eq!(printable("a\u{1b}[31mb\nc", 100), "a\\u{1b}[31mb\\u{a}c");
        assert_eq!(printable(&"x".repeat(10), 3), "xxx…");
    }
}
