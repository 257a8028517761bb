//! `Cluster`: several nodes named `<name>.hearth.test`, each with its own data dir, its
//! resolver pointed at the test DNS authority, and (optionally) TLS from a test CA.
use std::path::PathBuf;
use std::sync::Arc;

use hearth::clock::OffsetClock;
use hearth::pb::protocol::auth::v1::{
    auth_service_client::AuthServiceClient, FederateRequest, LoginFederatedRequest, Session,
};
use hearth::pb::protocol::harmonytypes::v1::Token;
use hearth::pb::tangle::client::auth::{auth_client::AuthClient, SignUp};
use hearth::{Config, Node, RunningNode};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Code, Request, Status};

use crate::dns::Dns;

pub const PASSWORD: &str = "correct horse battery staple";

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The `hearth` binary next to this test's own executable, built if it is not there yet.
pub fn hearth_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("hearth");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = std::process::Command::new(cargo)
            .args(["build", "-p", "hearth", "--bin", "hearth"])
            .current_dir(workspace())
            .status()
            .unwrap();
        assert!(ok.success(), "building the hearth binary failed");
    }
    bin
}

/// A test certificate authority and where its PEM lives.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Hearth test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca, key }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Writes a certificate for `host` signed by this CA; returns (cert, key) paths.
    pub fn issue(&self, host: &str) -> (PathBuf, PathBuf) {
        let params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.key).unwrap();
        let (c, k) = (
            self.dir.path().join(format!("{host}.pem")),
            self.dir.path().join(format!("{host}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

pub struct Member {
    pub server_id: String,
    pub config: Config,
    pub node: Option<RunningNode>,
    pub clock: Arc<OffsetClock>,
    pub channel: Option<Channel>,
    ca_pem: Option<Vec<u8>>,
    dir: tempfile::TempDir,
}

/// Settings for a node of the cluster.
pub fn node_config(name: &str, dns: &Dns, data_dir: PathBuf, port: u16) -> Config {
    let mut c = Config {
        server_id: hearth::identity::server_id::ServerId::parse(&format!("{name}.hearth.test"))
            .unwrap(),
        data_dir,
        ..Config::default()
    };
    c.listen.addr = format!("127.0.0.1:{port}").parse().unwrap();
    c.passwords.argon2_memory_kib = 256;
    c.passwords.argon2_iterations = 1;
    c.accounts.sign_ins_per_ip_per_minute = 10_000;
    // Every node and client of a test shares 127.0.0.1: per-IP budgets would be one budget.
    c.limits.hashing_calls_per_ip_per_minute = 100_000;
    c.limits.peer_calls_per_ip_per_minute = 100_000;
    c.federation.dns_servers = vec![dns.addr];
    c.federation.allow_private_addresses = true;
    c.federation.allow_plaintext = true;
    c
}

impl Member {
    pub fn running(&self) -> &RunningNode {
        self.node.as_ref().expect("node is running")
    }

    pub fn domain(&self) -> &Arc<hearth::domain::Services> {
        self.running().services()
    }

    pub fn id(&self) -> hearth::identity::server_id::ServerId {
        self.config.server_id.clone()
    }

    pub async fn start(&mut self) {
        let node = Node::start_with_clock(self.config.clone(), self.clock.clone())
            .await
            .unwrap_or_else(|e| panic!("{} did not start: {e}", self.server_id));
        // Keep the port the node got, so a restart comes back at the same address.
        self.config.listen.addr = node.addr();
        let mut endpoint = Channel::from_shared(node.url()).unwrap();
        if let Some(pem) = &self.ca_pem {
            let tls = ClientTlsConfig::new()
                .domain_name(self.server_id.clone())
                .ca_certificate(Certificate::from_pem(pem));
            endpoint = endpoint.tls_config(tls).unwrap();
        }
        self.channel = Some(endpoint.connect().await.unwrap());
        self.node = Some(node);
    }

    pub async fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
        self.channel = None;
    }

    fn channel(&self) -> Channel {
        self.channel.clone().expect("node is running")
    }

    pub fn harmony(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel())
    }

    pub fn peer_auth(&self) -> hearth::pb::auth::auth_client::AuthClient<Channel> {
        hearth::pb::auth::auth_client::AuthClient::new(self.channel())
    }

    /// Signs up a local user; returns (session token, user id).
    pub async fn sign_up(&self, email: &str) -> (String, u64) {
        let a = AuthClient::new(self.channel())
            .sign_up(SignUp {
                email: Some(email.into()),
                password: Some(PASSWORD.into()),
                name: email.split('@').next().unwrap().into(),
                invite_code: None,
            })
            .await
            .unwrap()
            .into_inner();
        (a.token, a.user.unwrap().id)
    }

    /// Signs in again as `email`: a second session; returns its token.
    pub async fn sign_in(&self, email: &str) -> String {
        AuthClient::new(self.channel())
            .sign_in(hearth::pb::tangle::client::auth::SignIn {
                email: email.into(),
                password: PASSWORD.into(),
                totp: None,
            })
            .await
            .unwrap()
            .into_inner()
            .token
    }

    /// The id of the session of `token`.
    pub async fn session_id(&self, token: &str) -> u64 {
        AuthClient::new(self.channel())
            .get_sessions(authed(
                hearth::pb::tangle::client::auth::GetSessions {},
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .current
    }

    /// Ends the sessions `ids` of the caller of `token` (tangle RevokeSessions).
    pub async fn revoke_sessions(&self, token: &str, ids: Vec<u64>) {
        AuthClient::new(self.channel())
            .revoke_sessions(authed(
                hearth::pb::tangle::client::auth::RevokeSessions { session_ids: ids },
                token,
            ))
            .await
            .unwrap();
    }

    /// A personal access token of the caller of `session` with `scopes`: (uuid, value).
    pub async fn create_token(&self, session: &str, scopes: &[&str]) -> (String, String) {
        use hearth::pb::tokens::v1::{
            tokens_service_client::TokensServiceClient, CreateTokenRequest, TokenMetadata,
            TokenPermissions,
        };
        let req = CreateTokenRequest {
            token_metadata: Some(TokenMetadata {
                name: "federation".into(),
                expires_at: None,
            }),
            token_permissions: Some(TokenPermissions {
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
            }),
        };
        let r = TokensServiceClient::new(self.channel())
            .create_token(authed(req, session))
            .await
            .unwrap()
            .into_inner();
        (r.token_uuid.unwrap().uuid, r.token_value.unwrap().token)
    }

    /// Expires the caller's personal access token `uuid` now.
    pub async fn force_token_expiration(&self, session: &str, uuid: &str) {
        use hearth::pb::tokens::v1::{
            tokens_service_client::TokensServiceClient, ForceTokenExpirationRequest, TokenUuid,
        };
        let req = ForceTokenExpirationRequest {
            token_uuid: Some(TokenUuid { uuid: uuid.into() }),
        };
        TokensServiceClient::new(self.channel())
            .force_token_expiration(authed(req, session))
            .await
            .unwrap();
    }

    /// Federate on this (home) node for `target`.
    pub async fn federate(&self, token: &str, target: &str) -> Result<Token, Status> {
        let req = authed(
            FederateRequest {
                server_id: target.into(),
            },
            token,
        );
        Ok(self
            .harmony()
            .federate(req)
            .await?
            .into_inner()
            .token
            .unwrap())
    }

    /// LoginFederated on this node with a token from `origin`.
    pub async fn login_federated(&self, token: Token, origin: &str) -> Result<Session, Status> {
        let req = LoginFederatedRequest {
            auth_token: Some(token),
            server_id: origin.into(),
        };
        Ok(self
            .harmony()
            .login_federated(req)
            .await?
            .into_inner()
            .session
            .unwrap())
    }

    /// Pong with `token` on this node.
    pub async fn pong(&self, token: &str) -> Result<(), Status> {
        let req = authed(hearth::pb::test::v1::PongRequest {}, token);
        hearth::pb::test::v1::test_auth_service_client::TestAuthServiceClient::new(self.channel())
            .pong(req)
            .await
            .map(|_| ())
    }

    /// Links this node with `other` now.
    pub async fn link(&self, other: &Member) -> Result<(), hearth::domain::DomainError> {
        self.running().services().links.link_now(&other.id()).await
    }

    /// Writes this node's config to a TOML file, for running the CLI against its data dir.
    pub fn config_file(&self) -> PathBuf {
        let path = self.dir.path().join("hearth.toml");
        std::fs::write(&path, toml::to_string(&self.config).unwrap()).unwrap();
        path
    }

    /// Runs `hearth ARGS --config <this node's config>`; returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = std::process::Command::new(hearth_bin())
            .args(args)
            .arg("--config")
            .arg(self.config_file())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The key this node has pinned for `server`, if any.
    pub async fn pinned(&self, server: &str) -> Option<[u8; 32]> {
        let peers = self.domain().peers.list().await.unwrap();
        peers
            .into_iter()
            .find(|p| p.server_id == server)
            .and_then(|p| p.pinned_key)
    }
}

pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    req
}

pub struct Cluster {
    pub dns: Dns,
    pub members: Vec<Member>,
    _ca: Option<TestCa>,
}

/// How to build a cluster.
#[derive(Default)]
pub struct Options {
    /// Serve and federate over TLS with a test CA.
    pub tls: bool,
    /// List every other node in `[[federation.peers]]`, so links start at boot.
    pub peers: bool,
}

impl Cluster {
    pub async fn start(names: &[&str]) -> Self {
        Self::start_with(names, Options::default(), |_, _| {}).await
    }

    /// Starts nodes `names`; `edit` may change each node's config before it starts.
    pub async fn start_with(
        names: &[&str],
        opts: Options,
        edit: impl Fn(&str, &mut Config),
    ) -> Self {
        let dns = Dns::start().await;
        let ca = opts.tls.then(TestCa::new);
        let mut members = Vec::new();
        for name in names {
            let dir = tempfile::tempdir().unwrap();
            let mut config = node_config(name, &dns, dir.path().join("data"), 0);
            if let Some(ca) = &ca {
                let (cert, key) = ca.issue(&format!("{name}.hearth.test"));
                config.tls = Some(hearth::config::Tls { cert, key });
                config.federation.allow_plaintext = false;
                config.federation.extra_ca = Some(ca.ca_path());
            }
            if opts.peers {
                for other in names.iter().filter(|o| *o != name) {
                    config.federation.peers.push(hearth::config::Peer {
                        server_id: hearth::identity::server_id::ServerId::parse(&format!(
                            "{other}.hearth.test"
                        ))
                        .unwrap(),
                        url: None,
                    });
                }
            }
            edit(name, &mut config);
            members.push(Member {
                server_id: config.server_id.to_string(),
                config,
                node: None,
                clock: OffsetClock::new(),
                channel: None,
                ca_pem: ca.as_ref().map(|c| std::fs::read(c.ca_path()).unwrap()),
                dir,
            });
        }
        for m in &mut members {
            m.start().await;
            let name = m.server_id.trim_end_matches(".hearth.test").to_owned();
            dns.add_node(&name, m.config.listen.addr.port()).await;
        }
        Self {
            dns,
            members,
            _ca: ca,
        }
    }

    pub fn get(&self, name: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.server_id.starts_with(&format!("{name}.")))
            .unwrap()
    }

    pub fn get_mut(&mut self, name: &str) -> &mut Member {
        self.members
            .iter_mut()
            .find(|m| m.server_id.starts_with(&format!("{name}.")))
            .unwrap()
    }
}

pub fn expect_err<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    code: Code,
    needle: &str,
) -> tonic::Status {
    let s = r.expect_err("expected a refusal");
    assert_eq!(s.code(), code, "{s:?}");
    assert!(
        s.message().contains(needle),
        "message {:?} lacks {needle:?}",
        s.message()
    );
    s
}
