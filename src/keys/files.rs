//! Keys on disk: the node key (DESIGN.md §4.3), generated on first start, stored in the
//! data dir with mode 0600, written atomically, never silently regenerated; and the JWT
//! signing keys (`jwt.keys`, DESIGN.md §5: the current key and the one it replaced, which
//! verifies until the tokens it signed have expired). Files only: what a rotation writes to
//! the database is in `operations.rs`.
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::identity::jwt::{JwtKey, JwtKeys};
use crate::identity::key::NodeKey;

/// File name of the current key inside the data dir.
pub const KEY_FILE: &str = "node.key";

/// Why the key could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("node key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds the data dir.
    #[error("data_dir {dir} is in use by another Hearth process (a running node, or `hearth key rotate`/`import`); stop it first, or give this one its own data_dir")]
    Busy {
        /// The data dir.
        dir: PathBuf,
    },
    /// The file exists but does not hold a key.
    #[error("node key file {path} is corrupt ({why}). Hearth never replaces an existing key: restore the file from a backup, or move it away to start this node with a new identity")]
    Corrupt {
        path: PathBuf,
        /// What is wrong.
        why: &'static str,
    },
}

/// File locked by whoever may change the node's identity (a running node, `key rotate`,
/// `key import`); two of them never run on one data dir.
pub const LOCK_FILE: &str = "hearth.lock";

