//! What the operator does to keys (`hearth key …`), with the store the CLI opened: rotate
//! the node key (the old key signs the new one, the record goes into the store, served by
//! `Key` as history, and the old secret stays on disk as `node.key.retired-<ms>`), rotate
//! the JWT keys, and import a key that agrees with the stored rotation history. Rotate while
//! this data dir's node is stopped; in a cluster the other nodes follow while they run
//! (`cluster.rs`).
use std::path::Path;

use crate::domain::model::KeyRotation;
use crate::domain::state::{Store, StoreError};
use crate::identity::jwt::JwtKeys;
use crate::identity::key::{address_of, NodeKey};
use crate::identity::proofs::rotation_message;

use super::cluster::{self, JoinError};
use super::files::{self, KeyError, KEY_FILE};

/// Why a rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The key files.
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Renaming the new key into place.
    #[error("moving the new key into place: {0}")]
    Io(#[from] std::io::Error),
}

/// Replaces the node key in `data_dir` with a new one signed over by the old one. In a
/// `cluster`, the same write hands the new key over to the other nodes.
pub async fn rotate_node_key(
    data_dir: &Path,
    store: &Store,
    now: u64,
    cluster: bool,
) -> Result<KeyRotation, RotateError> {
    let (old, _) = files::load_or_generate(data_dir)?;
    let new = NodeKey::generate();
    let row = KeyRotation {
        old_key: old.public(),
        new_key: new.public(),
        at: now,
        sig: old
            .sign(rotation_message(&new.public(), now).as_bytes())
            .to_vec(),
    };
    files::save(&old, &data_dir.join(format!("{KEY_FILE}.retired-{now}")))?;
    let next = data_dir.join(format!("{KEY_FILE}.next"));
    files::save(&new, &next)?;
    let (record, old_key, new_key) = (row.clone(), old.clone(), new.clone());
    store
        .write(move |tx| {
            tx.insert_key_rotation(&record)?;
            crate::domain::second_factor::reseal_in(tx, &old_key, &new_key)?;
            if cluster {
                // The identity every node of the cluster serves changes with it.
                cluster::hand_over(tx, &old_key, &new_key)?;
                tx.set_node_secret(cluster::CLUSTER_KEY, &new_key.public())?;
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    std::fs::rename(&next, data_dir.join(KEY_FILE))?;
    tracing::info!(
        target: "hearth::audit",
        event = "key_rotated",
        old = %old.address(),
        new = %new.address()
    );
    Ok(row)
}
/// The key this data dir holds after joining the cluster on `store` (its key file first
/// follows the cluster's rotations, so a rotation made now continues the chain).
pub async fn join_cluster(store: &Store, data_dir: &Path) -> Result<NodeKey, JoinError> {
    let (key, _) = files::load_or_generate(data_dir)?;
    let jwt = files::load_or_generate_jwt(data_dir)?;
    Ok(cluster::join(store, data_dir, key, jwt).await?.node)
}

/// A new current JWT key for `data_dir` (the old one verifies what it signed until those
/// tokens expire); in a cluster (`Some((store, cluster key))`) published to every node.
pub async fn rotate_jwt(
    data_dir: &Path,
    now: u64,
    cluster: Option<(&Store, &NodeKey)>,
) -> Result<JwtKeys, RotateError> {
    let keys = files::rotate_jwt(data_dir, now)?;
    if let Some((store, node)) = cluster {
        cluster::publish_jwt(store, node, &keys).await?;
    }
    Ok(keys)
}

/// Why an import was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The key contradicts the stored rotation history.
    #[error("this node's rotation history says its key is {history}, but {file} is {given}; import the matching key, or pass --force to replace the identity")]
    NotInHistory {
        /// The key the history ends with.
        history: String,
        /// The file the key came from.
        file: String,
        /// The key it holds.
        given: String,
    },
    /// A key is there and `force` was not given.
    #[error("{0} exists; importing replaces this node's identity, pass --force if that is what you want")]
    Exists(String),
    /// Writing it.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Writes `key` (read from `file`) as the node key of `data_dir`. Without `force` it refuses
/// to replace a key, or to install one that is not the last key of `history` (the stored
/// rotations): such a key would break every peer's chain.
pub fn import(
    data_dir: &Path,
    (file, key): (&Path, &NodeKey),
    history: &[KeyRotation],
    force: bool,
) -> Result<(), ImportError> {
    if !force {
        if let Some(last) = history.last().filter(|r| r.new_key != key.public()) {
            return Err(ImportError::NotInHistory {
                history: address_of(&last.new_key),
                file: file.display().to_string(),
                given: key.address(),
            });
        }
    }
    let path = data_dir.join(KEY_FILE);
    if path.exists() && !force {
        return Err(ImportError::Exists(path.display().to_string()));
    }
    Ok(files::save(key, &path)?)
}
