//! The `node_secrets` table: random keys the node makes once (e.g. the e-mail code HMAC key).
use rusqlite::{params, Connection};

use super::{optional, StoreError};

/// Returns the secret `name`, creating it from `make` if it does not exist yet.
pub fn get_or_create(
    tx: &Connection,
    name: &str,
    make: &mut dyn FnMut() -> Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    if let Some(v) = optional(tx.query_row(
        "SELECT value FROM node_secrets WHERE name = ?1",
        [name],
        |r| r.get::<_, Vec<u8>>(0),
    ))? {
        return Ok(v);
    }
    let value = make();
    tx.execute(
        "INSERT INTO node_secrets (name, value) VALUES (?1, ?2)",
        params![name, value],
    )?;
    Ok(value)
}
