//! `Node::start`: the one way to run a node, used by `hearth serve`, the tests and
//! `federation-tests/`. Binds first (so port 0 resolves), then opens everything and serves.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::domain::state::{Store, StoreError};
use crate::domain::{DomainError, Keys, Networks, NodeState, Services};
use crate::federation::client::PeerClient;
use crate::identity::key::NodeKey;
use crate::keys::cluster::JoinError;
use crate::keys::files::KeyError;
use crate::store::sqlite::Sqlite;

/// Why a node could not start. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create data_dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The node key.
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The domain could not be set up.
    #[error("{0}")]
    Domain(#[from] DomainError),
    /// The listener or TLS.
    #[error("{0}")]
    Listen(String),
    /// Federation settings (resolver, extra CA).
    #[error("{0}")]
    Federation(String),
    /// The cluster's identity (a foreign key, sealed JWT keys that do not open).
    #[error(transparent)]
    Cluster(#[from] JoinError),
}

/// Starts nodes.
#[derive(Debug)]
pub struct Node;

/// A started node.
#[derive(Debug)]
pub struct RunningNode {
    addr: SocketAddr,
    tls: bool,
    key_created: bool,
    services: Arc<Services>,
    client: Arc<PeerClient>,
    lock: crate::keys::files::DataDirLock,
    metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Opens the configured store (SQLite in the data dir). Blocking.
    pub fn open_store(config: &Config, readers: usize) -> Result<Store, StoreError> {
        if let Some(target) = Self::pg_target(config)? {
            let pg = crate::store::postgres::Postgres::open(&target, readers.max(2))?;
            return Ok(Store::new(Arc::new(pg)));
        }
        let sqlite = Sqlite::open(&config.database_path(), readers, config.store.synchronous)?;
        Ok(Store::new(Arc::new(sqlite)))
    }

    /// Where the cluster's PostgreSQL is, when `[store] url` names one.
    fn pg_target(config: &Config) -> Result<Option<crate::store::postgres::PgTarget>, StoreError> {
        let Some(url) = &config.store.url else {
            return Ok(None);
        };
        crate::store::postgres::PgTarget::new(url, config.store.ca_file.as_deref()).map(Some)
    }

    /// The services over an open store, with the client for other nodes: what `start`
    /// serves, and what the operator CLI uses without serving. `holder` names the process
    /// for its id-worker lease.
    pub async fn assemble(
        config: Config,
        store: Store,
        key: NodeKey,
        clock: SharedClock,
        holder: String,
        role: Role,
    ) -> Result<(Services, Arc<PeerClient>), StartError> {
        let client =
            Arc::new(PeerClient::new(&config, clock.clone()).map_err(StartError::Federation)?);
        let seal_keys = crate::domain::state::shared_map::SealKeys::default();
        let providers = Arc::new(
            crate::providers::Providers::new(&config.federation).map_err(StartError::Federation)?,
        );
        let dir = config.data_dir.clone();
        let jwt =
            tokio::task::spawn_blocking(move || crate::keys::files::load_or_generate_jwt(&dir))
                .await
                .map_err(|e| StartError::Listen(e.to_string()))??;
        let mut state = NodeState::local(store.clone(), clock.clone());
        if role == Role::Cli {
            // What an operator's command revokes reaches the running node (SQLite; a
            // cluster's NOTIFY below replaces this).
            state.revocations = Arc::new(crate::notice_files::NoticeFiles::new(&config.data_dir));
        }
        let mut keys = Keys { node: key, jwt };
        if let Some(target) = Self::pg_target(&config)? {
            // A cluster serves one identity: the first node founds it with its keys, a
            // later one follows the rotations from its key to the cluster's.
            let joined =
                crate::keys::cluster::join(&store, &config.data_dir, keys.node, keys.jwt).await?;
            keys = Keys {
                node: joined.node,
                jwt: joined.jwt,
            };
            // A cluster: revocations reach every node; one node at a time runs each job.
            let notices = crate::store::postgres::PgNotices::start(&target);
            state.revocations = crate::store::postgres::PgRevocations::start(&notices);
            state.feeds = crate::store::postgres::PgFeeds::start(
                &notices,
                clock.clone(),
                crate::domain::flows::MAX_FLOWS,
            );
            let unique = format!("{holder} {:08x}", rand::random::<u32>());
            state.jobs = Arc::new(crate::domain::state::jobs::StoreJobs::new(
                store.clone(),
                clock.clone(),
                unique,
            ));
            // Step flows are seen by every node (sealed in the database).
            use crate::domain::state::shared_map::StoreMap;
            let seal = &seal_keys;
            state.flows = Arc::new(StoreMap::new(
                store.clone(),
                clock.clone(),
                "flow",
                seal.clone(),
            ));
            state.flow_waits = Arc::new(StoreMap::new(
                store.clone(),
                clock.clone(),
                "flow_wait",
                seal.clone(),
            ));
            state.challenges = Arc::new(StoreMap::new(
                store.clone(),
                clock.clone(),
                "peer_challenge",
                seal.clone(),
            ));
            state.ceremonies = Arc::new(StoreMap::new(
                store.clone(),
                clock.clone(),
                "passkey_ceremony",
                seal.clone(),
            ));
            // A client's budgets hold across every node.
            state.buckets = Arc::new(StoreMap::new(store, clock, "budget", seal.clone()));
        }
        let networks = Networks {
            peers: client.clone(),
            providers,
        };
        let services = Services::new(Arc::new(config), state, keys, networks, holder).await?;
        // The cluster's shared state seals under the key ring the services now hold.
        let _ = seal_keys.set(services.key_ring().clone());
        Ok((services, client))
    }

    /// Starts a node with the system clock.
    pub async fn start(config: Config) -> Result<RunningNode, StartError> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Starts a node with an injected clock (tests move time with it).
    pub async fn start_with_clock(
        mut config: Config,
        clock: SharedClock,
    ) -> Result<RunningNode, StartError> {
        let dir = config.data_dir.clone();
        let blocking = |e: tokio::task::JoinError| StartError::Listen(e.to_string());
        // TLS files first: a node that cannot serve creates no data dir, key or database.
        let tls = match &config.tls {
            Some(t) => Some(crate::server::Tls::load(&t.cert, &t.key).map_err(StartError::Listen)?),
            None => None,
        };
        let had_database = config.database_path().exists();
        let (lock, key, key_created) =
            tokio::task::spawn_blocking(move || -> Result<_, StartError> {
                create_private_dir(&dir)?;
                // One node per data dir: a second one (or a key rotation) is refused.
                let lock = crate::keys::files::DataDirLock::take(&dir)?;
                let (key, created) = crate::keys::files::load_or_generate(&dir)?;
                Ok((lock, key, created))
            })
            .await
            .map_err(blocking)??;
        if key_created && had_database {
            tracing::warn!(
                "A NEW NODE KEY was generated in {}, but a database already exists there: this \
                 node now has a new identity, and peers that pinned the old key will refuse it \
                 until their operators re-pin. If that is not what you want, stop the node and \
                 restore node.key from your backup.",
                config.data_dir.display()
            );
        }
        let cfg = config.clone();
        let store = tokio::task::spawn_blocking(move || Self::open_store(&cfg, 4))
            .await
            .map_err(blocking)??;

        let listener = crate::server::bind(config.listen.addr)
            .await
            .map_err(StartError::Listen)?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Listen(e.to_string()))?;
        config.listen.addr = addr;
        if config.mail.public_url.is_none() {
            let scheme = if tls.is_some() { "https" } else { "http" };
            config.mail.public_url = Some(format!("{scheme}://{addr}"));
        }

        let holder = format!("node {} pid {}", config.server_id, std::process::id());
        let (services, client) =
            Self::assemble(config, store, key, clock, holder, Role::Node).await?;
        let services = Arc::new(services);
        let metrics = Arc::new(crate::api::metrics::Metrics::default());
        let http = crate::http::routes(services.clone(), metrics.clone());
        let metrics_listener = match services.config().metrics.addr {
            Some(at) => {
                let l = tokio::net::TcpListener::bind(at).await.map_err(|e| {
                    StartError::Listen(format!(
                        "cannot listen on {at} (config key `metrics.addr`): {e}"
                    ))
                })?;
                let bound = l
                    .local_addr()
                    .map_err(|e| StartError::Listen(e.to_string()))?;
                Some((l, bound))
            }
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().map(|(_, a)| *a);
        let metrics_app = crate::http::metrics_only(services.clone(), metrics.clone());
        let app = crate::api::router(services.clone(), metrics, http)
            .await
            .map_err(|e| StartError::Listen(e.to_string()))?;

        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut server_stop = stopped.clone();
        let is_tls = tls.is_some();
        let tls_handle = tls.clone();
        tasks.push(tokio::spawn(crate::server::serve(
            listener,
            tls,
            app,
            services.config().limits.clone(),
            async move {
                let _ = server_stop.changed().await;
            },
        )));
        tasks.push(services.links.clone().spawn(stopped.clone()));
        tasks.push(services.notices.clone().spawn(stopped.clone()));
        tasks.push(renew_id_lease(services.clone(), stopped.clone()));
        tasks.push(sweep_state(services.clone(), stopped.clone()));
        tasks.push(write_activity(services.clone(), stopped.clone()));
        tasks.push(keep_session_index(services.clone(), stopped.clone()));
        if services.config().store.url.is_none() {
            tasks.push(crate::notice_files::follow(
                services.config().data_dir.clone(),
                services.state().revocations.clone(),
                stopped.clone(),
            ));
        }
        if services.config().store.url.is_some() {
            let dir = services.config().data_dir.clone();
            tasks.push(crate::keys::cluster::follow(
                services.clone(),
                dir,
                stopped.clone(),
            ));
        }
        if let Some((listener, at)) = metrics_listener {
            let mut stop = stopped.clone();
            tracing::info!("metrics on http://{at}/metrics");
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.changed().await;
                };
                let _ = axum::serve(listener, metrics_app)
                    .with_graceful_shutdown(shutdown)
                    .await;
            }));
        }
        tasks.push(reload_on_hangup(tls_handle, stopped.clone()));
        if !is_tls && !addr.ip().is_loopback() {
            tracing::warn!(
                "serving PLAINTEXT on {addr}, which is not a loopback address: tokens and \
                 passwords cross the network unencrypted. Configure [tls], or put a TLS proxy \
                 in front and listen on loopback."
            );
        }
        tasks.extend(crate::mail::spawn(services.clone(), stopped));
        tracing::info!(%addr, server_id = %services.config().server_id, "listening on {addr}");
        Ok(RunningNode {
            addr,
            tls: is_tls,
            key_created,
            services,
            client,
            lock,
            metrics_addr,
            stop,
            tasks,
        })
    }
}

