//! `TestNode`: a node on 127.0.0.1:0 with a temp data dir, a manual clock, fast argon2
//! (selected explicitly here, never by a cfg), and typed clients.
use std::path::PathBuf;
use std::sync::Arc;

use hearth::clock::ManualClock;
use hearth::pb;
use hearth::{Config, Node, RunningNode};
use tempfile::TempDir;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

pub type Tangle = pb::tangle::client::auth::auth_client::AuthClient<Channel>;
pub type Public =
    pb::accounts::v1::public_accounts_service_client::PublicAccountsServiceClient<Channel>;
pub type Accounts = pb::accounts::v1::accounts_service_client::AccountsServiceClient<Channel>;
pub type Tokens = pb::tokens::v1::tokens_service_client::TokensServiceClient<Channel>;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestNode {
    pub node: Option<RunningNode>,
    pub dir: Arc<TempDir>,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub channel: Channel,
}

/// The test policy: cheap argon2 and generous per-IP limits, on loopback port 0.
pub fn test_config(data_dir: PathBuf) -> Config {
    let mut c = Config {
        data_dir,
        ..Config::default()
    };
    c.listen.addr = "127.0.0.1:0".parse().unwrap();
    c.passwords.argon2_memory_kib = 256;
    c.passwords.argon2_iterations = 1;
    c.accounts.sign_ins_per_ip_per_minute = 10_000;
    c.accounts.codes_per_hour = 100;
    c.limits.hashing_calls_per_ip_per_minute = 100_000;
    c.limits.mail_calls_per_ip_per_minute = 100_000;
    c.limits.peer_calls_per_ip_per_minute = 100_000;
    c.limits.flow_calls_per_ip_per_minute = 100_000;
    c.limits.session_calls_per_ip_per_minute = 100_000;
    c
}

impl TestNode {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut config = test_config(dir.path().join("data"));
        edit(&mut config);
        Self::boot(dir, config, ManualClock::new()).await
    }

    /// Starts another node of `from`'s cluster: the same node key (copied into its new data
    /// dir; the JWT keys come from the cluster's database), then `edit`.
    pub async fn start_beside(from: &TestNode, edit: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut config = test_config(dir.path().join("data"));
        edit(&mut config);
        std::fs::create_dir_all(&config.data_dir).unwrap();
        std::fs::copy(
            from.config.data_dir.join("node.key"),
            config.data_dir.join("node.key"),
        )
        .unwrap();
        Self::boot(dir, config, ManualClock::new()).await
    }

    async fn boot(dir: Arc<TempDir>, config: Config, clock: Arc<ManualClock>) -> Self {
        let node = Node::start_with_clock(config.clone(), clock.clone())
            .await
            .unwrap_or_else(|e| panic!("node did not start: {e}"));
        let channel = Channel::from_shared(node.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            node: Some(node),
            dir,
            clock,
            config,
            channel,
        }
    }

    /// Stops the node and starts it again on the same data dir (a new port).
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let (dir, config, clock) = (self.dir.clone(), self.config.clone(), self.clock.clone());
        Self::boot(dir, config, clock).await
    }

    /// Like `restart`, with a changed config.
    pub async fn restart_with(mut self, edit: impl FnOnce(&mut Config)) -> Self {
        edit(&mut self.config);
        self.restart().await
    }

    pub async fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
    }

    pub fn running(&self) -> &RunningNode {
        self.node.as_ref().expect("node is running")
    }

    pub fn domain(&self) -> &Arc<hearth::domain::Services> {
        self.running().services()
    }

    pub fn url(&self) -> String {
        self.running().url()
    }

    pub fn tangle(&self) -> Tangle {
        Tangle::new(self.channel.clone())
    }

    pub fn public(&self) -> Public {
        Public::new(self.channel.clone())
    }

    pub fn accounts(&self) -> Accounts {
        Accounts::new(self.channel.clone())
    }

    pub fn tokens(&self) -> Tokens {
        Tokens::new(self.channel.clone())
    }

    pub fn test_auth(
        &self,
    ) -> pb::test::v1::test_auth_service_client::TestAuthServiceClient<Channel> {
        pb::test::v1::test_auth_service_client::TestAuthServiceClient::new(self.channel.clone())
    }

    /// Signs up `email` through tangle and returns (token, session id, user id).
    pub async fn sign_up(&self, email: &str) -> (String, u64, u64) {
        let a = self
            .tangle()
            .sign_up(pb::tangle::client::auth::SignUp {
                email: Some(email.into()),
                password: Some(PASSWORD.into()),
                name: "Test".into(),
                invite_code: None,
            })
            .await
            .unwrap_or_else(|s| panic!("sign-up of {email} failed: {s:?}"))
            .into_inner();
        (a.token, a.session_id, a.user.unwrap().id)
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Result<String, Status> {
        Ok(self
            .tangle()
            .sign_in(pb::tangle::client::auth::SignIn {
                email: email.into(),
                password: password.into(),
                totp: None,
            })
            .await?
            .into_inner()
            .token)
    }

    /// GetAccount (tangle) for the session `token`.
    pub async fn account(&self, token: &str) -> pb::tangle::client::auth::Account {
        self.tangle()
            .get_account(authed(pb::tangle::client::auth::GetAccount {}, token))
            .await
            .unwrap()
            .into_inner()
    }

    /// Pong with `token` (None: no authorization header).
    pub async fn pong(&self, token: Option<&str>) -> Result<(), Status> {
        let mut req = Request::new(pb::test::v1::PongRequest {});
        if let Some(t) = token {
            req.metadata_mut()
                .insert("authorization", MetadataValue::try_from(t).unwrap());
        }
        self.test_auth().pong(req).await.map(|_| ())
    }

    /// Runs the `hearth` CLI on this node's data dir and database (cheap argon2, like the
    /// node).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
        if let Some(url) = &self.config.store.url {
            cmd.env("HEARTH_STORE_URL", url);
        }
        cmd.args(args)
            .env("HEARTH_DATA_DIR", &self.config.data_dir)
            .env("HEARTH_PASSWORDS_ARGON2_MEMORY_KIB", "256")
            .env("HEARTH_PASSWORDS_ARGON2_ITERATIONS", "1")
            .output()
            .unwrap()
    }

    /// The newest mail to `to` in the outbox.
    pub async fn last_mail_to(&self, to: &str) -> hearth::domain::model::Mail {
        let mails = self.domain().outbox.list().await.unwrap();
        mails
            .into_iter()
            .find(|m| m.recipient == to)
            .unwrap_or_else(|| panic!("no mail to {to}"))
    }
}

