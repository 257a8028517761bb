//! Operating a node: logs (one line per request, audit events, levels), metrics (and their
//! own listener), readiness, `config check`, the data-dir lock, and a new key beside an old
//! database.
use std::process::Command;

use hearth::pb;

use crate::served::Served;
use crate::support::*;

#[tokio::test]
async fn one_node_per_data_dir_and_no_key_change_under_a_running_node() {
    let n = TestNode::start().await;
    let err = hearth::Node::start(n.config.clone()).await.unwrap_err();
    assert!(
        err.to_string().contains("in use by another Hearth process"),
        "{err}"
    );
    let hearth = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .env("HEARTH_DATA_DIR", &n.config.data_dir)
            .output()
            .unwrap()
    };
    let rotate = hearth(&["key", "rotate"]);
    assert!(!rotate.status.success());
    let stderr = String::from_utf8_lossy(&rotate.stderr);
    assert!(
        stderr.contains("in use by another Hearth process"),
        "{stderr}"
    );
    // Read-only commands (and store writes, which are transactional) still work beside it.
    assert!(hearth(&["key", "show"]).status.success());
    assert!(hearth(&["user", "list"]).status.success());
}

#[tokio::test]
async fn readiness_reflects_the_store() {
    let n = TestNode::start().await;
    let ready = reqwest::get(format!("{}/readyz", n.url())).await.unwrap();
    assert_eq!(ready.status(), 200);
    n.domain().store().close();
    let ready = reqwest::get(format!("{}/readyz", n.url())).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        reqwest::get(format!("{}/healthz", n.url()))
            .await
            .unwrap()
            .status(),
        200,
        "liveness stays up"
    );
}

#[tokio::test]
async fn a_new_key_beside_an_existing_database_is_announced_loudly() {
    let mut n = TestNode::start().await;
    n.stop().await;
    let data = n.config.data_dir.clone();
    std::fs::remove_file(data.join("node.key")).unwrap();
    let node = Served::start_in(&data, &[("HEARTH_LOG", "warn")]);
    let printed = node.printed_line("data:");
    let warnings = node.stop();
    assert!(warnings.contains("A NEW NODE KEY"), "{warnings}");
    assert!(printed.contains("new key"), "{printed}");
    assert!(
        printed.contains(&data.display().to_string()),
        "the absolute data dir is printed: {printed}"
    );
}

