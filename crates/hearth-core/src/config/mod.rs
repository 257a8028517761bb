//! The configuration contract of DESIGN.md §7: built-in defaults, a TOML file, and
//! `HEARTH_<SECTION>_<KEY>` environment overrides. Unknown keys and bad values are errors
//! that name the key and say what is expected.
mod defaults;
mod env;
mod load;
pub mod log_filter;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::identity::server_id::ServerId;

/// The commented example config; `hearth init` writes it, and a test keeps it in step with
/// the structs below.
pub const EXAMPLE: &str = include_str!("../../../../config/hearth.example.toml");

/// A configuration problem, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (not a `#[source]`: the message already says why, and
    /// error chains would print it twice).
    #[error("cannot read config file {path}: {reason}{}", if reason.kind() == std::io::ErrorKind::NotFound { " (write one with `hearth init PATH`, or leave out --config for the built-in defaults)" } else { "" })]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key is unknown or its value is wrong.
    #[error("config key `{key}`: {message}")]
    Key {
        /// The dotted key, e.g. `listen.addr`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl ConfigError {
    fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole node configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's canonical name.
    pub server_id: ServerId,
    /// SQLite file, node key, JWT keys.
    pub data_dir: PathBuf,
    /// Where the node listens.
    pub listen: Listen,
    /// TLS for the listener; absent means plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// Registration and sign-in rules.
    pub accounts: Accounts,
    /// Password hashing (DESIGN.md §3).
    pub passwords: Passwords,
    /// Session lifetimes.
    pub sessions: Sessions,
    /// Outgoing mail.
    pub mail: Mail,
    /// Links with other nodes.
    pub federation: Federation,
    /// OAuth/OIDC providers for GetJWT.
    pub oidc: Oidc,
    /// JWTs issued by GetJWT.
    pub jwt: Jwt,
    /// Connection and request bounds.
    pub limits: Limits,
    /// The database.
    pub store: StoreConfig,
    /// Logging.
    pub log: Log,
    /// Where `/metrics` is served.
    pub metrics: MetricsConfig,
    /// Browsers.
    pub http: HttpConfig,
    /// Personal access tokens.
    pub tokens: Tokens,
    /// Harmony step-by-step auth flows.
    pub flows: Flows,
}

/// `[flows]`: Harmony's step-by-step auth (BeginAuth, NextStep, StepBack, StreamSteps).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Flows {
    /// A flow not finished this long after BeginAuth is forgotten.
    pub lifetime_secs: u64,
}

/// `[tokens]`: personal access tokens (tokens.v1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Tokens {
    /// No token is created or updated to expire later than this many days from now.
    pub max_lifetime_days: u64,
}

/// `[http]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Origins whose pages may call the node with gRPC-Web (`"*"`: any).
    pub cors_origins: Vec<String>,
}

/// `[metrics]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A separate listener for `/metrics` (absent: on the main port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A level (`info`) or directives (`info,hearth=debug`); `HEARTH_LOG` wins.
    pub level: String,
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// `[store]`
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user:pass@host:5432/db` selects PostgreSQL (several nodes on one
    /// database); absent, SQLite at `<data_dir>/hearth.sqlite3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PEM file of the CA(s) that signed the PostgreSQL server's certificate, used when
    /// `url` says `sslmode=require`; absent, the public web roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// SQLite's durability: `full` syncs every commit (survives power loss), `normal` may
    /// lose the last commits on power loss (not on a crash of the process).
    pub synchronous: Synchronous,
}

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit reaches the disk before it is acknowledged.
    Full,
    /// Faster; the last commits may be lost on power loss.
    Normal,
}

