//! `hearth key …`: show, export, import and rotate the node key and the JWT keys. The work is
//! `hearth::keys::operations`; this file opens what it needs and prints what happened.
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use hearth::clock::SystemClock;
use hearth::config::Config;
use hearth::domain::state::Store;
use hearth::identity::key::{address_of, NodeKey};
use hearth::keys::{files, operations};

use super::open::{open_domain, open_store};
use super::output::{self, time};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Print the node's address (ed25519:<hex public key>) and rotation history.
    Show,
    /// Print the secret key file to stdout (keep it safe).
    Export {
        /// Write the key to FILE (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replace the node key with one from FILE (as written by `export`).
    Import {
        /// The key file.
        file: PathBuf,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Make a new key, signed over by the old one (stop the node first).
    Rotate {
        /// Rotate the JWT signing key instead: tokens it signed verify until they expire.
        #[arg(long)]
        jwt: bool,
    },
}

/// On a cluster's database: the store, and the cluster's key this data dir now holds (its
/// key file follows the cluster's rotations first, so a rotation continues the chain).
async fn join_cluster(config: &Config) -> anyhow::Result<Option<(Store, NodeKey)>> {
    if config.store.url.is_none() {
        return Ok(None);
    }
    let store = open_store(config)?;
    let node = operations::join_cluster(&store, &config.data_dir).await?;
    Ok(Some((store, node)))
}

fn cluster_follows() -> String {
    format!(
        "every running node of the cluster serves it within {} s; peers follow the signed rotation record",
        hearth::keys::cluster::FOLLOW_EVERY.as_secs()
    )
}

/// `hearth key …`.
pub async fn key(config: Config, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Show => {
            let domain = open_domain(config).await?;
            let _ = domain.id_lease().release().await;
            println!("{}", domain.node_key().address());
            for r in domain.key_history() {
                println!(
                    "  rotated at {} from {} to {}",
                    time(r.at),
                    address_of(&r.old_key),
                    address_of(&r.new_key)
                );
            }
        }
        KeyCommand::Export { out } => {
            let path = config.data_dir.join(files::KEY_FILE);
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let key = files::decode(&path, &bytes)?;
            match out {
                Some(file) => {
                    files::save(&key, &file)?;
                    println!(
                        "wrote the secret key of {} to {} (mode 0600); keep it safe",
                        key.address(),
                        file.display()
                    );
                }
                None => {
                    output::secret_stdout("the node's secret key")?;
                    eprintln!(
                        "the secret key of {} follows; anyone who has it can act as this node",
                        key.address()
                    );
                    print!("{}", key.encode().as_str());
                }
            }
        }
        KeyCommand::Import { file, force } => {
            std::fs::create_dir_all(&config.data_dir)?;
            let _lock = files::DataDirLock::take(&config.data_dir)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let key = files::decode(&file, &bytes)?;
            // The stored rotation history names this node's current key.
            let history = match config.database_path().exists() && !force {
                true => open_store(&config)?.read(|tx| tx.key_rotations()).await?,
                false => Vec::new(),
            };
            operations::import(&config.data_dir, (&file, &key), &history, force)?;
            println!("imported {}", key.address());
        }
        KeyCommand::Rotate { jwt: true } => {
            let _lock = files::DataDirLock::take(&config.data_dir)?;
            let cluster = join_cluster(&config).await?;
            let now = hearth::clock::Clock::now_ms(&SystemClock) / 1000;
            let published = cluster.as_ref().map(|(store, node)| (store, node));
            let keys = operations::rotate_jwt(&config.data_dir, now, published).await?;
            println!("new JWT key {}", keys.current.kid);
            if let Some((old, _)) = &keys.previous {
                println!(
                    "the previous key {} verifies the tokens it signed for {} s more",
                    old.kid, config.jwt.lifetime_secs
                );
            }
            match cluster {
                Some(_) => println!("{}", cluster_follows()),
                None => println!("restart the node to sign with the new key"),
            }
        }
        KeyCommand::Rotate { jwt: false } => {
            let _lock = files::DataDirLock::take(&config.data_dir)?;
            let cluster = join_cluster(&config).await?;
            let store = match &cluster {
                Some((store, _)) => store.clone(),
                None => open_store(&config)?,
            };
            let row = operations::rotate_node_key(
                &config.data_dir,
                &store,
                hearth::clock::Clock::now_ms(&SystemClock),
                cluster.is_some(),
            )
            .await?;
            println!(
                "rotated {} -> {}",
                address_of(&row.old_key),
                address_of(&row.new_key)
            );
            match cluster {
                Some(_) => println!("{}", cluster_follows()),
                None => println!(
                    "restart the node to use the new key; peers follow the signed rotation record"
                ),
            }
        }
    }
    Ok(())
}
