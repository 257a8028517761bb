//! Hearth's JWTs (DESIGN.md §5): EdDSA over ed25519, pure (no I/O, no clock of its own).
//! The verifier accepts exactly one shape — header `{"alg":"EdDSA","typ":"JWT","kid":…}`
//! and nothing that names other keys (`jku`, `jwk`, `x5u`, `x5c`, `crit`) — so `alg: none`,
//! HS256 signed with the public key, RS256 and key injection are refused before any
//! signature check.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::key::NodeKey;

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer (the node's server_id).
    pub iss: String,
    /// Subject (the user id, as text).
    pub sub: String,
    /// Audience (`[jwt] audience`).
    pub aud: String,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Not before (unix seconds).
    pub nbf: u64,
    /// Expiry (unix seconds).
    pub exp: u64,
    /// Token id (random).
    pub jti: String,
    /// The session the token belongs to (its id, as text).
    pub sid: String,
}

/// A signing key with its key id.
#[derive(Debug, Clone)]
pub struct JwtKey {
    /// The key id (`kid`).
    pub kid: String,
    pub key: NodeKey,
}

/// The JWT signing keys: the current one, and the one it replaced with its retirement time
/// (unix seconds). `keys/files.rs` (server crate) keeps them on disk.
#[derive(Debug, Clone)]
pub struct JwtKeys {
    /// Signs new tokens.
    pub current: JwtKey,
    /// Verifies the tokens it signed until they expire.
    pub previous: Option<(JwtKey, u64)>,
}

impl JwtKeys {
    /// The keys a token may be checked with; a retired key only until `lifetime_secs`
    /// after its retirement (no token it signed lives longer).
    pub fn public(&self, lifetime_secs: u64) -> Vec<PublicJwk> {
        let mut keys = vec![PublicJwk {
            kid: self.current.kid.clone(),
            public: self.current.key.public(),
            valid_until: None,
        }];
        if let Some((k, retired)) = &self.previous {
            keys.push(PublicJwk {
                kid: k.kid.clone(),
                public: k.key.public(),
                valid_until: Some(retired + lifetime_secs),
            });
        }
        keys
    }
}

/// A public key a token may be checked with, and until when (unix seconds; `None`: the
/// current key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// The key id.
    pub kid: String,
    /// The raw ed25519 public key.
    pub public: [u8; 32],
    /// A retired key verifies only until this time.
    pub valid_until: Option<u64>,
}

impl PublicJwk {
    /// The JWK (RFC 8037) of this key, for `/.well-known/jwks.json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": self.kid, "x": B64.encode(self.public),
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// Signs `claims` with `key`.
pub fn sign(key: &JwtKey, claims: &Claims) -> String {
    let header = Header {
        alg: "EdDSA".into(),
        typ: "JWT".into(),
        kid: key.kid.clone(),
    };
    let head = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
    let body = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let input = format!("{head}.{body}");
    let sig = B64.encode(key.key.sign(input.as_bytes()));
    format!("{input}.{sig}")
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// A header other than `{"alg":"EdDSA","typ":"JWT","kid":…}`.
    #[error("the token's header is not allowed: {0}")]
    Header(String),
    /// The `kid` names no key (or a retired key past its grace period).
    #[error("the token names an unknown or retired key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    Signature,
    /// Wrong `iss` or `aud`.
    #[error("the token was issued for {0}")]
    WrongParty(&'static str),
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYet,
}

/// What a verifier expects.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// `aud`.
    pub audience: &'a str,
    /// Now (unix seconds).
    pub now: u64,
    /// Seconds of clock skew allowed on `nbf` and `exp`.
    pub leeway: u64,
}

/// Whether `token` looks like a JWT at all (three dot-separated parts, a JSON header).
pub fn looks_like(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Verifies `token` against `keys` and `expect`; returns its claims.
pub fn verify(token: &str, keys: &[PublicJwk], expect: &Expect<'_>) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let raw_header = B64.decode(head).map_err(|_| JwtError::Malformed)?;
    let loose: serde_json::Value =
        serde_json::from_slice(&raw_header).map_err(|_| JwtError::Malformed)?;
    for forbidden in ["jku", "jwk", "x5u", "x5c", "crit"] {
        if loose.get(forbidden).is_some() {
            return Err(JwtError::Header(format!("`{forbidden}` is never honoured")));
        }
    }
    let header: Header = serde_json::from_value(loose)
        .map_err(|e| JwtError::Header(format!("expected alg, typ and kid only ({e})")))?;
    if header.alg != "EdDSA" {
        return Err(JwtError::Header(format!(
            "alg `{}` (only EdDSA is accepted)",
            header.alg.chars().take(16).collect::<String>()
        )));
    }
    if header.typ != "JWT" {
        return Err(JwtError::Header("typ must be JWT".into()));
    }
    let key = keys
        .iter()
        .find(|k| k.kid == header.kid)
        .filter(|k| k.valid_until.is_none_or(|until| expect.now < until))
        .ok_or(JwtError::UnknownKey)?;
    let sig = B64.decode(sig).map_err(|_| JwtError::Malformed)?;
    let input = &token[..head.len() + 1 + body.len()];
    if !super::key::verify(&key.public, input.as_bytes(), &sig) {
        return Err(JwtError::Signature);
    }
    let claims: Claims = B64
        .decode(body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    if claims.iss != expect.issuer {
        return Err(JwtError::WrongParty("another issuer"));
    }
    if claims.aud != expect.audience {
        return Err(JwtError::WrongParty("another audience"));
    }
    if expect.now >= claims.exp + expect.leeway {
        return Err(JwtError::Expired);
    }
    if expect.now + expect.leeway < claims.nbf {
        return Err(JwtError::NotYet);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: u64) -> Claims {
        Claims {
            iss: "alpha.example.org".into(),
            sub: "42".into(),
            aud: "hearth".into(),
            iat: now,
            nbf: now,
            exp: now + 3600,
            jti: "j".into(),
            sid: "7".into(),
        }
    }

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let key = JwtKey {
            kid: "k1".into(),
            key: NodeKey::generate(),
        };
        let public = [PublicJwk {
            kid: "k1".into(),
            public: key.key.public(),
            valid_until: None,
        }];
        let expect = Expect {
            issuer: "alpha.example.org",
            audience: "hearth",
            now: 1_000,
            leeway: 0,
        };
        let token = sign(&key, &claims(1_000));
        assert!(looks_like(&token));
        assert_eq!(verify(&token, &public, &expect), Ok(claims(1_000)));
        let mut forged = token.clone();
        forged.replace_range(token.len() - 5..token.len() - 4, "A");
        if forged != token {
            assert!(verify(&forged, &public, &expect).is_err());
        }
        let late = Expect {
            now: 4_600,
            ..expect.clone()
        };
        assert_eq!(verify(&token, &public, &late), Err(JwtError::Expired));
        let early = Expect { now: 999, ..expect };
        assert_eq!(verify(&token, &public, &early), Err(JwtError::NotYet));
    }
}
