//! Connection floods against a real node on 127.0.0.1 (issue: hostile clients): silent and
//! half-open connections are closed after the header-read timeout, idle ones after the idle
//! timeout, connections beyond the cap wait, and a request that takes too long is cut.
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

use crate::support::*;

/// A "peer" named `name` that accepts connections and never answers (kept while the task
/// lives), and the config edit that routes to it.
async fn silent_peer(
    name: &'static str,
) -> (
    tokio::task::JoinHandle<()>,
    impl FnOnce(&mut hearth::Config),
) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let route = move |c: &mut hearth::Config| {
        c.federation.allow_private_addresses = true;
        c.federation.allow_plaintext = true;
        c.federation.peers = vec![hearth::config::Peer {
            server_id: name.parse().unwrap(),
            url: Some(format!("http://{addr}")),
        }];
    };
    (task, route)
}

/// True when the server closes `s` within `within`.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_open_connections_are_closed_while_health_answers() {
    let n = TestNode::start_with(|c| c.limits.header_read_timeout_secs = 1).await;
    let addr = n.running().addr();
    let mut conns = Vec::new();
    for i in 0..40 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        conns.push(s);
    }
    let health = reqwest::get(format!("{}/healthz", n.url())).await.unwrap();
    assert_eq!(health.status(), 200);
    for (i, s) in conns.iter_mut().enumerate() {
        assert!(
            closed_by_server(s, Duration::from_secs(4)).await,
            "connection {i} was still open after the header-read timeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let n = TestNode::start_with(|c| c.limits.idle_timeout_secs = 1).await;
    let mut s = TcpStream::connect(n.running().addr()).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let got = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..got]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    assert!(closed_by_server(&mut s, Duration::from_secs(4)).await);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let n = TestNode::start_with(|c| {
        c.limits.max_connections = 4;
        c.limits.header_read_timeout_secs = 30;
    })
    .await;
    let addr = n.running().addr();
    // The test node's own client channel holds one connection; fill the rest.
    n.pong(None).await.unwrap_err();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"G").await.unwrap();
        held.push(s);
    }
    let url = format!("{}/healthz", n.url());
    let waiting = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!waiting.is_finished(), "a fifth connection was served");
    drop(held);
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a connection closed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_takes_too_long_is_cut_at_the_request_timeout() {
    let (_silent, route) = silent_peer("silent.example.org").await;
    let n = TestNode::start_with(|c| {
        c.limits.request_timeout_secs = 1;
        route(c);
    })
    .await;
    let token = hearth::pb::protocol::harmonytypes::v1::Token {
        sig: vec![0; 64],
        data: vec![1, 2, 3],
    };
    let started = Instant::now();
    let r = hearth::pb::protocol::auth::v1::auth_service_client::AuthServiceClient::new(
        n.channel.clone(),
    )
    .login_federated(hearth::pb::protocol::auth::v1::LoginFederatedRequest {
        auth_token: Some(token),
        server_id: "silent.example.org".into(),
    })
    .await;
    assert_code(r, Code::DeadlineExceeded, "limits.request_timeout_secs");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn costly_public_methods_are_limited_per_client_ip_and_class() {
    let n = TestNode::start_with(|c| {
        c.limits.hashing_calls_per_ip_per_minute = 3;
        c.limits.mail_calls_per_ip_per_minute = 2;
        c.limits.node_calls_per_ip_per_minute = 4;
    })
    .await;
    for i in 0..3 {
        n.sign_up(&format!("limited{i}@example.org")).await;
    }
    let hashes = n.domain().accounts.hasher().hashes();
    let r = n
        .tangle()
        .sign_up(hearth::pb::tangle::client::auth::SignUp {
            email: Some("limited9@example.org".into()),
            password: Some(PASSWORD.into()),
            name: "L".into(),
            invite_code: None,
        })
        .await;
    let s = assert_code(r, Code::ResourceExhausted, "too many password calls");
    let reason = tonic_types::StatusExt::get_details_error_info(&s).map(|i| i.reason);
    assert_eq!(reason.as_deref(), Some("IP_THROTTLED"));
    assert_eq!(
        n.domain().accounts.hasher().hashes(),
        hashes,
        "refused before hashing"
    );
    // Another class has its own budget: mail.
    let resend = |email: &str| hearth::pb::tangle::client::auth::ResendEmailVerification {
        email: Some(email.into()),
    };
    n.tangle()
        .resend_email_verification(resend("a@example.org"))
        .await
        .unwrap();
    n.tangle()
        .resend_email_verification(resend("b@example.org"))
        .await
        .unwrap();
    assert_code(
        n.tangle()
            .resend_email_verification(resend("c@example.org"))
            .await,
        Code::ResourceExhausted,
        "too many mail calls",
    );
    // A GetChallenge flood from one source runs out its calls between nodes quickly; Ping
    // is not limited.
    let mut refused = 0;
    for _ in 0..10 {
        let r = hearth::pb::auth::auth_client::AuthClient::new(n.channel.clone())
            .get_challenge(hearth::pb::auth::ChallengeRequest::default())
            .await;
        if r.as_ref()
            .err()
            .is_some_and(|s| s.code() == Code::ResourceExhausted)
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 6);
    for _ in 0..20 {
        hearth::pb::test::v1::test_no_auth_service_client::TestNoAuthServiceClient::new(
            n.channel.clone(),
        )
        .ping(hearth::pb::test::v1::PingRequest {})
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_for_a_dead_peer_fail_together_not_one_after_another() {
    let (_silent, route) = silent_peer("dead.example.org").await;
    let n = TestNode::start_with(route).await;
    let started = Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let channel = n.channel.clone();
            tokio::spawn(async move {
                let r =
                    hearth::pb::protocol::auth::v1::auth_service_client::AuthServiceClient::new(
                        channel,
                    )
                    .login_federated(hearth::pb::protocol::auth::v1::LoginFederatedRequest {
                        auth_token: Some(hearth::pb::protocol::harmonytypes::v1::Token {
                            sig: vec![0; 64],
                            data: vec![1],
                        }),
                        server_id: "dead.example.org".into(),
                    })
                    .await;
                (r.map(|_| ()), started.elapsed())
            })
        })
        .collect();
    let mut ends = Vec::new();
    for c in calls {
        let (r, at) = c.await.unwrap();
        assert_eq!(r.unwrap_err().code(), Code::Unavailable);
        ends.push(at);
    }
    ends.sort();
    assert!(
        ends[3] < ends[0] + Duration::from_secs(2),
        "the calls queued behind each other: {ends:?}"
    );
}