/// `[limits]`: bounds on connections and requests, so a flood cannot exhaust file
/// descriptors or memory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections served at once (further ones wait in the kernel's backlog); also kept
    /// below the process's open-file limit.
    pub max_connections: usize,
    /// Time from accepting a connection to its first byte, and for HTTP/1.1 to a complete
    /// request header.
    pub header_read_timeout_secs: u64,
    /// A connection that moves no bytes for this long is closed.
    pub idle_timeout_secs: u64,
    /// Longest time to answer a request (for a stream: to its first response).
    pub request_timeout_secs: u64,
    /// HTTP/2 requests open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Requests handled at once by the whole node; more are refused at once.
    pub max_requests_in_flight: usize,
    /// Calls per client IP and minute that hash a password (sign-up, sign-in, new
    /// password).
    pub hashing_calls_per_ip_per_minute: u32,
    /// Calls per client IP and minute that send mail (reset, resend).
    pub mail_calls_per_ip_per_minute: u32,
    /// Calls per client IP and minute of federation (Federate, LoginFederated) and to
    /// identity providers (GetJWT).
    pub peer_calls_per_ip_per_minute: u32,
    /// Calls per client IP and minute between nodes (the peer challenge, TokenRefresh,
    /// RevokeFederated); each authenticated peer also has `federation.calls_per_peer_per_minute`.
    pub node_calls_per_ip_per_minute: u32,
    /// Calls per client IP and minute that start or advance a flow or look up an invite.
    pub flow_calls_per_ip_per_minute: u32,
    /// Calls per client IP and minute that make a session from a credential
    /// (TokenAuthorization, RefreshSession).
    pub session_calls_per_ip_per_minute: u32,
    /// Frames one Osmium socket may send per second (three times as many at once); a
    /// socket over it is closed (1008).
    pub socket_frames_per_second: u32,
}

/// `[listen]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// gRPC, gRPC-Web and HTTP on one port; port 0 picks a free port.
    #[serde(with = "socket_addr")]
    pub addr: SocketAddr,
    /// Proxies whose `X-Forwarded-For` is believed; empty means none.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// `[tls]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone.
    Open,
    /// Only with an invite code.
    Invite,
    /// Nobody (the CLI still can).
    Closed,
}

/// `[accounts]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Accounts {
    /// open | invite | closed
    pub registration: Registration,
    /// Allow name-only guest accounts (tangle SignUp without e-mail).
    pub allow_guests: bool,
    /// Refuse sign-in until the e-mail address is verified.
    pub require_email_verification: bool,
    /// Sign-in attempts allowed per client IP per minute.
    pub sign_ins_per_ip_per_minute: u32,
    /// E-mail codes issued per account and purpose within an hour; more requests are
    /// answered the same way but send nothing.
    pub codes_per_hour: u32,
    /// Users may create REGISTRATION invites with CreateInvite (operators always can,
    /// with `hearth invite create --registration`).
    pub users_can_invite: bool,
    /// Days between DeleteAccount and the deletion, during which the holder may sign in
    /// and cancel; 0 deletes at once.
    pub delete_grace_days: u32,
}

/// `[passwords]`: argon2id parameters and the hashing concurrency cap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Passwords {
    /// Memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// Time cost (iterations).
    pub argon2_iterations: u32,
    /// Parallelism.
    pub argon2_parallelism: u32,
    /// At most this many hashes run at once; 0 means the number of CPU cores.
    pub max_concurrent_hashes: usize,
}

/// `[sessions]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    /// A session unused this long expires.
    pub idle_timeout_secs: u64,
    /// A session expires this long after sign-in, used or not.
    pub lifetime_secs: u64,
    /// Sessions kept in memory (36 bytes each) so that resolving one reads no database;
    /// past it, sessions are read from the database. 0: off. Off on nodes that require
    /// verified e-mail.
    pub memory_index_max: usize,
}

/// `[mail]`
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Mail {
    /// `smtp://` (STARTTLS when offered) or `smtps://`; absent keeps mail in the outbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// SMTP user name, when not in the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
    /// SMTP password, when not in the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<String>,
    /// Sender address.
    pub from: String,
    /// Base URL of this node's HTTP routes, used in links inside mails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

/// Which nodes may federate with this one.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FederationPolicy {
    /// Any discoverable node; its key is pinned on first use.
    Open,
    /// Only `[[federation.peers]]`.
    Allowlist,
    /// None.
    Closed,
}