/// An exclusive lock on a data dir, held until dropped.
#[derive(Debug)]
pub struct DataDirLock(#[allow(dead_code)] fs::File);

impl DataDirLock {
    /// Takes the lock, or says who holds it.
    pub fn take(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self(file)),
            Err(fs::TryLockError::WouldBlock) => Err(KeyError::Busy {
                dir: dir.to_owned(),
            }),
            Err(fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

/// Loads `<dir>/node.key`, or generates and saves one when the file does not exist.
/// Returns the key and whether it was created now.
pub fn load_or_generate(dir: &Path) -> Result<(NodeKey, bool), KeyError> {
    let path = dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok((decode(&path, &bytes)?, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = NodeKey::generate();
            save(&key, &path)?;
            Ok((key, true))
        }
        Err(source) => Err(KeyError::Io { path, source }),
    }
}

/// Parses a key file's bytes; the error names the file.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<NodeKey, KeyError> {
    NodeKey::from_text(bytes).map_err(|why| KeyError::Corrupt {
        path: path.to_owned(),
        why,
    })
}

/// Writes `key` to `path` atomically (temp file, fsync, rename) with mode 0600.
pub fn save(key: &NodeKey, path: &Path) -> Result<(), KeyError> {
    write_secret(path, key.encode().as_bytes())
}

/// Writes secret `bytes` to `path` atomically (temp file, fsync, rename) with mode 0600.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// File name of the JWT signing keys inside the data dir.
pub const JWT_KEYS_FILE: &str = "jwt.keys";

/// How `jwt.keys` is written (also sealed into a cluster's database): one line per key,
/// `kid seed-hex retired-at` (0: current).
pub trait JwtKeysFile: Sized {
    /// The text form.
    fn encode(&self) -> zeroize::Zeroizing<String>;
    /// Parses the text form; errors name `path`.
    fn decode(path: &Path, text: &str) -> Result<Self, KeyError>;
}

impl JwtKeysFile for JwtKeys {
    fn encode(&self) -> zeroize::Zeroizing<String> {
        let line =
            |k: &JwtKey, retired: u64| format!("{} {} {retired}\n", k.kid, k.key.encode().trim());
        let mut text = line(&self.current, 0);
        if let Some((k, at)) = &self.previous {
            text.push_str(&line(k, *at));
        }
        zeroize::Zeroizing::new(text)
    }

    fn decode(path: &Path, text: &str) -> Result<Self, KeyError> {
        let corrupt = |why| KeyError::Corrupt {
            path: path.to_owned(),
            why,
        };
        let mut keys = text.lines().filter(|l| !l.trim().is_empty()).map(|line| {
            let mut f = line.split_whitespace();
            let (Some(kid), Some(seed), Some(at)) = (f.next(), f.next(), f.next()) else {
                return Err(corrupt("a line is not `kid seed retired_at`"));
            };
            let key = NodeKey::from_text(seed.as_bytes()).map_err(corrupt)?;
            let at: u64 = at
                .parse()
                .map_err(|_| corrupt("a retirement time is not a number"))?;
            Ok((
                JwtKey {
                    kid: kid.to_owned(),
                    key,
                },
                at,
            ))
        });
        let (current, _) = keys.next().ok_or_else(|| corrupt("no key"))??;
        let previous = keys.next().transpose()?;
        Ok(Self { current, previous })
    }
}

fn new_jwt_key() -> JwtKey {
    use sha2::Digest;
    let key = NodeKey::generate();
    let kid = hex::encode(&sha2::Sha256::digest(key.public())[..8]);
    JwtKey { kid, key }
}

/// The JWT keys of `data_dir`, made on first use.
pub fn load_or_generate_jwt(data_dir: &Path) -> Result<JwtKeys, KeyError> {
    let path = data_dir.join(JWT_KEYS_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => JwtKeys::decode(&path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = JwtKeys {
                current: new_jwt_key(),
                previous: None,
            };
            write_secret(&path, keys.encode().as_bytes())?;
            Ok(keys)
        }
        Err(source) => Err(KeyError::Io { path, source }),
    }
}

/// Writes the text of JWT keys as `data_dir`'s `jwt.keys`.
pub fn save_jwt_text(data_dir: &Path, text: &str) -> Result<(), KeyError> {
    write_secret(&data_dir.join(JWT_KEYS_FILE), text.as_bytes())
}

/// Makes a new current JWT key; the old one is kept as the previous key, retired `now`
/// (unix seconds). A key retired before it is dropped. Rotate while the node is stopped.
pub fn rotate_jwt(data_dir: &Path, now: u64) -> Result<JwtKeys, KeyError> {
    let old = load_or_generate_jwt(data_dir)?;
    let keys = JwtKeys {
        current: new_jwt_key(),
        previous: Some((old.current, now)),
    };
    write_secret(&data_dir.join(JWT_KEYS_FILE), keys.encode().as_bytes())?;
    tracing::info!(target: "hearth::audit", event = "jwt_key_rotated", kid = %keys.current.kid);
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::key::verify;

    #[test]
    fn generated_key_persists_with_mode_0600_and_signs() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (a, created) = load_or_generate(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        let (b, created) = load_or_generate(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!created);
        assert_eq!(a.public(), b.public());
        assert!(verify(&b.public(), b"hello", &a.sign(b"hello")));
    }

    #[test]
    fn a_corrupt_key_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(KEY_FILE);
        fs::write(&path, "garbage").unwrap_or_else(|e| panic!("{e}"));
        let err = load_or_generate(dir.path()).err().map(|e| e.to_string());
        assert!(err.is_some_and(|m| m.contains("corrupt") && m.contains("never replaces")));
        assert_eq!(fs::read(&path).ok().as_deref(), Some(&b"garbage"[..]));
    }

    #[test]
    fn jwt_keys_persist_and_rotation_keeps_the_previous_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = load_or_generate_jwt(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let b = load_or_generate_jwt(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.current.kid, b.current.kid);
        assert_eq!(a.current.key.public(), b.current.key.public());
        let mode = fs::metadata(dir.path().join(JWT_KEYS_FILE))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        let r = rotate_jwt(dir.path(), 1_000).unwrap_or_else(|e| panic!("{e}"));
        let c = load_or_generate_jwt(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(c.current.kid, a.current.kid);
        assert_eq!(c.current.kid, r.current.kid);
        assert_eq!(c.public(60)[1].valid_until, Some(1_060));
        let (prev, at) = c.previous.unwrap_or_else(|| panic!("kept"));
        assert_eq!((prev.kid, at), (a.current.kid, 1_000));
    }
}