/// The standard output of a CLI run that must succeed (else its standard error fails the
/// test).
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The body of a plain HTTP GET (health, metrics).
pub async fn get_text(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The first 8-digit number in a mail's text.
pub fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 8)
        .unwrap_or_else(|| panic!("no code in {text}"))
        .to_owned()
}

/// A request carrying `authorization: Bearer <token>`.
/// The token a response hands back in its `authorization: Bearer …` metadata.
pub fn bearer_in<T>(res: &tonic::Response<T>) -> String {
    res.metadata()
        .get("authorization")
        .expect("an authorization header")
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .expect("a Bearer token")
        .to_owned()
}

pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    req
}

/// The stable reason code of a refusal (`google.rpc.ErrorInfo.reason`).
pub fn reason(s: &Status) -> String {
    tonic_types::StatusExt::get_details_error_info(s)
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// Like [`assert_code`], and the refusal's reason code is `why`.
pub fn assert_refused<T: std::fmt::Debug>(
    r: Result<T, Status>,
    code: Code,
    why: &str,
    needle: &str,
) -> Status {
    let s = assert_code(r, code, needle);
    assert_eq!(reason(&s), why, "{s:?}");
    s
}

pub fn assert_code<T: std::fmt::Debug>(r: Result<T, Status>, code: Code, needle: &str) -> Status {
    let s = r.expect_err("expected an error");
    assert_eq!(s.code(), code, "{s:?}");
    assert!(
        s.message().contains(needle),
        "message {:?} lacks {needle:?}",
        s.message()
    );
    s
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(node) = &self.node {
            node.services().store().close();
        }
    }
}

/// A tangle VerifyEmail request.
pub fn verify(email: &str, code: &str) -> pb::tangle::client::auth::VerifyEmail {
    pb::tangle::client::auth::VerifyEmail {
        email: email.into(),
        code: code.into(),
    }
}

/// A tangle ResetPassword request (with `confirm`: the code and the new password).
pub fn reset(
    email: &str,
    confirm: Option<(&str, &str)>,
) -> pb::tangle::client::auth::ResetPassword {
    pb::tangle::client::auth::ResetPassword {
        email: email.into(),
        confirm: confirm.map(|(code, pw)| {
            pb::tangle::client::auth::reset_password::ResetPasswordConfirm {
                code: code.into(),
                new_password: pw.into(),
            }
        }),
    }
}
