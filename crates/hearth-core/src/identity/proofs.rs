//! The exact bytes nodes sign (DESIGN.md §4.3, §4.4, §4.7), and key-chain verification. Pure
//! functions: other implementations must produce the same bytes to interoperate.
use super::key::{address_of, verify};

/// A rotation record as carried by `KeyResponse.history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The retired key.
    pub old_key: Vec<u8>,
    /// The key that replaced it.
    pub new_key: Vec<u8>,
    /// When (unix ms).
    pub at: u64,
    /// The old key's signature over [`rotation_message`].
    pub sig: Vec<u8>,
}

/// `hearth-peer-server-proof-v1`: the server's signature over the client's challenge.
pub fn server_proof(
    server: &str,
    server_addr: &str,
    client: &str,
    client_addr: &str,
    client_challenge: &[u8],
) -> String {
    [
        "hearth-peer-server-proof-v1",
        server,
        server_addr,
        client,
        client_addr,
        &hex::encode(client_challenge),
    ]
    .join("\n")
}

/// `hearth-revocation-notice-v1`: a home node's notice that `home_session` of its user
/// `user_id` ended, for node `target`, signed at `at` (unix ms).
pub fn revocation_notice(
    home: &str,
    target: &str,
    user_id: u64,
    home_session: u64,
    at: u64,
) -> String {
    format!("hearth-revocation-notice-v1\n{home}\n{target}\n{user_id}\n{home_session}\n{at}")
}

/// `hearth-peer-challenge-v1`: the client's signature over the server's challenge.
pub fn client_proof(
    server: &str,
    server_addr: &str,
    client: &str,
    client_addr: &str,
    server_challenge: &str,
) -> String {
    [
        "hearth-peer-challenge-v1",
        server,
        server_addr,
        client,
        client_addr,
        server_challenge,
    ]
    .join("\n")
}

/// `hearth-key-rotation-v1`: what the old key signs when it hands over to `new_key`.
pub fn rotation_message(new_key: &[u8], at: u64) -> String {
    [
        "hearth-key-rotation-v1",
        &hex::encode(new_key),
        &at.to_string(),
    ]
    .join("\n")
}

/// Why a key change was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// More records than any real node's history (a hostile peer's way to make a node
    /// verify signatures by the thousand).
    #[error("the rotation history has {0} records, more than the {MAX_ROTATIONS} accepted")]
    TooLong(usize),
    /// A record on the path has a bad signature.
    #[error("the rotation record to {0} has an invalid signature")]
    BadSignature(String),
    /// No unbroken chain leads from the pinned key to the new one.
    #[error("no valid rotation chain leads from the pinned key {pinned} to {offered}")]
    Broken {
        /// The pinned key's address.
        pinned: String,
        /// The offered key's address.
        offered: String,
    },
}

/// Rotation records a history may hold: a node that rotated its key every day for almost
/// three years. Longer histories are refused before any signature is checked.
pub const MAX_ROTATIONS: usize = 1024;

/// Follows `history` (oldest first) from `pinned`; `Ok(at)` of the last step when it ends at
/// `offered` with every signature valid.
pub fn follow_chain(
    pinned: &[u8; 32],
    offered: &[u8; 32],
    history: &[Rotation],
) -> Result<u64, ChainError> {
    if history.len() > MAX_ROTATIONS {
        return Err(ChainError::TooLong(history.len()));
    }
    let mut current = pinned.to_vec();
    let mut last_at = 0;
    for r in history {
        if r.old_key != current {
            continue;
        }
        if !verify(
            &current,
            rotation_message(&r.new_key, r.at).as_bytes(),
            &r.sig,
        ) {
            return Err(ChainError::BadSignature(hex::encode(&r.new_key)));
        }
        current = r.new_key.clone();
        last_at = r.at;
    }
    if current == offered {
        Ok(last_at)
    } else {
        Err(ChainError::Broken {
            pinned: address_of(pinned),
            offered: address_of(offered),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::key::NodeKey;

    fn rotate(from: &NodeKey, to: &NodeKey, at: u64) -> Rotation {
        Rotation {
            old_key: from.public().to_vec(),
            new_key: to.public().to_vec(),
            at,
            sig: from
                .sign(rotation_message(&to.public(), at).as_bytes())
                .to_vec(),
        }
    }

    #[test]
    fn messages_are_six_lines_without_a_trailing_newline() {
        let m = client_proof("b.org", "ed25519:bb", "a.org", "ed25519:aa", "Q2hhbGxlbmdl");
        assert_eq!(
            m,
            "hearth-peer-challenge-v1\nb.org\ned25519:bb\na.org\ned25519:aa\nQ2hhbGxlbmdl"
        );
        let m = server_proof("b.org", "ed25519:bb", "a.org", "ed25519:aa", &[0xab, 0x01]);
        assert!(m.ends_with("\ned25519:aa\nab01"));
        assert_eq!(
            rotation_message(&[1, 2], 7),
            "hearth-key-rotation-v1\n0102\n7"
        );
    }

    #[test]
    fn a_chain_is_followed_only_when_every_link_is_signed() {
        let (k1, k2, k3) = (
            NodeKey::generate(),
            NodeKey::generate(),
            NodeKey::generate(),
        );
        let history = vec![rotate(&k1, &k2, 10), rotate(&k2, &k3, 20)];
        assert_eq!(follow_chain(&k1.public(), &k3.public(), &history), Ok(20));
        assert_eq!(follow_chain(&k2.public(), &k3.public(), &history), Ok(20));
        assert_eq!(follow_chain(&k3.public(), &k3.public(), &history), Ok(0));
        // A record signed by the wrong key breaks the chain.
        let mut forged = history.clone();
        forged[1] = Rotation {
            sig: k3
                .sign(rotation_message(&k3.public(), 20).as_bytes())
                .to_vec(),
            ..forged[1].clone()
        };
        assert!(matches!(
            follow_chain(&k1.public(), &k3.public(), &forged),
            Err(ChainError::BadSignature(_))
        ));
        // A key nobody rotated to is refused.
        let stranger = NodeKey::generate();
        assert!(matches!(
            follow_chain(&k1.public(), &stranger.public(), &history),
            Err(ChainError::Broken { .. })
        ));
    }
}
