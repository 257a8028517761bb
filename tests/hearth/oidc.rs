//! Issue: GetJWT (auth.v1alpha1) against a real OpenID Connect provider process
//! (`oidc-provider` from npm, installed by scripts/install-test-deps.sh) and a small
//! `oauth` user endpoint served here; Hearth's JWTs as credentials, and every refusal.
use std::process::{Child, Command, Stdio};

use hearth::config::OidcProvider;
use hearth::pb::auth::v1alpha1::{auth_api_client::AuthApiClient, Account, GetJwtRequest};
use hearth::pb::tangle::client::auth as tangle;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::support::*;

/// The provider process; killed when dropped.
struct RealProvider {
    child: Child,
    issuer: String,
    // Kept open: a provider writing to a closed pipe would die.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Drop for RealProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealProvider {
    fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/provider.mjs");
        let modules = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/oidc/node_modules/oidc-provider"
        );
        assert!(
            std::path::Path::new(modules).exists(),
            "oidc-provider is not installed: run `bash scripts/install-test-deps.sh` (the README's test command does)"
        );
        let mut child = Command::new("node")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        Self {
            child,
            issuer: v["issuer"].as_str().unwrap().to_owned(),
            _stdout: stdout,
        }
    }

    /// A fresh access token for `sub` issued to `client`.
    async fn mint(&self, sub: &str, client: &str) -> String {
        get_text(&format!("{}/__mint?sub={sub}&client={client}", self.issuer)).await
    }

    /// Revokes `token` at the provider (as its client `hearth`).
    async fn revoke(&self, token: &str) {
        let res = reqwest::Client::new()
            .post(format!("{}/token/revocation", self.issuer))
            .basic_auth("hearth", Some("hearth-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }

    fn config(&self) -> OidcProvider {
        OidcProvider {
            id: "op".into(),
            kind: "oidc".into(),
            issuer: Some(self.issuer.clone()),
            client_id: Some("hearth".into()),
            client_secret: Some("hearth-secret".into()),
            user_url: None,
            id_field: None,
            allow_http: true,
            auto_register: true,
            link_verified_email: false,
            accept_tokens_of_any_app: false,
        }
    }
}

fn account(provider: &str, kind: &str, sub: &str, token: &str) -> GetJwtRequest {
    GetJwtRequest {
        account: Some(Account {
            provider: provider.into(),
            r#type: kind.into(),
            provider_account_id: sub.into(),
            access_token: token.into(),
        }),
    }
}

async fn get_jwt(n: &TestNode, req: GetJwtRequest) -> Result<String, Status> {
    let mut c: AuthApiClient<Channel> = AuthApiClient::new(n.channel.clone());
    Ok(c.get_jwt(req).await?.into_inner().token)
}

/// The claims of a JWT (not checked: the node does that).
fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let body = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn node_with(providers: Vec<OidcProvider>, allow_private: bool) -> TestNode {
    TestNode::start_with(move |c| {
        c.oidc.providers = providers;
        c.federation.allow_private_addresses = allow_private;
    })
    .await
}

#[tokio::test]
async fn a_real_oidc_providers_token_becomes_a_hearth_jwt() {
    let op = RealProvider::start();
    let n = node_with(vec![op.config()], true).await;
    let token = op.mint("alice", "hearth").await;
    let jwt = get_jwt(&n, account("op", "oidc", "alice", &token))
        .await
        .unwrap();
    let c = claims(&jwt);
    assert_eq!(c["iss"], "localhost");
    assert_eq!(c["aud"], "hearth");
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        3600
    );
    // The JWT is a credential; the same provider account is the same user next time.
    n.pong(Some(&jwt)).await.unwrap();
    let sessions = n
        .tangle()
        .get_sessions(authed(tangle::GetSessions {}, &jwt))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sessions.current.to_string(), c["sid"].as_str().unwrap());
    let again = get_jwt(
        &n,
        account("op", "oidc", "alice", &op.mint("alice", "hearth").await),
    )
    .await
    .unwrap();
    assert_eq!(claims(&again)["sub"], c["sub"]);
    assert_ne!(claims(&again)["sid"], c["sid"]);

    // Revoking the JWT's session refuses it at once.
    let sid: u64 = c["sid"].as_str().unwrap().parse().unwrap();
    n.domain().sessions.revoke_by_id(sid).await.unwrap();
    assert_refused(
        n.pong(Some(&jwt)).await,
        Code::Unauthenticated,
        "JWT_INVALID",
        "revoked",
    );
    n.pong(Some(&again)).await.unwrap();
}

