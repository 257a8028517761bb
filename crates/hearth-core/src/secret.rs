//! Bearer secrets (DESIGN.md §3): `<prefix>_` + 27 base62 characters of OS randomness
//! (≥160 bits) + 6 base62 characters of the body's CRC32. The checksum lets the auth layer
//! reject a mistyped or forged token before any database access; only SHA-256 is stored.
use std::fmt;

use rand::{rngs::OsRng, Rng};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 27;
const CHECK_LEN: usize = 6;

/// The kinds of bearer secret, told apart by prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// A user session (`hs_`).
    Session,
    /// A personal access token (`hpat_`).
    PersonalAccessToken,
    /// A token a peer node got through the challenge (`hpeer_`).
    Peer,
    /// A refresh token (`hrt_`).
    Refresh,
}

impl SecretKind {
    const ALL: [SecretKind; 4] = [
        SecretKind::Session,
        SecretKind::PersonalAccessToken,
        SecretKind::Peer,
        SecretKind::Refresh,
    ];

    /// The prefix, without the underscore.
    pub fn prefix(self) -> &'static str {
        match self {
            SecretKind::Session => "hs",
            SecretKind::PersonalAccessToken => "hpat",
            SecretKind::Peer => "hpeer",
            SecretKind::Refresh => "hrt",
        }
    }
}

/// Why a presented token was refused without looking it up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretFormatError {
    /// The prefix names no kind of Hearth token.
    #[error("the token has no known prefix")]
    UnknownPrefix,
    /// Wrong length or characters outside base62.
    #[error("the token is malformed")]
    Malformed,
    /// The checksum does not match the body.
    #[error("the token's checksum does not match")]
    BadChecksum,
}

/// A bearer secret. Zeroized on drop; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerSecret {
    kind: SecretKind,
    text: Zeroizing<String>,
}

impl fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerSecret({:?}, <redacted>)", self.kind)
    }
}

fn base62(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `len` random base62 characters from the OS RNG: ids that are hard to guess (step flows,
/// their handoffs, passkey ceremonies) and the bodies of bearer secrets.
pub fn random_base62(len: usize) -> String {
    let mut rng = OsRng;
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..62)]))
        .collect()
}

fn checksum(body: &str) -> String {
    base62(u64::from(crc32fast::hash(body.as_bytes())), CHECK_LEN)
}

impl BearerSecret {
    /// A fresh secret of `kind` from the OS RNG.
    pub fn generate(kind: SecretKind) -> Self {
        let body = random_base62(BODY_LEN);
        let text = format!("{}_{}{}", kind.prefix(), body, checksum(&body));
        Self {
            kind,
            text: Zeroizing::new(text),
        }
    }

    /// Checks format and checksum; no database is involved.
    pub fn parse(text: &str) -> Result<Self, SecretFormatError> {
        let (prefix, rest) = text
            .split_once('_')
            .ok_or(SecretFormatError::UnknownPrefix)?;
        let kind = SecretKind::ALL
            .into_iter()
            .find(|k| k.prefix() == prefix)
            .ok_or(SecretFormatError::UnknownPrefix)?;
        if rest.len() != BODY_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SecretFormatError::Malformed);
        }
        let (body, check) = rest.split_at(BODY_LEN);
        if checksum(body) != check {
            return Err(SecretFormatError::BadChecksum);
        }
        Ok(Self {
            kind,
            text: Zeroizing::new(text.to_owned()),
        })
    }

    /// Which kind of token this is.
    pub fn kind(&self) -> SecretKind {
        self.kind
    }

    /// The token text, to hand to its owner exactly once.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// SHA-256 of the token: the only form that is stored.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.text.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_round_trip_and_differ() {
        let a = BearerSecret::generate(SecretKind::Session);
        let b = BearerSecret::generate(SecretKind::Session);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("hs_"));
        assert_eq!(a.expose().len(), 3 + BODY_LEN + CHECK_LEN);
        assert_eq!(BearerSecret::parse(a.expose()), Ok(a.clone()));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn a_changed_character_breaks_the_checksum() {
        let t = BearerSecret::generate(SecretKind::PersonalAccessToken);
        let mut s = t.expose().to_owned();
        let i = s.len() - CHECK_LEN - 1;
        let c = if &s[i..=i] == "a" { "b" } else { "a" };
        s.replace_range(i..=i, c);
        assert_eq!(BearerSecret::parse(&s), Err(SecretFormatError::BadChecksum));
        assert_eq!(
            BearerSecret::parse("zz_abc"),
            Err(SecretFormatError::UnknownPrefix)
        );
        assert_eq!(
            BearerSecret::parse("hs_abc"),
            Err(SecretFormatError::Malformed)
        );
    }
}