/// `[federation]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Federation {
    /// open | allowlist | closed
    pub policy: FederationPolicy,
    /// server_ids always refused.
    pub deny: Vec<ServerId>,
    /// DNS servers for discovery; empty uses the system resolver.
    #[serde(with = "socket_addrs")]
    pub dns_servers: Vec<SocketAddr>,
    /// Allow loopback/private targets (tests, LANs).
    pub allow_private_addresses: bool,
    /// Federation over http:// instead of https://.
    pub allow_plaintext: bool,
    /// Refuse LoginFederated for users whose home session was made without a second factor.
    pub require_second_factor: bool,
    /// A PEM CA trusted in addition to the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_ca: Option<PathBuf>,
    /// Port used when discovery finds no SRV record or well-known document.
    pub default_port: u16,
    /// Port of `/.well-known/hearth/server` lookups; absent: 443 (https) or 80 (http).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub well_known_port: Option<u16>,
    /// Calls a minute from one authenticated peer (Authenticate once its proof verifies,
    /// TokenRefresh, RevokeFederated), whatever address it calls from.
    pub calls_per_peer_per_minute: u32,
    /// When discovery cannot find a node that linked here, ask the URL it gave for its key
    /// instead (networks without DNS for their nodes). Off: only discovery names a node.
    pub accept_caller_urls: bool,
    /// Peers linked at start-up.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Peer>,
}

/// `[[federation.peers]]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The peer's server_id.
    pub server_id: ServerId,
    /// Optional static route; otherwise discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `[oidc]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Oidc {
    /// `[[oidc.providers]]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<OidcProvider>,
}

/// `[[oidc.providers]]`
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// Matched against Account.provider.
    pub id: String,
    /// oidc | oauth
    #[serde(rename = "type")]
    pub kind: String,
    /// oidc: the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Optional client id; with a secret, introspection is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Optional client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// oauth: the user endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_url: Option<String>,
    /// oauth: the field that must equal provider_account_id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_field: Option<String>,
    /// http:// endpoints only when true.
    #[serde(default)]
    pub allow_http: bool,
    /// First use creates the local account.
    #[serde(default = "yes")]
    pub auto_register: bool,
    /// oidc: a provider account whose verified e-mail matches a local account's signs in
    /// as that account (only for providers whose e-mail verification you trust).
    #[serde(default)]
    pub link_verified_email: bool,
    /// Accept access tokens without knowing which application they were issued to: an
    /// oauth provider (nothing tells), or an oidc one without client credentials (no
    /// introspection). Off by default: a token some other app obtained for the user would
    /// sign in here.
    #[serde(default)]
    pub accept_tokens_of_any_app: bool,
}

fn yes() -> bool {
    true
}

/// `Debug` for config sections that hold credentials: secrets print as `<redacted>`, and a
/// URL keeps its scheme and host but not its userinfo.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

fn url_without_userinfo(url: &Option<String>) -> Option<String> {
    url.as_ref()
        .map(|u| match (u.split_once("://"), u.rfind('@')) {
            (Some((scheme, _)), Some(at)) => format!("{scheme}://<redacted>@{}", &u[at + 1..]),
            _ => u.clone(),
        })
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("smtp_url", &url_without_userinfo(&self.smtp_url))
            .field("smtp_username", &self.smtp_username)
            .field("smtp_password", &redacted(&self.smtp_password))
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &url_without_userinfo(&self.url))
            .field("ca_file", &self.ca_file)
            .field("synchronous", &self.synchronous)
            .finish()
    }
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(&self.client_secret))
            .field("user_url", &self.user_url)
            .field("id_field", &self.id_field)
            .field("allow_http", &self.allow_http)
            .field("auto_register", &self.auto_register)
            .field("link_verified_email", &self.link_verified_email)
            .finish()
    }
}

/// `[jwt]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Jwt {
    /// The `aud` claim.
    pub audience: String,
    /// Token lifetime.
    pub lifetime_secs: u64,
}

impl Config {
    /// Path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("hearth.sqlite3")
    }
}

mod socket_addr {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;

    pub fn serialize<S: Serializer>(addr: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(addr)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }

    pub fn parse(text: &str) -> Result<SocketAddr, String> {
        text.parse().map_err(|_| {
            format!("`{text}` is not a socket address (expected host:port, e.g. 127.0.0.1:7450)")
        })
    }
}

mod socket_addrs {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;

    pub fn serialize<S: Serializer>(addrs: &[SocketAddr], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(addrs.iter().map(|a| a.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| super::socket_addr::parse(t).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests;
