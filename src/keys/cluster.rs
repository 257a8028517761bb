//! A cluster's identity in its shared database: every node of a cluster serves one node key,
//! one rotation history and one set of JWT keys. The database holds the cluster's public key
//! (`cluster_node_key`), the rotation records, each rotated-in key sealed under the key it
//! replaced (`key_handover/<hex of the new public key>`), and the JWT keys sealed under the
//! current node key (`cluster_jwt_keys`); see `identity/seal.rs`. A node holding any key of
//! the chain follows it to the current one at start, and every [`FOLLOW_EVERY`] while it
//! runs, so a rotation made through one node is served by all without a restart. Joining a
//! cluster takes only a copy of `node.key`; the database alone opens none of its keys.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::files::{self, JwtKeysFile, KeyError};
use crate::domain::model::KeyRotation;
use crate::domain::state::{ReadTx, Store, StoreError, WriteTx};
use crate::domain::Services;
use crate::identity::jwt::JwtKeys;
use crate::identity::key::{address_of, NodeKey};
use crate::identity::seal;

/// The node secret naming the public key every node of a cluster serves.
pub const CLUSTER_KEY: &str = "cluster_node_key";
/// The node secret holding the JWT keys, sealed under the cluster's node key.
const CLUSTER_JWT: &str = "cluster_jwt_keys";
const NODE_PURPOSE: &str = "node key handover";
const JWT_PURPOSE: &str = "jwt keys";
/// How often a running node looks for a rotation made through another node.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(2);

fn handover_name(new_key: &[u8; 32]) -> String {
    format!("key_handover/{}", hex::encode(new_key))
}

/// The cluster's key records, as read in one transaction.
struct Chain {
    cluster: Option<[u8; 32]>,
    history: Vec<KeyRotation>,
    handovers: Vec<Option<Vec<u8>>>,
    jwt: Option<Vec<u8>>,
}

fn read_chain(tx: &mut dyn ReadTx) -> Result<Chain, StoreError> {
    let cluster = tx
        .stored_secret(CLUSTER_KEY)?
        .and_then(|v| v.try_into().ok());
    let history = tx.key_rotations()?;
    let handovers = history
        .iter()
        .map(|r| tx.stored_secret(&handover_name(&r.new_key)))
        .collect::<Result<_, _>>()?;
    let jwt = tx.stored_secret(CLUSTER_JWT)?;
    Ok(Chain {
        cluster,
        history,
        handovers,
        jwt,
    })
}

impl Chain {
    /// The cluster's key, reached from `from` by opening one handover after another;
    /// `None` when `from` is not on the chain.
    fn follow(&self, from: &NodeKey) -> Option<NodeKey> {
        let target = self.cluster?;
        let mut key = from.clone();
        for _ in 0..=self.history.len() {
            if key.public() == target {
                return Some(key);
            }
            let (record, sealed) = self
                .history
                .iter()
                .zip(&self.handovers)
                .rev()
                .find(|(r, h)| r.old_key == key.public() && h.is_some())?;
            let plain = seal::open(&key, NODE_PURPOSE, sealed.as_deref()?)?;
            let next = NodeKey::from_text(&plain).ok()?;
            if next.public() != record.new_key {
                return None;
            }
            key = next;
        }
        None
    }

    /// The cluster's JWT keys, opened with its node key.
    fn jwt_keys(&self, node: &NodeKey) -> Option<JwtKeys> {
        let plain = seal::open(node, JWT_PURPOSE, self.jwt.as_deref()?)?;
        let text = std::str::from_utf8(&plain).ok()?;
        JwtKeys::decode(Path::new(CLUSTER_JWT), text).ok()
    }
}

/// Why a node could not join its cluster's identity.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// This node's key is not on the cluster's chain.
    #[error("this node's key {mine} is not the cluster's key {cluster} nor one rotated into it (every node on one database serves one identity): copy node.key from a node of the cluster into this data_dir")]
    ForeignKey {
        /// This node's address.
        mine: String,
        cluster: String,
    },
    /// The cluster's JWT keys do not open with its key.
    #[error("the cluster's JWT keys (node secret `{CLUSTER_JWT}`) do not open with the cluster's key {0}: the database was altered, or the key replaced by `key import --force`; run `hearth key rotate --jwt` on a node of the cluster")]
    JwtSealed(String),
    /// The key files.
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The keys a node of the cluster serves.
#[derive(Debug)]
pub struct ClusterKeys {
    /// The cluster's node key.
    pub node: NodeKey,
    /// The cluster's JWT keys.
    pub jwt: JwtKeys,
}