/// SIGHUP reloads the TLS certificate and key from their files (the old ones stay on an
/// error); without TLS there is nothing to reload. Either way the node keeps running.
fn reload_on_hangup(
    tls: Option<Arc<crate::server::Tls>>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    // Registered before the node reports that it listens, so an early SIGHUP is handled
    // rather than ending the process (the default action).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    tokio::spawn(async move {
        let Ok(mut hangups) = hangups else {
            return;
        };
        loop {
            tokio::select! {
                got = hangups.recv() => if got.is_none() { return },
                _ = stop.changed() => return,
            }
            match &tls {
                Some(t) => match t.reload() {
                    Ok(()) => tracing::info!(
                        "SIGHUP: reloaded the TLS certificate from {}",
                        t.cert_path().display()
                    ),
                    Err(e) => tracing::error!("SIGHUP: kept the running certificate: {e}"),
                },
                None => tracing::info!("SIGHUP: serving plaintext, nothing to reload"),
            }
        }
    })
}

/// Who assembles the services: the node itself, or a CLI command beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `hearth serve`.
    Node,
    /// An operator's command on the node's data dir.
    Cli,
}

/// Every minute, drops the text of mail whose codes expired undelivered, scrubs the store's
/// files of delivered mail text, forgets day-old sign-in throttle state, and deletes the
/// accounts whose deletion grace period is over.
fn sweep_state(services: Arc<Services>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = services
                .outbox
                .sweep(crate::domain::codes::CODE_TTL_MS)
                .await
            {
                tracing::warn!(error = %e, "sweeping the mail outbox");
            }
            if let Err(e) = services.accounts.sweep_throttle().await {
                tracing::warn!(error = %e, "sweeping sign-in throttle state");
            }
            if let Err(e) = services.settings.delete_due().await {
                tracing::warn!(error = %e, "deleting accounts past their grace period");
            }
        }
    })
}

