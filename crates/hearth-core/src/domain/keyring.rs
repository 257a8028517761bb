//! The keys this node signs with: its identity key with the rotation history peers follow,
//! and the JWT keys. A node of one machine keeps them for its life; in a cluster they are
//! swapped whole when another node rotates (`keys/cluster.rs`), so each caller takes one
//! [`KeySet`] per operation and signs and names itself with the same key.
use std::sync::{Arc, RwLock};

use super::model::KeyRotation;
use crate::identity::jwt::{JwtKeys, PublicJwk};
use crate::identity::key::NodeKey;

/// One consistent set of keys.
#[derive(Debug)]
pub struct KeySet {
    /// The node's identity key.
    pub node: NodeKey,
    /// Its rotation records, oldest first.
    pub history: Vec<KeyRotation>,
    /// The JWT signing keys.
    pub jwt: JwtKeys,
    /// The JWT keys tokens are checked with (a retired one until its grace ends).
    pub jwt_public: Vec<PublicJwk>,
}

/// The current [`KeySet`], replaceable while the node serves.
#[derive(Debug)]
pub struct KeyRing {
    current: RwLock<Arc<KeySet>>,
    jwt_lifetime_s: u64,
}

impl KeyRing {
    /// A ring holding these keys; a retired JWT key verifies for `jwt_lifetime_s` more.
    pub fn new(
        node: NodeKey,
        history: Vec<KeyRotation>,
        jwt: JwtKeys,
        jwt_lifetime_s: u64,
    ) -> Self {
        let set = Self::set(node, history, jwt, jwt_lifetime_s);
        Self {
            current: RwLock::new(Arc::new(set)),
            jwt_lifetime_s,
        }
    }

    fn set(node: NodeKey, history: Vec<KeyRotation>, jwt: JwtKeys, lifetime_s: u64) -> KeySet {
        KeySet {
            jwt_public: jwt.public(lifetime_s),
            node,
            history,
            jwt,
        }
    }

    /// The keys in force now.
    pub fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves `node`, `history` and `jwt` from now on.
    pub fn replace(&self, node: NodeKey, history: Vec<KeyRotation>, jwt: JwtKeys) {
        let set = Arc::new(Self::set(node, history, jwt, self.jwt_lifetime_s));
        match self.current.write() {
            Ok(mut k) => *k = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }
}