/// Joins the cluster on `store` with the keys of `data_dir`: the first node founds it with
/// its own; a later one follows the chain from its key to the cluster's and adopts the
/// cluster's JWT keys, writing both into `data_dir`. A key not on the chain is refused.
pub async fn join(
    store: &Store,
    data_dir: &Path,
    local: NodeKey,
    local_jwt: JwtKeys,
) -> Result<ClusterKeys, JoinError> {
    let (key, jwt) = (local.clone(), local_jwt.clone());
    let chain = store
        .write(move |tx| {
            tx.node_secret(CLUSTER_KEY, &mut || key.public().to_vec())?;
            let mut chain = read_chain(tx)?;
            if let (None, Some(node)) = (&chain.jwt, chain.follow(&key)) {
                let sealed = seal::seal(&node, JWT_PURPOSE, jwt.encode().as_bytes());
                chain.jwt = Some(tx.node_secret(CLUSTER_JWT, &mut || sealed.clone())?);
            }
            Ok::<_, StoreError>(chain)
        })
        .await?;
    let Some(node) = chain.follow(&local) else {
        return Err(JoinError::ForeignKey {
            mine: local.address(),
            cluster: chain
                .cluster
                .map(|k| address_of(&k))
                .unwrap_or_else(|| "(unreadable)".into()),
        });
    };
    let jwt = chain
        .jwt_keys(&node)
        .ok_or_else(|| JoinError::JwtSealed(node.address()))?;
    persist(data_dir, &local, &local_jwt, &node, &jwt).await?;
    Ok(ClusterKeys { node, jwt })
}

/// Writes keys adopted from the cluster into `data_dir` (the replaced node key stays as
/// `node.key.retired-<ms>`), so the directory names the identity the node serves.
async fn persist(
    data_dir: &Path,
    old: &NodeKey,
    old_jwt: &JwtKeys,
    node: &NodeKey,
    jwt: &JwtKeys,
) -> Result<(), KeyError> {
    let (dir, old, node) = (data_dir.to_owned(), old.clone(), node.clone());
    let jwt_text = (jwt.encode() != old_jwt.encode()).then(|| jwt.encode());
    let done = tokio::task::spawn_blocking(move || {
        if old.public() != node.public() {
            let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
            let retired = format!("{}.retired-{now}", files::KEY_FILE);
            files::save(&old, &dir.join(retired))?;
            files::save(&node, &dir.join(files::KEY_FILE))?;
        }
        if let Some(text) = jwt_text {
            files::save_jwt_text(&dir, &text)?;
        }
        Ok(())
    })
    .await;
    done.unwrap_or_else(|e| {
        Err(KeyError::Io {
            path: data_dir.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

/// Inside a rotation's write: hands `new` over to every node holding `old`, and re-seals
/// the cluster's JWT keys under `new`.
pub fn hand_over(tx: &mut dyn WriteTx, old: &NodeKey, new: &NodeKey) -> Result<(), StoreError> {
    let sealed = seal::seal(old, NODE_PURPOSE, new.encode().as_bytes());
    tx.set_node_secret(&handover_name(&new.public()), &sealed)?;
    if let Some(plain) = tx
        .stored_secret(CLUSTER_JWT)?
        .and_then(|blob| seal::open(old, JWT_PURPOSE, &blob))
    {
        tx.set_node_secret(CLUSTER_JWT, &seal::seal(new, JWT_PURPOSE, &plain))?;
    }
    Ok(())
}

/// Publishes `jwt` as the cluster's JWT keys (after `key rotate --jwt` on one node).
pub async fn publish_jwt(store: &Store, node: &NodeKey, jwt: &JwtKeys) -> Result<(), StoreError> {
    let sealed = seal::seal(node, JWT_PURPOSE, jwt.encode().as_bytes());
    store
        .write(move |tx| tx.set_node_secret(CLUSTER_JWT, &sealed))
        .await
}

/// Every [`FOLLOW_EVERY`], serves the cluster's keys if another node rotated them.
pub fn follow(
    services: Arc<Services>,
    data_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut warned = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
                _ = stop.changed() => return,
            }
            let chain = match services.store().read(read_chain).await {
                Ok(c) => c,
                // An unreachable database is logged once by the backend.
                Err(StoreError::Unreachable(_) | StoreError::Closed) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the cluster's keys");
                    continue;
                }
            };
            let now = services.key_ring().current();
            let Some((node, jwt)) = chain
                .follow(&now.node)
                .and_then(|node| chain.jwt_keys(&node).map(|jwt| (node, jwt)))
            else {
                if !std::mem::replace(&mut warned, true) {
                    tracing::error!(
                        "the cluster's key is no longer reachable from {} (replaced, not \
                         rotated?): this node keeps serving it; stop it and copy node.key \
                         from a node of the cluster",
                        now.node.address()
                    );
                }
                continue;
            };
            warned = false;
            let same = node.public() == now.node.public()
                && chain.history.len() == now.history.len()
                && jwt.encode() == now.jwt.encode();
            if same {
                continue;
            }
            // Written first, so a node serving a key also holds it in its data dir.
            if let Err(e) = persist(&data_dir, &now.node, &now.jwt, &node, &jwt).await {
                tracing::warn!(error = %e, "writing the cluster's keys into the data dir");
            }
            tracing::info!(
                target: "hearth::audit",
                event = "cluster_keys_followed",
                key = %node.address(),
                jwt_kid = %jwt.current.kid,
                "serving the cluster's keys"
            );
            services.key_ring().replace(node, chain.history, jwt);
        }
    })
}
