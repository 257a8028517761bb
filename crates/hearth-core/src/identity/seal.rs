//! Secrets the nodes of a cluster hand each other through their shared database (a rotated
//! node key, the JWT signing keys), sealed under the node key every node already holds:
//! ChaCha20-Poly1305 under a key derived from the node key for one purpose, a random nonce
//! in front. The database alone opens nothing; a node key opens only what was sealed for it.
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use zeroize::Zeroizing;

use super::key::NodeKey;

fn aead(key: &NodeKey, purpose: &str) -> Option<LessSafeKey> {
    let secret = key.derive(&format!("seal {purpose}"));
    UnboundKey::new(&CHACHA20_POLY1305, secret.as_slice())
        .ok()
        .map(LessSafeKey::new)
}

/// `plain` sealed under `key` for `purpose` (nonce ‖ ciphertext ‖ tag).
pub fn seal(key: &NodeKey, purpose: &str, plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let mut out = plain.to_vec();
    let sealed = aead(key, purpose).and_then(|k| {
        k.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(purpose.as_bytes()),
            &mut out,
        )
        .ok()
    });
    match sealed {
        Some(()) => [&nonce[..], &out].concat(),
        // ChaCha20-Poly1305 takes any 32-byte key and any message this small.
        None => Vec::new(),
    }
}

/// What [`seal`] sealed under `key` for `purpose`; `None` when another key or purpose
/// sealed it, or it was altered.
pub fn open(key: &NodeKey, purpose: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = Zeroizing::new(body.to_vec());
    let plain = aead(key, purpose)?
        .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buf)
        .ok()?
        .len();
    buf.truncate(plain);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_purpose() {
        let (a, b) = (NodeKey::generate(), NodeKey::generate());
        let sealed = seal(&a, "node key", b"the next key");
        assert!(!sealed.windows(4).any(|w| w == b"next"), "not in the clear");
        assert_eq!(
            open(&a, "node key", &sealed).as_deref().map(Vec::as_slice),
            Some(&b"the next key"[..])
        );
        assert!(open(&b, "node key", &sealed).is_none(), "another key");
        assert!(open(&a, "jwt keys", &sealed).is_none(), "another purpose");
        let mut bent = sealed.clone();
        if let Some(x) = bent.last_mut() {
            *x ^= 1;
        }
        assert!(open(&a, "node key", &bent).is_none(), "altered");
        assert_ne!(
            seal(&a, "node key", b"x"),
            seal(&a, "node key", b"x"),
            "fresh nonce"
        );
    }
}
