//! Issue: the foundation. Reflection, health, gRPC-Web, the auth layer, config errors from
//! the real binary, restarts, and a damaged node key.
use std::process::Command;

use hearth::pb;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_reflection::pb::v1::{
    server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
    server_reflection_response::MessageResponse, ServerReflectionRequest,
};

use crate::support::*;

#[tokio::test]
async fn reflection_lists_every_seed_service() {
    let n = TestNode::start().await;
    let mut client = ServerReflectionClient::new(n.channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a list response")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "auth.Auth",
        "auth.v1alpha1.AuthAPI",
        "protocol.auth.v1.AuthService",
        "accounts.v1.AccountsService",
        "accounts.v1.PublicAccountsService",
        "tokens.v1.TokensService",
        "test.v1.TestAuthService",
        "test.v1.TestNoAuthService",
        "tangle.client.auth.Auth",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

/// What grpcurl does with a refusal's `grpc-status-details-bin`: it asks reflection for the
/// file that defines `google.rpc.ErrorInfo` (and the files it imports) to decode the detail.
#[tokio::test]
async fn reflection_serves_error_info_so_grpcurl_can_show_reason_codes() {
    use prost::Message;
    use prost_types::FileDescriptorProto;
    let n = TestNode::start().await;
    let mut client = ServerReflectionClient::new(n.channel.clone());
    let ask = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    let mut files: Vec<FileDescriptorProto> = Vec::new();
    let mut wanted = vec![MessageRequest::FileContainingSymbol(
        "google.rpc.ErrorInfo".into(),
    )];
    while let Some(req) = wanted.pop() {
        let mut stream = client
            .server_reflection_info(tokio_stream::iter(vec![ask(req.clone())]))
            .await
            .unwrap()
            .into_inner();
        let answer = stream.next().await.unwrap().unwrap().message_response;
        let Some(MessageResponse::FileDescriptorResponse(f)) = answer else {
            panic!("reflection does not know {req:?}: {answer:?}")
        };
        for bytes in f.file_descriptor_proto {
            let file = FileDescriptorProto::decode(&bytes[..]).unwrap();
            for dep in &file.dependency {
                if !files.iter().any(|f| f.name() == dep) {
                    wanted.push(MessageRequest::FileByFilename(dep.clone()));
                }
            }
            if !files.iter().any(|f| f.name() == file.name()) {
                files.push(file);
            }
        }
    }
    let info = files
        .iter()
        .filter(|f| f.package() == "google.rpc")
        .flat_map(|f| f.message_type.iter())
        .find(|m| m.name() == "ErrorInfo")
        .expect("ErrorInfo is described");
    let fields: Vec<(&str, i32)> = info.field.iter().map(|f| (f.name(), f.number())).collect();
    assert!(
        fields.contains(&("reason", 1)) && fields.contains(&("domain", 2)),
        "{fields:?}"
    );
    // A real refusal carries that message, with the reason the client guide lists.
    let refused = n.pong(None).await.unwrap_err();
    assert_eq!(reason(&refused), "CREDENTIAL_MISSING");
}

#[tokio::test]
async fn health_service_and_http_routes_answer() {
    let n = TestNode::start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(n.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "test.v1.TestNoAuthService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let body = get_text(&format!("{}/healthz", n.url())).await;
    assert_eq!(body.trim(), "ok");
    // A mistyped probe does not look healthy, and an unknown gRPC method is named.
    for path in ["/health", "/healthz/x", "/test.v1.TestNoAuthService/Pingg"] {
        let res = reqwest::get(format!("{}{path}", n.url())).await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    let mut unknown = tonic::client::Grpc::new(n.channel.clone());
    unknown.ready().await.unwrap();
    let r = unknown
        .unary::<_, (), _>(
            tonic::Request::new(()),
            "/test.v1.TestNoAuthService/Pingg".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_code(r, Code::Unimplemented, "not a method this node serves");
    let mut ping =
        pb::test::v1::test_no_auth_service_client::TestNoAuthServiceClient::new(n.channel.clone());
    ping.ping(pb::test::v1::PingRequest {}).await.unwrap();
    ping.ping(pb::test::v1::PingRequest {}).await.unwrap();
    let _ = n.pong(None).await;
    let metrics = get_text(&format!("{}/metrics", n.url())).await;
    // Each series counts every request, the first and the later ones.
    for series in [
        r#"hearth_requests_total{method="/test.v1.TestNoAuthService/Ping",code="OK"} 2"#,
        r#"hearth_requests_total{method="other",code="404"} 3"#,
        r#"hearth_requests_total{method="other",code="UNIMPLEMENTED"} 1"#,
        r#"hearth_request_duration_seconds_count{method="/test.v1.TestNoAuthService/Ping"} 2"#,
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    assert!(
        metrics.contains(r#"method="/test.v1.TestAuthService/Pong",code="UNAUTHENTICATED"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test]
async fn grpc_web_calls_work_over_http1() {
    let n = TestNode::start().await;
    let res = reqwest::Client::builder()
        .http1_only()
        .build()
        .unwrap()
        .post(format!("{}/test.v1.TestNoAuthService/Ping", n.url()))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/grpc-web"));
    let body = res.bytes().await.unwrap();
    let trailers = String::from_utf8_lossy(&body);
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
}

#[tokio::test]
async fn pong_needs_a_valid_live_session() {
    let n = TestNode::start().await;
    assert_code(n.pong(None).await, Code::Unauthenticated, "credential");
    assert_code(
        n.pong(Some("Bearer not-a-token")).await,
        Code::Unauthenticated,
        "prefix",
    );
    assert_code(
        n.pong(Some("hs_short")).await,
        Code::Unauthenticated,
        "malformed",
    );

    let (token, session_id, _) = n.sign_up("pong@example.org").await;
    n.pong(Some(&token)).await.unwrap();
    n.pong(Some(&format!("Bearer {token}"))).await.unwrap();

    // Same length and alphabet, one character changed: the checksum fails, no database read.
    let mut forged = token.clone().into_bytes();
    let i = forged.len() - 8;
    forged[i] = if forged[i] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    let reads = n.domain().store().reads();
    assert_code(
        n.pong(Some(&forged)).await,
        Code::Unauthenticated,
        "checksum",
    );
    assert_eq!(
        n.domain().store().reads(),
        reads,
        "a bad checksum must not touch the database"
    );

    let unknown = hearth::secret::BearerSecret::generate(hearth::secret::SecretKind::Session);
    assert_code(
        n.pong(Some(unknown.expose())).await,
        Code::Unauthenticated,
        "does not exist",
    );

    assert!(n.domain().sessions.revoke_by_id(session_id).await.unwrap());
    assert_code(n.pong(Some(&token)).await, Code::Unauthenticated, "revoked");
}

#[tokio::test]
async fn restart_keeps_key_users_and_sessions() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("stay@example.org").await;
    let key = n.domain().node_key().public();
    let n = n.restart().await;
    assert_eq!(n.domain().node_key().public(), key);
    assert!(!n.running().key_created());
    n.pong(Some(&token)).await.unwrap();
    n.sign_in("stay@example.org", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn a_damaged_node_key_stops_start_up_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("node.key"), "not a key").unwrap();
    let err = hearth::Node::start(test_config(data.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("node.key") && err.contains("corrupt"), "{err}");
    assert_eq!(
        std::fs::read_to_string(data.join("node.key")).unwrap(),
        "not a key"
    );

    // Unreadable (a directory where the file should be; root ignores file modes).
    std::fs::remove_file(data.join("node.key")).unwrap();
    std::fs::create_dir(data.join("node.key")).unwrap();
    let err = hearth::Node::start(test_config(data))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("node key file") && err.contains("node.key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_hearth_is_refused() {
    let n = TestNode::start().await;
    let db = n.config.database_path();
    let mut n = n;
    n.stop().await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = hearth::Node::start(n.config.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("schema version 999") && err.contains("newer Hearth"),
        "{err}"
    );
}

fn serve_with(config: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("HEARTH_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap()
}

#[test]
fn serve_refuses_bad_config_naming_the_key() {
    for (config, key) in [
        (
            "[listen]\naddr = \"127.0.0.1:0\"\ncolour = \"blue\"\n",
            "colour",
        ),
        ("[listen]\naddr = \"not an address\"\n", "listen.addr"),
        (
            "[accounts]\nregistration = \"sometimes\"\n",
            "accounts.registration",
        ),
        (
            "[federation]\npolicy = \"open\"\nallow_plaintext = \"yes\"\n",
            "federation.allow_plaintext",
        ),
    ] {
        let out = serve_with(config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config} was accepted");
        assert!(
            stderr.contains(key),
            "stderr for {config:?} lacks {key}: {stderr}"
        );
    }
}

#[test]
fn init_writes_the_example_and_serve_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("init")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(hearth::Config::from_toml(&text).is_ok());
    let again = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("init")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "init must not overwrite without --force"
    );
}

#[test]
fn cli_adds_users_and_issues_and_revokes_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hearth = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .env("HEARTH_DATA_DIR", &data)
            .env("HEARTH_PASSWORDS_ARGON2_MEMORY_KIB", "256")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = hearth(&["user", "list"], "");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("hearth serve"));
    // A node run creates the database; the CLI then works on it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        hearth::Node::start(test_config(data.clone()))
            .await
            .unwrap()
            .shutdown()
            .await
    });

    let out = hearth(&["user", "add", "--email", "Op@Example.org"], "password1\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("too common"));
    let out = hearth(
        &["user", "add", "--email", "Op@Example.org"],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8_lossy(&hearth(&["user", "list"], "").stdout).to_string();
    assert!(list.contains("op@example.org"), "{list}");

    let out = hearth(&["session", "issue", "--email", "op@example.org"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        hearth::secret::BearerSecret::parse(&token).is_ok(),
        "{token}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let id: String = stderr
        .lines()
        .find_map(|l| l.strip_prefix("session "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_owned();
    let revoked = hearth(&["session", "revoke", &id], "");
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert!(
        !hearth(&["session", "revoke", &id], "").status.success(),
        "revoking twice must fail"
    );

    // The revoked token no longer works on a node started afterwards.
    rt.block_on(async {
        let node = hearth::Node::start(test_config(data.clone()))
            .await
            .unwrap();
        assert!(node
            .services()
            .credentials
            .resolve(&token, None)
            .await
            .is_err());
        node.shutdown().await;
    });
}

#[test]
fn cli_shows_exports_imports_and_rotates_the_node_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hearth = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .env("HEARTH_DATA_DIR", &data)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let first = rt.block_on(async {
        let node = hearth::Node::start(test_config(data.clone()))
            .await
            .unwrap();
        let address = node.services().node_key().address();
        node.shutdown().await;
        address
    });
    let (ok, shown, _) = hearth(&["key", "show"]);
    assert!(ok && shown.trim() == first, "{shown}");

    let (ok, exported, warning) = hearth(&["key", "export"]);
    assert!(ok && warning.contains("secret"));
    let backup = dir.path().join("backup.key");
    std::fs::write(&backup, &exported).unwrap();

    let (ok, rotated, err) = hearth(&["key", "rotate"]);
    assert!(ok, "{err}");
    assert!(rotated.contains(&first), "{rotated}");
    let (_, shown, _) = hearth(&["key", "show"]);
    let mut lines = shown.lines();
    let second = lines.next().unwrap().to_owned();
    assert_ne!(second, first);
    assert!(
        lines
            .next()
            .unwrap()
            .contains(&format!("from {first} to {second}")),
        "{shown}"
    );
    let retired = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("node.key.retired-")
        });
    assert!(retired, "the old key is kept for recovery");

    let (ok, _, err) = hearth(&["key", "import", backup.to_str().unwrap()]);
    assert!(!ok && err.contains("--force"), "{err}");
    let (ok, _, _) = hearth(&["key", "import", "--force", backup.to_str().unwrap()]);
    assert!(ok);
    let (_, shown, _) = hearth(&["key", "show"]);
    assert_eq!(shown.lines().next().unwrap(), first);
}