#[tokio::test]
async fn every_refusal_of_get_jwt_has_its_own_reason() {
    let op = RealProvider::start();
    let n = node_with(vec![op.config()], true).await;
    let token = op.mint("alice", "hearth").await;

    let r = get_jwt(&n, account("nope", "oidc", "alice", &token)).await;
    assert_refused(r, Code::InvalidArgument, "PROVIDER_UNKNOWN", "nope");
    let r = get_jwt(&n, account("op", "oauth", "alice", &token)).await;
    assert_refused(r, Code::InvalidArgument, "PROVIDER_TYPE_MISMATCH", "oidc");
    let r = get_jwt(&n, account("op", "oidc", "bob", &token)).await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "PROVIDER_SUBJECT_MISMATCH",
        "another account",
    );
    // A token the provider issued to another application: refused even though it is valid.
    let foreign = op.mint("alice", "other-app").await;
    let r = get_jwt(&n, account("op", "oidc", "alice", &foreign)).await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "PROVIDER_TOKEN_OTHER_CLIENT",
        "another application",
    );
    let r = get_jwt(&n, account("op", "oidc", "alice", "made-up-token")).await;
    assert_refused(
        r,
        Code::Unauthenticated,
        "PROVIDER_TOKEN_INACTIVE",
        "not active",
    );
    op.revoke(&token).await;
    let r = get_jwt(&n, account("op", "oidc", "alice", &token)).await;
    assert_refused(
        r,
        Code::Unauthenticated,
        "PROVIDER_TOKEN_INACTIVE",
        "not active",
    );
    let r = get_jwt(&n, GetJwtRequest { account: None }).await;
    assert_refused(r, Code::InvalidArgument, "FIELD_INVALID", "account");

    // The provider goes away.
    let fresh = op.mint("alice", "hearth").await;
    drop(op);
    let r = get_jwt(&n, account("op", "oidc", "alice", &fresh)).await;
    assert_refused(
        r,
        Code::Unavailable,
        "PROVIDER_UNAVAILABLE",
        "could not be asked",
    );
}

#[tokio::test]
async fn a_provider_that_links_by_verified_e_mail_signs_in_the_local_account() {
    let op = RealProvider::start();
    let mut linking = op.config();
    linking.link_verified_email = true;
    let n = node_with(vec![linking], true).await;
    // The provider says carol's address is carol@example.org, verified; so does the node.
    let (_, _, local) = n.sign_up("carol@example.org").await;
    n.domain()
        .operator
        .verify("carol@example.org")
        .await
        .unwrap();
    let jwt = get_jwt(
        &n,
        account("op", "oidc", "carol", &op.mint("carol", "hearth").await),
    )
    .await
    .unwrap();
    assert_eq!(claims(&jwt)["sub"], local.to_string());
    // Security review (pre-account takeover): an attacker signs up with dave's address and
    // never verifies it; dave's provider sign-in must not land in the attacker's account.
    let (attacker, _, squatter) = n.sign_up("dave@example.org").await;
    let jwt = get_jwt(
        &n,
        account("op", "oidc", "dave", &op.mint("dave", "hearth").await),
    )
    .await
    .unwrap();
    assert_ne!(claims(&jwt)["sub"], squatter.to_string());
    assert!(
        n.pong(Some(&attacker)).await.is_ok(),
        "the squatter's own account is untouched"
    );
    // Without linking, the same provider account would be a new user.
    let n2 = node_with(vec![op.config()], true).await;
    let (_, _, other) = n2.sign_up("carol@example.org").await;
    let jwt = get_jwt(
        &n2,
        account("op", "oidc", "carol", &op.mint("carol", "hearth").await),
    )
    .await
    .unwrap();
    assert_ne!(claims(&jwt)["sub"], other.to_string());
}

#[tokio::test]
async fn providers_on_private_addresses_follow_the_federation_rule() {
    let op = RealProvider::start();
    let n = node_with(vec![op.config()], false).await;
    let token = op.mint("alice", "hearth").await;
    let r = get_jwt(&n, account("op", "oidc", "alice", &token)).await;
    assert_refused(r, Code::Unavailable, "PROVIDER_UNAVAILABLE", "private");
}

