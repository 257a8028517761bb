//! The node's ed25519 identity key (DESIGN.md §4.3): generated on first start, stored in the
//! data dir with mode 0600, written atomically, and never silently regenerated.
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

/// File name of the current key inside the data dir.
pub const KEY_FILE: &str = "node.key";

/// Why the key could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("node key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file exists but does not hold a key.
    #[error("node key file {path} is corrupt ({why}). Hearth never replaces an existing key: restore the file from a backup, or move it away to start this node with a new identity")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: &'static str,
    },
}

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

    /// Loads `<dir>/node.key`, or generates and saves one when the file does not exist.
    /// Returns the key and whether it was created now.
    pub fn load_or_generate(dir: &Path) -> Result<(Self, bool), KeyError> {
        let path = dir.join(KEY_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok((Self::decode(&path, &bytes)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                key.save(&path)?;
                Ok((key, true))
            }
            Err(source) => Err(KeyError::Io { path, source }),
        }
    }

    /// Parses the file format: the 32-byte seed as 64 hex characters, optional newline.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Self, KeyError> {
        let corrupt = |why| KeyError::Corrupt {
            path: path.to_owned(),
            why,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not text"))?;
        let seed = Zeroizing::new(hex::decode(text.trim()).map_err(|_| corrupt("not hex"))?);
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("not 32 bytes"))?;
        Ok(Self {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The file format of [`NodeKey::decode`].
    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}\n", hex::encode(self.signing.to_bytes())))
    }

    /// Writes the key to `path` atomically (temp file, fsync, rename) with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("key.tmp");
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all(self.encode().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io)?;
        fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
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
    fn generated_key_persists_with_mode_0600_and_signs() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (a, created) = NodeKey::load_or_generate(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        let (b, created) = NodeKey::load_or_generate(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!created);
        assert_eq!(a.public(), b.public());
        let sig = a.sign(b"hello");
        assert!(verify(&b.public(), b"hello", &sig));
        assert!(!verify(&b.public(), b"hellO", &sig));
        assert_eq!(parse_address(&a.address()), Some(a.public()));
    }

    #[test]
    fn a_corrupt_key_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(KEY_FILE);
        fs::write(&path, "garbage").unwrap_or_else(|e| panic!("{e}"));
        let err = NodeKey::load_or_generate(dir.path())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|m| m.contains("corrupt") && m.contains("never replaces")));
        assert_eq!(fs::read(&path).ok().as_deref(), Some(&b"garbage"[..]));
    }
}
