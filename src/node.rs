//! `Node::start`: the one way to run a node, used by `hearth serve`, the tests and
//! `federation-tests/`. Binds first (so port 0 resolves), then opens everything and serves.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::domain::peering::PeerHello;
use crate::domain::{Domain, DomainError};
use crate::federation::client::PeerClient;
use crate::federation::key::{KeyError, NodeKey};
use crate::federation::links::Links;
use crate::store::{Store, StoreError};

/// Why a node could not start. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create data_dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The node key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database.
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
    domain: Arc<Domain>,
    links: Arc<Links>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// The domain over an open store, with its client for other nodes: what `start` serves,
    /// and what the operator CLI uses without serving.
    pub async fn assemble(
        config: Config,
        store: Store,
        key: NodeKey,
        clock: SharedClock,
    ) -> Result<(Domain, Arc<PeerClient>), StartError> {
        let me = PeerHello::of(&config, &key);
        let client = Arc::new(
            PeerClient::new(&config, key.clone(), me, clock.clone())
                .map_err(StartError::Federation)?,
        );
        let domain = Domain::new(store, Arc::new(config), clock, key, client.clone()).await?;
        Ok((domain, client))
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
        let (key, key_created) = tokio::task::spawn_blocking(move || -> Result<_, StartError> {
            create_private_dir(&dir)?;
            Ok(NodeKey::load_or_generate(&dir)?)
        })
        .await
        .map_err(blocking)??;
        let db = config.database_path();
        let store = tokio::task::spawn_blocking(move || Store::open(&db, 4))
            .await
            .map_err(blocking)??;

        let tls = match &config.tls {
            Some(t) => {
                Some(crate::server::tls_acceptor(&t.cert, &t.key).map_err(StartError::Listen)?)
            }
            None => None,
        };
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

        let (domain, client) = Self::assemble(config, store, key, clock).await?;
        let domain = Arc::new(domain);
        let links = Links::new(domain.clone(), client);
        let metrics = Arc::new(crate::api::metrics::Metrics::default());
        let http = crate::http::routes(domain.clone(), metrics.clone());
        let app = crate::api::router(domain.clone(), metrics, http)
            .await
            .map_err(|e| StartError::Listen(e.to_string()))?;

        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut server_stop = stopped.clone();
        let is_tls = tls.is_some();
        tasks.push(tokio::spawn(crate::server::serve(
            listener,
            tls,
            app,
            async move {
                let _ = server_stop.changed().await;
            },
        )));
        tasks.push(links.clone().spawn(stopped.clone()));
        tasks.extend(crate::mail::spawn(domain.clone(), stopped));
        tracing::info!(%addr, server_id = %domain.config().server_id, "listening on {addr}");
        Ok(RunningNode {
            addr,
            tls: is_tls,
            key_created,
            domain,
            links,
            stop,
            tasks,
        })
    }
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StartError::DataDir {
            path: dir.to_owned(),
            source,
        })
}

impl RunningNode {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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

    /// The node's domain (tests and the CLI inspect state through it).
    pub fn domain(&self) -> &Arc<Domain> {
        &self.domain
    }

    /// The federation link keeper.
    pub fn links(&self) -> &Arc<Links> {
        &self.links
    }

    /// Stops accepting, drains in-flight requests, stops background tasks.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.domain.store().close();
    }
}
