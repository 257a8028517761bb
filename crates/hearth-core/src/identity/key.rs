//! The node's ed25519 identity key and key addresses (DESIGN.md §4.3). Pure: keeping the key
//! in a file is the job of `keys/files.rs` in the server crate.
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

/// The node's signing key. `Debug` never prints the secret.
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.address())
    }
}

impl NodeKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut OsRng),
        }
    }

    /// Parses the text form: the 32-byte seed as 64 hex characters, optional newline.
    /// The error says what is wrong.
    pub fn from_text(bytes: &[u8]) -> Result<Self, &'static str> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not text")?;
        let seed = Zeroizing::new(hex::decode(text.trim()).map_err(|_| "not hex")?);
        let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| "not 32 bytes")?;
        Ok(Self {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The text form of [`NodeKey::from_text`].
    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}\n", hex::encode(self.signing.to_bytes())))
    }

    /// The raw 32-byte public key.
    pub fn public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// `ed25519:` + lowercase hex of the public key.
    pub fn address(&self) -> String {
        address_of(&self.public())
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// A 32-byte secret for `purpose`, derived from the seed (HMAC-SHA256 as a PRF), so
    /// whoever holds this key can make it and nobody else can.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        use hmac::{Hmac, Mac};
        let seed = Zeroizing::new(self.signing.to_bytes());
        let mut mac = match <Hmac<sha2::Sha256> as Mac>::new_from_slice(seed.as_slice()) {
            Ok(m) => m,
            // HMAC takes keys of any length.
            Err(_) => unreachable!(),
        };
        mac.update(b"hearth derive v1\0");
        mac.update(purpose.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
}

/// The address form of a public key.
pub fn address_of(public: &[u8; 32]) -> String {
    format!("ed25519:{}", hex::encode(public))
}

/// Parses an `ed25519:<64 lowercase hex>` address.
pub fn parse_address(address: &str) -> Option<[u8; 32]> {
    let hex_part = address.strip_prefix("ed25519:")?;
    if hex_part.len() != 64 || hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(hex_part).ok()?.try_into().ok()
}

/// Verifies an ed25519 signature; any malformed input is simply `false`.
pub fn verify(public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(public) = <[u8; 32]>::try_from(public) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&public) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(sig) else {
        return false;
    };
    key.verify(msg, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_and_round_trip_through_text() {
        let a = NodeKey::generate();
        let b = NodeKey::from_text(a.encode().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.public(), b.public());
        let sig = a.sign(b"hello");
        assert!(verify(&b.public(), b"hello", &sig));
        assert!(!verify(&b.public(), b"hellO", &sig));
        assert_eq!(parse_address(&a.address()), Some(a.public()));
        assert!(NodeKey::from_text(b"garbage").is_err());
    }
}
