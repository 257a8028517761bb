//! Business rules, free of tonic and SQL. Each file adds one area's operations to
//! [`Domain`]; the gRPC adapters in `api/` call exactly one of them per RPC.
pub mod accounts;
pub mod codes;
mod error;
pub mod federation;
pub mod passwords;
pub mod peering;
pub mod pins;
mod session_cache;
pub mod sessions;
pub mod throttle;

use std::net::IpAddr;
use std::sync::Arc;

use rand::RngCore;
use zeroize::Zeroizing;

pub use error::DomainError;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::federation::key::NodeKey;
use crate::ids::Snowflake;
use crate::secret::SecretKind;
use crate::store::{secrets, sessions::DeviceFacts, Store};

/// Who is calling: resolved from a bearer credential by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: u64,
    /// The session (or token) the credential belongs to.
    pub session_id: u64,
    /// Which kind of credential it was.
    pub kind: SecretKind,
}

/// Facts about the request that rules depend on, taken from transport metadata by `api/`.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client's IP (after trusted-proxy handling), when known.
    pub ip: Option<IpAddr>,
    /// Device facts for a new session.
    pub device: DeviceFacts,
}

/// The node's business logic and the handles it needs.
#[derive(Debug)]
pub struct Domain {
    pub(crate) store: Store,
    pub(crate) clock: SharedClock,
    pub(crate) ids: Snowflake,
    pub(crate) config: Arc<Config>,
    pub(crate) hasher: passwords::Hasher,
    pub(crate) cache: session_cache::SessionCache,
    pub(crate) code_key: Zeroizing<Vec<u8>>,
    pub(crate) throttle: throttle::Throttle,
    pub(crate) mail_wakeup: Arc<tokio::sync::Notify>,
    pub(crate) node_key: NodeKey,
    pub(crate) code_comparisons: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) peers: Arc<dyn pins::PeerDirectory>,
    pub(crate) pending: peering::PendingChallenges,
    pub(crate) fetch_locks: pins::FetchLocks,
    pub(crate) key_history: Vec<crate::store::key_rotations::RotationRow>,
}

impl Domain {
    /// Builds the domain over an open store.
    pub async fn new(
        store: Store,
        config: Arc<Config>,
        clock: SharedClock,
        node_key: NodeKey,
        peers: Arc<dyn pins::PeerDirectory>,
    ) -> Result<Self, DomainError> {
        let pw = config.passwords.clone();
        let hasher = tokio::task::spawn_blocking(move || passwords::Hasher::new(&pw))
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))??;
        let code_key = store
            .write(|tx| {
                secrets::get_or_create(tx, "email_code_hmac", || {
                    let mut k = vec![0u8; 32];
                    rand::rngs::OsRng.fill_bytes(&mut k);
                    k
                })
            })
            .await
            .map_err(DomainError::from)?;
        let floor = store.read(crate::store::highest_id).await?;
        let key_history = store.read(crate::store::key_rotations::list).await?;
        Ok(Self {
            ids: Snowflake::new(clock.clone(), 1, floor),
            throttle: throttle::Throttle::new(config.accounts.sign_ins_per_ip_per_minute),
            cache: session_cache::SessionCache::default(),
            code_key: Zeroizing::new(code_key),
            mail_wakeup: Arc::new(tokio::sync::Notify::new()),
            store,
            clock,
            config,
            hasher,
            node_key,
            code_comparisons: Arc::default(),
            peers,
            pending: peering::PendingChallenges::default(),
            fetch_locks: pins::FetchLocks::default(),
            key_history,
        })
    }

    /// The store (for the mail sender and the CLI).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock in use.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of argon2 hashes made so far.
    pub fn password_hashes(&self) -> u64 {
        self.hasher.hashes()
    }

    /// Number of e-mail codes compared against a stored code so far.
    pub fn code_comparisons(&self) -> u64 {
        self.code_comparisons
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Number of argon2 verifications so far.
    pub fn password_verifications(&self) -> u64 {
        self.hasher.verifications()
    }

    /// The node's identity key.
    pub fn node_key(&self) -> &NodeKey {
        &self.node_key
    }

    /// This node's key rotation records, oldest first.
    pub fn key_history(&self) -> &[crate::store::key_rotations::RotationRow] {
        &self.key_history
    }

    /// The port other nodes reach this one on (the bound listen port).
    pub fn advertised_port(&self) -> u16 {
        self.config.listen.addr.port()
    }

    /// Woken whenever mail is queued.
    pub fn mail_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.mail_wakeup.clone()
    }
}