/// A GitHub-like user endpoint: `Bearer good` is user 4242, `Bearer garbled` a bad request
/// (400), anything else is refused (401).
async fn oauth_server() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::{HeaderMap, StatusCode};
    async fn user(headers: HeaderMap) -> Result<axum::Json<serde_json::Value>, StatusCode> {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some("Bearer good") => Ok(axum::Json(
                serde_json::json!({"id": 4242, "login": "octo", "name": "Octo Cat"}),
            )),
            Some("Bearer garbled") => Err(StatusCode::BAD_REQUEST),
            _ => Err(StatusCode::UNAUTHORIZED),
        }
    }
    let app = axum::Router::new().route("/user", axum::routing::get(user));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/user", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

fn oauth(url: &str, auto_register: bool) -> OidcProvider {
    OidcProvider {
        id: "gh".into(),
        kind: "oauth".into(),
        issuer: None,
        client_id: None,
        client_secret: None,
        user_url: Some(url.into()),
        id_field: Some("id".into()),
        allow_http: true,
        auto_register,
        link_verified_email: false,
        accept_tokens_of_any_app: true,
    }
}

#[tokio::test]
async fn an_oauth_user_endpoint_vouches_for_its_id_field() {
    let (url, server) = oauth_server().await;
    let n = node_with(vec![oauth(&url, true)], true).await;
    let jwt = get_jwt(&n, account("gh", "oauth", "4242", "good"))
        .await
        .unwrap();
    n.pong(Some(&jwt)).await.unwrap();
    let user: u64 = claims(&jwt)["sub"].as_str().unwrap().parse().unwrap();
    let u = n
        .domain()
        .store()
        .read(move |tx| tx.user(user))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.name, "Octo Cat");
    assert!(u.email.is_none(), "kept apart from local e-mail accounts");

    let r = get_jwt(&n, account("gh", "oauth", "1", "good")).await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "PROVIDER_SUBJECT_MISMATCH",
        "another account",
    );
    let r = get_jwt(&n, account("gh", "oauth", "4242", "bad")).await;
    assert_refused(
        r,
        Code::Unauthenticated,
        "PROVIDER_TOKEN_REJECTED",
        "refused",
    );
    // A 400 is the provider's verdict on the token too, not a provider that is down
    // (UNAVAILABLE would tell the client to retry).
    let r = get_jwt(&n, account("gh", "oauth", "4242", "garbled")).await;
    assert_refused(
        r,
        Code::Unauthenticated,
        "PROVIDER_TOKEN_REJECTED",
        "refused",
    );

    // Without auto_register, an unknown provider account gets no account.
    let n = n
        .restart_with(|c| c.oidc.providers[0].auto_register = false)
        .await;
    get_jwt(&n, account("gh", "oauth", "4242", "good"))
        .await
        .expect("already linked");
    let n2 = node_with(vec![oauth(&url, false)], true).await;
    let r = get_jwt(&n2, account("gh", "oauth", "4242", "good")).await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "ACCOUNT_NOT_REGISTERED",
        "auto_register",
    );
    server.abort();
}

#[tokio::test]
async fn access_tokens_never_reach_the_log() {
    let (url, server) = oauth_server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.toml");
    std::fs::write(
        &config,
        format!(
            "[federation]\nallow_private_addresses = true\n[[oidc.providers]]\nid = \"gh\"\n\
             type = \"oauth\"\nuser_url = \"{url}\"\nid_field = \"id\"\nallow_http = true\n\
             accept_tokens_of_any_app = true\n"
        ),
    )
    .unwrap();
    let node = crate::served::Served::start(&[
        ("HEARTH_CONFIG", config.to_str().unwrap()),
        ("HEARTH_LOG", "debug"),
    ]);
    let channel = Channel::from_shared(node.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = AuthApiClient::new(channel);
    c.get_jwt(account("gh", "oauth", "4242", "good"))
        .await
        .unwrap();
    let refused = c
        .get_jwt(account("gh", "oauth", "4242", "sekrit-value-9z"))
        .await
        .unwrap_err();
    assert!(!refused.message().contains("sekrit"), "{refused:?}");
    let log = node.stop();
    assert!(log.contains("jwt_issued"), "the exchange is logged: {log}");
    assert!(
        !log.contains("sekrit-value-9z") && !log.contains("Bearer good"),
        "{log}"
    );
    server.abort();
}
