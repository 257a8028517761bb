//! The listener: accepts TCP (optionally TLS) connections and serves HTTP/1.1 and HTTP/2 on
//! one port, so gRPC, gRPC-Web and plain HTTP share it. Bounded by `[limits]`: connections
//! served at once (and under the open-file limit), time to the first byte and to a full
//! HTTP/1.1 header, idle time, and HTTP/2 streams per connection. Shuts down gracefully:
//! stops accepting, lets in-flight requests finish (bounded), then returns.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::transports::Front;
use crate::config::Limits;
use activity::Activity;

mod activity;

/// How long in-flight requests may take after shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

/// The TLS acceptor of a node, reloadable from its files (SIGHUP).
pub struct Tls {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    current: std::sync::RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads `cert` and `key`; the error names the config key and says what is wrong.
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            current: std::sync::RwLock::new(tls_acceptor(cert, key)?),
            cert: cert.to_owned(),
            key: key.to_owned(),
        }))
    }

    /// Reads the files again; on error the running certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = tls_acceptor(&self.cert, &self.key)?;
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        Ok(())
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &std::path::Path {
        &self.cert
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current.read().ok().map(|a| a.clone())
    }
}

/// Loads a rustls server config from PEM files, advertising h2 and http/1.1.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    let read = |name: &str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("{name}: {}: {e}", p.display()))
    };
    let certs = CertificateDer::pem_slice_iter(&read("tls.cert", cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert {}: no certificate found in the PEM file",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read("tls.key", key)?).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "tls.key {}: no private key found in the PEM file",
            key.display()
        ),
        e => format!("tls.key {}: {e}", key.display()),
    })?;
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| match e {
        tokio_rustls::rustls::Error::InconsistentKeys(_) => {
            "tls.key does not belong to the certificate in tls.cert (they are not a pair)".into()
        }
        other => format!("tls.cert/tls.key: {other}"),
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Connections served at once: the configured cap, kept below the open-file limit so a
/// flood cannot take the descriptors the node needs for its database and its peers.
fn connection_cap(configured: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<usize>().ok())
        });
    match soft {
        Some(limit) if limit.saturating_sub(64) < configured => {
            let cap = limit.saturating_sub(64).max(16);
            tracing::warn!(
                "limits.max_connections = {configured} is above the open-file limit ({limit}); serving at most {cap} connections"
            );
            cap
        }
        _ => configured.max(1),
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    app: Front,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let first_byte = Duration::from_secs(limits.header_read_timeout_secs.max(1));
    let idle = Duration::from_secs(limits.idle_timeout_secs.max(1));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(first_byte);
    // Flow-control windows sized to the largest request (64 KiB): a connection can make the
    // node buffer at most 256 KiB of request bodies, however many streams it opens.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams.max(1))
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(256 * 1024)
        .max_header_list_size(16 * 1024);
    let permits = Arc::new(tokio::sync::Semaphore::new(connection_cap(
        limits.max_connections,
    )));
    let mut accept_errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    loop {
        // At the cap, wait here: further connections stay in the kernel's backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_errors.failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app.connection(peer);
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let tls = tls.as_ref().and_then(|t| t.acceptor());
        tokio::spawn(async move {
            let _permit = permit;
            // A connection that sends nothing is closed without costing more than a task.
            let mut probe = [0u8; 1];
            match tokio::time::timeout(first_byte, stream.peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            match tls {
                None => serve_one(&builder, watcher, stream, service, idle, peer).await,
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(first_byte, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    serve_one(&builder, watcher, tls, service, idle, peer).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still busy after {DRAIN:?}; closing them");
    }
}

/// Serves one connection until it ends, the node drains, or it moves no bytes for `idle`.
async fn serve_one<IO, S, B>(
    builder: &Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: IO,
    service: S,
    idle: Duration,
    peer: SocketAddr,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let io = Activity::new(io, started);
    let last = io.last_activity();
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::select! {
        _ = watcher.watch(conn.into_owned()) => {}
        () = activity::idle(last, started, idle) => {
            tracing::debug!(%peer, "closing an idle connection");
        }
    }
}

/// Accept failures (e.g. out of file descriptors): back off, and warn at most once every
/// ten seconds instead of on every attempt.
#[derive(Default)]
struct AcceptErrors {
    consecutive: u32,
    last_warned: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    async fn failed(&mut self, e: &std::io::Error) {
        self.consecutive += 1;
        if self
            .last_warned
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(error = %e, suppressed = self.suppressed, "accept failed; backing off");
            self.last_warned = Some(Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        let ms = (10u64 << self.consecutive.min(6)).min(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Binds `addr`, with a message that names the key to change.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (config key `listen.addr`): {e}"))
}
