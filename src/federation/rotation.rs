//! Rotating the node key (DESIGN.md §4.3): the old key signs the new one, the record goes into
//! `key_rotations` (served by `Key` as history), and the old secret stays on disk as
//! `node.key.retired-<ms>` for recovery. Run it while the node is stopped; the node loads the
//! new key at its next start.
use std::path::Path;

use super::key::{KeyError, NodeKey, KEY_FILE};
use super::proofs::rotation_message;
use crate::store::key_rotations::{self, RotationRow};
use crate::store::{Store, StoreError};

/// Why a rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The key files.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Renaming the new key into place.
    #[error("moving the new key into place: {0}")]
    Io(#[from] std::io::Error),
}

/// Replaces the node key in `data_dir` with a new one signed over by the old one.
pub async fn rotate(data_dir: &Path, store: &Store, now: u64) -> Result<RotationRow, RotateError> {
    let (old, _) = NodeKey::load_or_generate(data_dir)?;
    let new = NodeKey::generate();
    let row = RotationRow {
        old_key: old.public(),
        new_key: new.public(),
        at: now,
        sig: old
            .sign(rotation_message(&new.public(), now).as_bytes())
            .to_vec(),
    };
    old.save(&data_dir.join(format!("{KEY_FILE}.retired-{now}")))?;
    let next = data_dir.join(format!("{KEY_FILE}.next"));
    new.save(&next)?;
    let record = row.clone();
    store
        .write(move |tx| key_rotations::insert(tx, &record))
        .await?;
    std::fs::rename(&next, data_dir.join(KEY_FILE))?;
    Ok(row)
}

/// Writes `key` as the node key; refuses to replace an existing key unless `force`.
pub fn import(data_dir: &Path, key: &NodeKey, force: bool) -> Result<(), String> {
    let path = data_dir.join(KEY_FILE);
    if path.exists() && !force {
        return Err(format!(
            "{} exists; importing replaces this node's identity, pass --force if that is what you want",
            path.display()
        ));
    }
    key.save(&path).map_err(|e| e.to_string())
}
