//! How a node reaches PostgreSQL: the parsed URL, and TLS when the URL says
//! `sslmode=require`. TLS is rustls checking the server's certificate chain and host name
//! against `[store] ca_file` (or the public web roots), as libpq's `verify-full` does: the
//! driver knows no weaker TLS mode, and Hearth never encrypts without checking who answers.
//! Without `sslmode=require` connections are plaintext (the driver's `prefer` falls back to
//! it), as documented.
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

use postgres::{Client, NoTls};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tx::Conn;
use tokio_rustls::rustls;

use crate::domain::state::store::StoreError;

/// A PostgreSQL server and how to talk to it. The password never leaves `config`.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    shown: String,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTarget({}, tls: {})", self.shown, self.tls.is_some())
    }
}

fn bad(message: String) -> StoreError {
    StoreError::Backend(message)
}

impl PgTarget {
    /// Parses `url` and, for `sslmode=require`, loads the roots its certificate must chain
    /// to (`ca_file`, else the public web roots).
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, StoreError> {
        let shown = super::describe(url);
        let config = tokio_postgres::Config::from_str(url).map_err(|_| {
            bad(format!(
                "config key `store.url` for {shown} is not a postgres URL (postgres://user:password@host:5432/db)"
            ))
        })?;
        let tls = match (config.get_ssl_mode(), ca_file) {
            (SslMode::Require, ca) => Some(Self::rustls(ca)?),
            (_, Some(ca)) => {
                return Err(bad(format!(
                    "config key `store.ca_file` ({}) is set, but `store.url` does not ask for TLS: add `sslmode=require` to it (e.g. postgres://…/db?sslmode=require)",
                    ca.display()
                )))
            }
            (_, None) => None,
        };
        Ok(Self { config, shown, tls })
    }

    fn rustls(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    bad(format!(
                        "config key `store.ca_file`: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                let certs = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        bad(format!(
                            "config key `store.ca_file`: {} is not PEM: {e}",
                            path.display()
                        ))
                    })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(bad(format!(
                        "config key `store.ca_file`: {} holds no usable CA certificate",
                        path.display()
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS to PostgreSQL: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    /// `user@host:port/db`, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A new connection of the synchronous client (migrations, notices, the probe).
    /// Blocking; the driver's errors never include the password.
    pub fn connect(&self) -> Result<Client, StoreError> {
        let config = postgres::Config::from(self.config.clone());
        let connected = match &self.tls {
            Some(tls) => config.connect(tls.clone()),
            None => config.connect(NoTls),
        };
        connected.map_err(|e| self.cannot_connect(e))
    }

    /// A new connection of a pool thread, on a runtime of its own. Blocking: call outside
    /// any runtime.
    pub(super) fn connect_pool(&self, trips: &Arc<AtomicU64>) -> Result<Conn, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start a runtime for PostgreSQL: {e}")))?;
        match &self.tls {
            Some(tls) => {
                let (client, connection) = rt
                    .block_on(self.config.connect(tls.clone()))
                    .map_err(|e| self.cannot_connect(e))?;
                Ok(Conn::new(rt, client, connection, trips.clone()))
            }
            None => {
                let (client, connection) = rt
                    .block_on(self.config.connect(NoTls))
                    .map_err(|e| self.cannot_connect(e))?;
                Ok(Conn::new(rt, client, connection, trips.clone()))
            }
        }
    }

    fn cannot_connect(&self, e: postgres::Error) -> StoreError {
        // The driver's Display stops at "error performing TLS handshake"; the cause (say,
        // an unknown issuer) is its source.
        let cause = std::error::Error::source(&e)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        bad(format!(
            "cannot connect to PostgreSQL {}: {e}{cause}",
            self.shown
        ))
    }
}