#[tokio::test]
async fn every_request_is_logged_once_with_its_id_and_never_a_secret() {
    // HEARTH_LOG is absent from the test environment, so `[log] level` (info) applies.
    let node = Served::start(&[("HEARTH_LOG_FORMAT", "json")]);
    let channel = tonic::transport::Channel::from_shared(node.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::test::v1::test_no_auth_service_client::TestNoAuthServiceClient::new(channel.clone())
        .ping(pb::test::v1::PingRequest {})
        .await
        .unwrap();
    let secret = "my secret passphrase 77";
    let _ = pb::tangle::client::auth::auth_client::AuthClient::new(channel)
        .sign_in(pb::tangle::client::auth::SignIn {
            email: "nobody@example.org".into(),
            password: secret.into(),
            totp: None,
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = node.stop();
    let ping: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("/test.v1.TestNoAuthService/Ping"))
        .collect();
    assert_eq!(ping.len(), 1, "{log}");
    assert!(
        ping[0].starts_with('{') && ping[0].contains("request_id"),
        "{}",
        ping[0]
    );
    assert!(ping[0].contains(r#""status":"OK""#), "{}", ping[0]);
    assert!(log.contains("sign_in_failed"), "audit event missing: {log}");
    assert!(!log.contains(secret), "a password reached the log");
}

#[test]
fn an_invalid_log_level_stops_start_up_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve"])
        .env("HEARTH_LOG", "verbose")
        .env("HEARTH_LISTEN_ADDR", "127.0.0.1:0")
        .env(
            "HEARTH_DATA_DIR",
            tempfile::tempdir().unwrap().path().join("d"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HEARTH_LOG") && err.contains("verbose"),
        "{err}"
    );
    let e = hearth::Config::from_toml("[log]\nlevel = \"loud\"\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("log.level") && e.contains("loud"), "{e}");
}

#[test]
fn config_check_prints_the_effective_settings_without_credentials() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["config", "check"])
        .env(
            "HEARTH_MAIL_SMTP_URL",
            "smtp://bob:url-secret@mail.example.org:25",
        )
        .env("HEARTH_MAIL_SMTP_USERNAME", "bob")
        .env("HEARTH_MAIL_SMTP_PASSWORD", "12345678")
        .env("HEARTH_LIMITS_MAX_CONNECTIONS", "77")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("max_connections = 77"), "{text}");
    assert!(text.contains("mail.example.org:25"), "{text}");
    assert!(
        !text.contains("12345678") && !text.contains("url-secret"),
        "{text}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["config", "check"])
        .env("HEARTH_ACCOUNTS_REGISTRATION", "maybe")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("accounts.registration"));
}

/// Runs the binary by `exe` with `args` until its banner is out; returns standard output
/// (and, for JSON logs, the `started` log line from standard error after it).
fn banner_of(exe: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .env("HEARTH_DATA_DIR", dir.path().join("data"))
        .env("HEARTH_LISTEN_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let json = env
        .iter()
        .any(|(k, v)| *k == "HEARTH_LOG_FORMAT" && *v == "json");
    let mut out = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.contains("Ctrl-C") || (json && line.starts_with("listening on")) {
            break;
        }
    }
    if json {
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            if line.contains("\"started\"") {
                out.push_str(&line);
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[test]
fn the_banner_suggests_commands_that_work_as_the_node_was_started() {
    // Installed under its own name: the path it was run by, and the same --config.
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("hearth");
    std::fs::copy(env!("CARGO_BIN_EXE_hearth"), &exe).unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "").unwrap();
    let config = config.to_str().unwrap();
    let text = banner_of(&exe, &["serve", "--config", config], &[]);
    assert!(
        text.contains(&format!(
            "{} user add --config {config} --email",
            exe.display()
        )),
        "{text}"
    );
    assert!(text.contains("listening on 127.0.0.1:"), "{text}");
    // From a cargo target dir: through cargo.
    let text = banner_of(
        std::path::Path::new(env!("CARGO_BIN_EXE_hearth")),
        &["serve"],
        &[],
    );
    assert!(text.contains("cargo run -- user add --email"), "{text}");
    // JSON logs: the one plain `listening on` line scripts read, the rest a JSON log line.
    let text = banner_of(&exe, &["serve"], &[("HEARTH_LOG_FORMAT", "json")]);
    let (first, event) = text.split_once('\n').unwrap();
    assert!(first.starts_with("listening on 127.0.0.1:"), "{text}");
    let event: serde_json::Value =
        serde_json::from_str(event.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(event["fields"]["message"], "started", "{event}");
    let next = event["fields"]["next_steps"].as_str().unwrap();
    assert!(next.contains("user add"), "{event}");
}

#[tokio::test]
async fn database_files_are_0600_in_a_data_dir_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // As a package or a volume mount leaves it: 0755.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let n = TestNode::start_with(|c| c.data_dir = data.clone()).await;
    n.sign_up("perm@example.org").await;
    for name in [
        "hearth.sqlite3",
        "hearth.sqlite3-wal",
        "hearth.sqlite3-shm",
        "node.key",
    ] {
        let path = data.join(name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

#[test]
fn config_check_and_serve_refuse_tls_files_they_cannot_use_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("HEARTH_LISTEN_ADDR", "127.0.0.1:0")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, e) = run(&["config", "check"]);
    assert!(
        !ok && e.contains("tls.cert") && e.contains("cert.pem"),
        "{e}"
    );
    // Present but not PEM.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let (ok, e) = run(&["config", "check"]);
    assert!(!ok && e.contains("no certificate found"), "{e}");
    // serve refuses them too, and creates no data dir, key or database on the way.
    let (ok, e) = run(&["serve"]);
    assert!(!ok && e.contains("tls.cert"), "{e}");
    assert!(!dir.path().join("data").exists(), "serve wrote a data dir");
    // Real files pass.
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), c.key_pair.serialize_pem()).unwrap();
    let (ok, e) = run(&["config", "check"]);
    assert!(ok, "{e}");
}

#[tokio::test]
async fn metrics_cover_the_build_the_process_sign_ins_sessions_mail_peers_and_the_store() {
    let n = TestNode::start().await;
    n.sign_up("metrics@example.org").await;
    let _ = n.sign_in("metrics@example.org", "not the password").await;
    n.sign_in("metrics@example.org", PASSWORD).await.unwrap();
    let text = get_text(&format!("{}/metrics", n.url())).await;
    for want in [
        "hearth_build_info{version=\"",
        "hearth_process_resident_memory_bytes ",
        "hearth_process_open_fds ",
        "hearth_process_start_time_seconds ",
        "hearth_sign_ins_total{outcome=\"failed\"} 1",
        "hearth_sign_ins_total{outcome=\"ok\"} 1",
        "hearth_active_sessions 2",
        "hearth_outbox_depth 1",
        "hearth_outbox_oldest_age_seconds ",
        "hearth_store_operations{kind=\"write\"} ",
        "hearth_store_busy_seconds{kind=\"read\"} ",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
}

/// Security review: `/metrics` was public on the main port. Now it answers loopback clients
/// only there (a client behind a trusted proxy is who the proxy says).
#[tokio::test]
async fn metrics_on_the_main_port_are_for_loopback_clients_only() {
    let n = TestNode::start_with(|c| c.listen.trusted_proxies = vec!["127.0.0.1".parse().unwrap()])
        .await;
    let local = reqwest::get(format!("{}/metrics", n.url())).await.unwrap();
    assert_eq!(local.status(), 200);
    let remote = reqwest::Client::new()
        .get(format!("{}/metrics", n.url()))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(remote.status(), 403);
    assert!(remote.text().await.unwrap().contains("[metrics] addr"));
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let n = TestNode::start_with(|c| c.metrics.addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let at = n.running().metrics_addr().expect("a metrics listener");
    let text = get_text(&format!("http://{at}/metrics")).await;
    assert!(text.contains("hearth_build_info"), "{text}");
    let main = reqwest::get(format!("{}/metrics", n.url())).await.unwrap();
    assert_eq!(main.status(), 404, "not on the main port as well");
}

/// #32: the request log is written by its own thread through a bounded queue. A node whose
/// stderr nobody reads (the pipe fills after a few hundred lines) keeps answering, and says
/// how many lines it dropped; with a blocking writer the requests after the pipe filled
/// would hang for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_reader_costs_log_lines_not_requests() {
    let node = Served::start_unread_log(&[("HEARTH_LOG", "info")]);
    let url = node.url.clone();
    let channel = tonic::transport::Channel::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut ping = pb::test::v1::test_no_auth_service_client::TestNoAuthServiceClient::new(channel);
    // Far more lines than the pipe (64 KiB) and the queue (8,192 lines) hold together.
    let pings = async {
        for _ in 0..12_000 {
            ping.ping(pb::test::v1::PingRequest {}).await.unwrap();
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), pings)
        .await
        .expect("requests stalled behind the log");
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hearth_log_lines_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no dropped-lines counter in {metrics}"));
    assert!(dropped > 0, "{dropped}");
}

#[test]
fn a_node_whose_stdout_and_stderr_are_closed_serves_on() {
    use std::io::{Read, Write};
    use std::time::Duration;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    // Both pipes' readers are gone before the node writes its first byte.
    let (out_reader, out) = std::io::pipe().unwrap();
    let (err_reader, err) = std::io::pipe().unwrap();
    drop((out_reader, err_reader));
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve"])
        .env("HEARTH_DATA_DIR", dir.path().join("data"))
        .env("HEARTH_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let healthy = || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    };
    let started = (0..150).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        healthy()
    });
    // The banner and the first log lines are written once it listens: give them time.
    std::thread::sleep(Duration::from_millis(1500));
    let alive = child.try_wait().unwrap().is_none();
    let still = healthy();
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "the node did not start with its output closed");
    assert!(
        alive && still,
        "the node died writing to a closed stdout or stderr"
    );
}