/// Every second, writes the sessions' pending activity stamps in one transaction; once
/// more on shutdown.
fn write_activity(services: Arc<Services>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => false,
                _ = stop.changed() => true,
            };
            if let Err(e) = services.sessions.write_activity().await {
                tracing::warn!(error = %e, "writing session activity");
            }
            if stopping {
                return;
            }
        }
    })
}

/// Loads the session index, then folds what it learns into it every few seconds.
fn keep_session_index(services: Arc<Services>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        match services.sessions.load_index().await {
            Ok(n) => tracing::debug!(sessions = n, "session index loaded"),
            Err(e) => {
                tracing::warn!(error = %e, "loading the session index; sessions are read from the database until it learns them")
            }
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                _ = stop.changed() => return,
            }
            services.sessions.rebuild_index().await;
        }
    })
}

/// Renews the node's id-worker lease every minute; gives it back on shutdown.
fn renew_id_lease(services: Arc<Services>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                _ = stop.changed() => break,
            }
            if let Err(e) = services.id_lease().renew().await {
                tracing::error!(error = %e, "renewing the snowflake worker lease");
            }
        }
        let _ = services.id_lease().release().await;
    })
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), StartError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StartError::DataDir {
            path: dir.to_owned(),
            source,
        })?;
    // An operator-made dir (a package, StateDirectory=, a volume) may be open to others:
    // the files in it are 0600 anyway, but their names and sizes show.
    if let Ok(meta) = std::fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "the data dir {} has mode {mode:o}: other users can list it. Its files are 0600, \
                 but `chmod 700 {}` keeps even their names private.",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

impl RunningNode {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The separate metrics listener's address, when `[metrics] addr` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether the node key was generated by this start.
    pub fn key_created(&self) -> bool {
        self.key_created
    }

    /// The node's services (tests inspect state through them).
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// The client this node calls other nodes with.
    pub fn client(&self) -> &Arc<PeerClient> {
        &self.client
    }

    /// Stops accepting, drains in-flight requests, stops background tasks.
    pub async fn shutdown(self) {
        // Step streams end cleanly first, so the graceful drain does not wait on them.
        self.services.flows.drain();
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.services.store().close();
        drop(self.lock);
    }
}
