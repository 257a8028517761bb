//! How a command opens the data dir the node runs on: its store (refusing to create one where
//! the operator pointed at the wrong place), or the services as the node has them.
use std::sync::Arc;

use anyhow::bail;
use hearth::clock::SystemClock;
use hearth::config::Config;
use hearth::domain::state::Store;
use hearth::domain::Services;
use hearth::federation::client::PeerClient;
use hearth::Node;

pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    let path = config.database_path();
    if config.store.url.is_none() && !path.exists() {
        bail!(
            "no database at {} (config key `data_dir`): pass the --config the node runs with \
             (or set HEARTH_DATA_DIR to its data dir), or run `hearth serve` once first",
            path.display()
        );
    }
    Ok(Node::open_store(config, 1)?)
}

pub async fn open_domain(config: Config) -> anyhow::Result<Services> {
    Ok(open_federation(config).await?.0)
}

/// The services plus a client for other nodes, as the node itself has them. The CLI leases
/// its own snowflake worker, so ids it makes never collide with a running node's.
pub async fn open_federation(config: Config) -> anyhow::Result<(Services, Arc<PeerClient>)> {
    let store = open_store(&config)?;
    let (key, _) = hearth::keys::files::load_or_generate(&config.data_dir)?;
    let holder = format!("cli pid {}", std::process::id());
    let role = hearth::Role::Cli;
    Ok(Node::assemble(config, store, key, Arc::new(SystemClock), holder, role).await?)
}
