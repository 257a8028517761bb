//! Federation stories about peers themselves: peer tokens, challenge refusals, policy,
//! private addresses, well-known discovery, TLS, the peer CLI, link refresh, and key fetches
//! under concurrency.
use std::time::{Duration, Instant};

use hearth::identity::key::NodeKey;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn peer_tokens_refresh_and_sign_out() {
    let c = Cluster::start(&["alpha", "beta"]).await;
    let (alpha, beta) = (c.get("alpha"), c.get("beta"));
    alpha.link(beta).await.unwrap();
    let token = alpha.running().services().links.token(&beta.id()).unwrap();
    assert_eq!(
        beta.domain().challenge.peer_of_token(&token).await.unwrap(),
        alpha.server_id
    );

    let mut client = beta.peer_auth();
    let fresh = client
        .token_refresh(hearth::pb::auth::AuthToken {
            token: token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    assert!(
        beta.domain().challenge.peer_of_token(&token).await.is_err(),
        "the old token dies on refresh"
    );
    assert_eq!(
        beta.domain().challenge.peer_of_token(&fresh).await.unwrap(),
        alpha.server_id
    );
    expect_err(
        client
            .token_refresh(hearth::pb::auth::AuthToken { token })
            .await,
        Code::Unauthenticated,
        "revoked",
    );

    client
        .signout(hearth::pb::auth::AuthToken {
            token: fresh.clone(),
        })
        .await
        .unwrap();
    assert!(beta.domain().challenge.peer_of_token(&fresh).await.is_err());
    client
        .signout(hearth::pb::auth::AuthToken { token: fresh })
        .await
        .unwrap();
    expect_err(
        client
            .signout(hearth::pb::auth::AuthToken {
                token: "nope".into(),
            })
            .await,
        Code::InvalidArgument,
        "token",
    );
}

#[tokio::test]
async fn challenge_refusals_are_precise() {
    let c = Cluster::start(&["alpha", "beta"]).await;
    let mut client = c.get("beta").peer_auth();
    let me = NodeKey::generate();
    let peer = hearth::pb::auth::Peer {
        url: String::new(),
        name: c.get("alpha").server_id.clone(),
        participant_address: me.address(),
        operator_address: me.address(),
    };
    let ask = |expected: &str, challenge: Vec<u8>| hearth::pb::auth::ChallengeRequest {
        client: Some(peer.clone()),
        operator_address: expected.into(),
        client_challenge: challenge,
    };
    expect_err(
        client.get_challenge(ask("ed25519:00", vec![0; 32])).await,
        Code::FailedPrecondition,
        "you expect",
    );
    expect_err(
        client.get_challenge(ask("", vec![0; 5])).await,
        Code::InvalidArgument,
        "client_challenge",
    );
    // A proof signed over the wrong message.
    let reply = client
        .get_challenge(ask("", vec![7; 32]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.server_challenge.len(),
        43,
        "base64url of 32 bytes, no padding"
    );
    let signed = hearth::pb::auth::SignedChallenge {
        client: Some(peer.clone()),
        signed_server_challenge: me.sign(b"something else").to_vec(),
        operator_address: String::new(),
    };
    expect_err(
        client.authenticate(signed.clone()).await,
        Code::Unauthenticated,
        "does not verify",
    );
    // The challenge was single use.
    expect_err(
        client.authenticate(signed).await,
        Code::Unauthenticated,
        "no live challenge",
    );
}

#[tokio::test]
async fn policy_closed_allowlist_and_denylist() {
    let c = Cluster::start_with(
        &["alpha", "beta", "gamma", "delta"],
        Options::default(),
        |name, config| match name {
            "beta" => config.federation.policy = hearth::config::FederationPolicy::Closed,
            "gamma" => config.federation.deny = vec!["alpha.hearth.test".parse().unwrap()],
            "delta" => config.federation.policy = hearth::config::FederationPolicy::Allowlist,
            _ => {}
        },
    )
    .await;
    let alpha = c.get("alpha");
    let (token, _) = alpha.sign_up("pol@example.org").await;
    for (name, needle) in [
        ("beta", "closed"),
        ("gamma", "denylist"),
        ("delta", "allowlist"),
    ] {
        let target = c.get(name);
        let fed = alpha.federate(&token, &target.server_id).await.unwrap();
        expect_err(
            target.login_federated(fed, &alpha.server_id).await,
            Code::PermissionDenied,
            needle,
        );
    }
    c.get("delta")
        .domain()
        .peers
        .set_link(&alpha.id(), true, None)
        .await
        .unwrap();
    let fed = alpha
        .federate(&token, &c.get("delta").server_id)
        .await
        .unwrap();
    c.get("delta")
        .login_federated(fed, &alpha.server_id)
        .await
        .unwrap();
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let c = Cluster::start_with(&["alpha", "beta"], Options::default(), |name, config| {
        if name == "alpha" {
            config.federation.allow_private_addresses = false;
        }
    })
    .await;
    let err = c
        .get("alpha")
        .link(c.get("beta"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("private or loopback") && err.contains("allow_private_addresses"),
        "{err}"
    );
}

#[tokio::test]
async fn well_known_discovery_finds_a_node_without_srv() {
    let dns_only_a = "delta";
    let mut c = Cluster::start(&["alpha"]).await;
    // delta has only an A record; its /.well-known/hearth/server names its port.
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_config(dns_only_a, &c.dns, dir.path().join("data"), 0);
    config.listen.addr = "127.0.0.1:0".parse().unwrap();
    let delta = hearth::Node::start(config).await.unwrap();
    c.dns.add_a(dns_only_a).await;
    let alpha = c.get_mut("alpha");
    alpha.stop().await;
    alpha.config.federation.well_known_port = Some(delta.addr().port());
    alpha.start().await;
    c.get("alpha")
        .running()
        .services()
        .links
        .link_now(&"delta.hearth.test".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        c.get("alpha").pinned("delta.hearth.test").await,
        Some(delta.services().node_key().public())
    );
    delta.shutdown().await;
}

#[tokio::test]
async fn the_same_flows_over_tls_with_a_test_ca() {
    let c = Cluster::start_with(
        &["alpha", "beta", "gamma"],
        Options {
            tls: true,
            peers: false,
        },
        |_, _| {},
    )
    .await;
    let (alpha, beta, gamma) = (c.get("alpha"), c.get("beta"), c.get("gamma"));
    assert!(alpha.running().url().starts_with("https://"));
    alpha.link(beta).await.unwrap();
    beta.link(gamma).await.unwrap();
    let (token, _) = alpha.sign_up("tls@example.org").await;
    for target in [beta, gamma] {
        let fed = alpha.federate(&token, &target.server_id).await.unwrap();
        let session = target.login_federated(fed, &alpha.server_id).await.unwrap();
        target.pong(&session.session_token).await.unwrap();
    }
    let for_beta = alpha.federate(&token, &beta.server_id).await.unwrap();
    expect_err(
        gamma.login_federated(for_beta, &alpha.server_id).await,
        Code::PermissionDenied,
        "not for this node",
    );
}

#[tokio::test]
async fn the_peer_cli_links_and_unlinks_a_running_node() {
    let c = Cluster::start(&["alpha", "beta"]).await;
    let (alpha, beta) = (c.get("alpha"), c.get("beta"));
    let (ok, _, err) = alpha.cli(&["peer", "link", &beta.server_id]);
    assert!(ok, "{err}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list, _) = alpha.cli(&["peer", "list"]);
        if list
            .lines()
            .any(|l| l.starts_with(&beta.server_id) && l.contains(" linked "))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running node did not pick up `peer link`:\n{list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        alpha.pinned(&beta.server_id).await,
        Some(beta.domain().node_key().public())
    );
    let (ok, _, _) = alpha.cli(&["peer", "unlink", &beta.server_id]);
    assert!(ok);
    let (_, list, _) = alpha.cli(&["peer", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&beta.server_id) && l.contains("unlinked")),
        "{list}"
    );
    let (ok, _, err) = alpha.cli(&["peer", "pin", &beta.server_id, "--key", "ed25519:zz"]);
    assert!(!ok && err.contains("--key"), "{err}");
}

#[tokio::test]
async fn links_are_refreshed_before_their_peer_token_expires() {
    let c = Cluster::start_with(
        &["alpha", "beta"],
        Options {
            peers: true,
            ..Options::default()
        },
        |_, _| {},
    )
    .await;
    let (alpha, beta) = (c.get("alpha"), c.get("beta"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Some(t) = alpha.running().services().links.token(&beta.id()) {
            break t;
        }
        assert!(Instant::now() < deadline, "alpha never linked beta");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // 55 minutes later the 1-hour token is within the refresh window.
    alpha.clock.advance_ms(55 * 60 * 1000);
    let deadline = Instant::now() + Duration::from_secs(20);
    let second = loop {
        match alpha.running().services().links.token(&beta.id()) {
            Some(t) if t != first => break t,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the link was not refreshed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        beta.domain().challenge.peer_of_token(&first).await.is_err(),
        "TokenRefresh retired the old token"
    );
    assert_eq!(
        beta.domain()
            .challenge
            .peer_of_token(&second)
            .await
            .unwrap(),
        alpha.server_id
    );
}

/// `Key` requests `node` served (its metrics).
pub async fn key_fetches(node: &Member) -> u64 {
    let url = format!("{}/metrics", node.running().url());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("hearth_requests_total{method=\"/protocol.auth.v1.AuthService/Key\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn parallel_first_logins_fetch_the_origin_key_once() {
    let c = Cluster::start(&["alpha", "beta"]).await;
    let (alpha, beta) = (c.get("alpha"), c.get("beta"));
    let (token, _) = alpha.sign_up("crowd@example.org").await;
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.push(alpha.federate(&token, &beta.server_id).await.unwrap());
    }
    let before = key_fetches(alpha).await;
    let logins = tokens
        .into_iter()
        .map(|t| beta.login_federated(t, &alpha.server_id));
    for r in futures_util::future::join_all(logins).await {
        r.unwrap();
    }
    assert_eq!(
        key_fetches(alpha).await - before,
        1,
        "ten parallel logins, one Key fetch"
    );
}

/// alpha's row for `peer`, polled until `want` holds (or `secs` of real time pass).
pub async fn peer_row_until(
    alpha: &Member,
    peer: &str,
    secs: u64,
    want: impl Fn(&hearth::domain::model::Peer) -> bool,
) -> (hearth::domain::model::Peer, Duration) {
    let start = Instant::now();
    loop {
        let rows = alpha.domain().peers.list().await.unwrap();
        let row = rows.into_iter().find(|p| p.server_id == peer);
        if let Some(row) = row.as_ref().filter(|r| want(r)) {
            return (row.clone(), start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{peer} stayed {:?} for {secs} s",
            row.map(|r| (r.state, r.last_error))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_dead_peer_shows_down_at_the_next_probe_and_linked_when_it_returns() {
    use hearth::domain::federation::links::PROBE_EVERY_MS;
    let mut c = Cluster::start_with(
        &["alpha", "beta"],
        Options {
            peers: true,
            ..Options::default()
        },
        |_, _| {},
    )
    .await;
    let beta_id = c.get("beta").server_id.clone();
    peer_row_until(c.get("alpha"), &beta_id, 20, |p| p.state == "linked").await;

    // beta dies; alpha's peer token at beta is valid for most of an hour yet, so only the
    // probe can tell. The next one is due PROBE_EVERY_MS later on alpha's clock.
    c.get_mut("beta").stop().await;
    c.get("alpha").clock.advance_ms(PROBE_EVERY_MS);
    let (row, took) = peer_row_until(c.get("alpha"), &beta_id, 15, |p| p.state == "down").await;
    assert!(row.last_error.is_some(), "{row:?}");
    eprintln!("down {took:?} after the probe was due");

    // beta comes back: the next probe of a down peer links it again at once, not after the
    // link attempts' backoff.
    c.get_mut("beta").start().await;
    c.get("alpha").clock.advance_ms(PROBE_EVERY_MS);
    let (row, took) = peer_row_until(c.get("alpha"), &beta_id, 15, |p| p.state == "linked").await;
    assert_eq!(row.last_error, None);
    eprintln!("linked {took:?} after the probe was due");
}
