//! The federation stories of the issue: links and pins, cross-node login, audience, replay,
//! expiry, tampering, key rotation, a node going down, DNS failure, name squatting, peer
//! token lifecycle, policy, well-known discovery, and all of it again over TLS.
use std::time::{Duration, Instant};

use hearth::domain::ErrorKind;
use hearth::identity::key::NodeKey;
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn configured_peers_link_at_start_and_pin_each_other() {
    let c = Cluster::start_with(
        &["alpha", "beta", "gamma"],
        Options {
            peers: true,
            ..Options::default()
        },
        |_, _| {},
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for m in &c.members {
        for other in c.members.iter().filter(|o| o.server_id != m.server_id) {
            loop {
                let peers = m.domain().peers.list().await.unwrap();
                let row = peers.iter().find(|p| p.server_id == other.server_id);
                if row.is_some_and(|p| p.state == "linked") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} never linked {}: {row:?}",
                    m.server_id,
                    other.server_id
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(
                m.pinned(&other.server_id).await,
                Some(other.domain().node_key().public())
            );
        }
    }
}

#[tokio::test]
async fn a_user_of_alpha_logs_into_beta_and_gamma_as_a_foreign_user() {
    let c = Cluster::start(&["alpha", "beta", "gamma"]).await;
    let (alpha, beta, gamma) = (c.get("alpha"), c.get("beta"), c.get("gamma"));
    let (token, alpha_user) = alpha.sign_up("ada@example.org").await;
    for target in [beta, gamma] {
        let fed = alpha.federate(&token, &target.server_id).await.unwrap();
        let session = target.login_federated(fed, &alpha.server_id).await.unwrap();
        target.pong(&session.session_token).await.unwrap();
        let users = target.domain().accounts.list().await.unwrap();
        let foreign = users.iter().find(|u| u.id == session.user_id).unwrap();
        assert_eq!(foreign.home, Some((alpha.server_id.clone(), alpha_user)));
        assert_eq!(
            foreign.email, None,
            "foreign users are kept apart from local accounts"
        );
        assert_eq!(foreign.name, format!("ada@{}", alpha.server_id));
        assert_eq!(
            target.pinned(&alpha.server_id).await,
            Some(alpha.domain().node_key().public())
        );
    }
    // A second login maps to the same foreign user.
    let again = beta
        .login_federated(
            alpha.federate(&token, &beta.server_id).await.unwrap(),
            &alpha.server_id,
        )
        .await
        .unwrap();
    let first_users = beta.domain().accounts.list().await.unwrap();
    assert_eq!(first_users.iter().filter(|u| u.home.is_some()).count(), 1);
    assert!(first_users.iter().any(|u| u.id == again.user_id));
    // A local account with the same name on beta is a different account.
    let (_, local) = beta.sign_up("ada@example.org").await;
    assert_ne!(local, again.user_id);
    // Foreign users cannot federate onwards.
    expect_err(
        beta.federate(&again.session_token, &gamma.server_id).await,
        Code::PermissionDenied,
        "only local accounts",
    );
}

#[tokio::test]
async fn audience_replay_tampering_and_expiry_are_refused() {
    let c = Cluster::start(&["alpha", "beta", "gamma"]).await;
    let (alpha, beta, gamma) = (c.get("alpha"), c.get("beta"), c.get("gamma"));
    let (token, _) = alpha.sign_up("eve@example.org").await;

    let for_beta = alpha.federate(&token, &beta.server_id).await.unwrap();
    expect_err(
        gamma
            .login_federated(for_beta.clone(), &alpha.server_id)
            .await,
        Code::PermissionDenied,
        "not for this node",
    );
    beta.login_federated(for_beta.clone(), &alpha.server_id)
        .await
        .unwrap();
    expect_err(
        beta.login_federated(for_beta.clone(), &alpha.server_id)
            .await,
        Code::Unauthenticated,
        "already used",
    );

    let mut tampered = alpha.federate(&token, &beta.server_id).await.unwrap();
    let last = tampered.data.len() - 1;
    tampered.data[last] ^= 1;
    expect_err(
        beta.login_federated(tampered, &alpha.server_id).await,
        Code::Unauthenticated,
        "signature",
    );

    // Claimed to come from gamma: gamma's key did not sign it.
    let honest = alpha.federate(&token, &beta.server_id).await.unwrap();
    expect_err(
        beta.login_federated(honest, &gamma.server_id).await,
        Code::Unauthenticated,
        "signature",
    );

    let late = alpha.federate(&token, &beta.server_id).await.unwrap();
    beta.clock.advance_ms(6 * 60 * 1000);
    expect_err(
        beta.login_federated(late, &alpha.server_id).await,
        Code::Unauthenticated,
        "expired",
    );

    expect_err(
        alpha.federate(&token, "not a name").await,
        Code::InvalidArgument,
        "server_id",
    );
    expect_err(
        alpha.federate(&token, &alpha.server_id).await,
        Code::InvalidArgument,
        "this node",
    );
}

#[tokio::test]
async fn beta_follows_alpha_through_a_key_rotation() {
    let mut c = Cluster::start(&["alpha", "beta"]).await;
    let beta_id = c.get("beta").server_id.clone();
    let alpha_id = c.get("alpha").server_id.clone();
    let (token, _) = c.get("alpha").sign_up("rot@example.org").await;
    let before = c.get("alpha").federate(&token, &beta_id).await.unwrap();
    let spare = c.get("alpha").federate(&token, &beta_id).await.unwrap();
    c.get("beta")
        .login_federated(before, &alpha_id)
        .await
        .unwrap();
    let old_key = c.get("alpha").domain().node_key().public();
    assert_eq!(c.get("beta").pinned(&alpha_id).await, Some(old_key));

    let alpha = c.get_mut("alpha");
    alpha.stop().await;
    let store = hearth::Node::open_store(&alpha.config, 1).unwrap();
    let row = hearth::keys::operations::rotate_node_key(
        &alpha.config.data_dir,
        &store,
        hearth::clock::Clock::now_ms(alpha.clock.as_ref()),
        false,
    )
    .await
    .unwrap();
    store.close();
    alpha.start().await;
    let new_key = c.get("alpha").domain().node_key().public();
    assert_eq!((row.old_key, row.new_key), (old_key, new_key));

    let after = c.get("alpha").federate(&token, &beta_id).await.unwrap();
    c.get("beta")
        .login_federated(after, &alpha_id)
        .await
        .unwrap();
    assert_eq!(
        c.get("beta").pinned(&alpha_id).await,
        Some(new_key),
        "beta followed the signed rotation"
    );
    // A token the retired key signed before the rotation still works until it expires.
    c.get("beta")
        .login_federated(spare, &alpha_id)
        .await
        .unwrap();
    // ...and the link (peer challenge) works with the new key too.
    c.get("beta").link(c.get("alpha")).await.unwrap();
}

#[tokio::test]
async fn a_key_change_without_a_rotation_record_is_refused_until_re_pinned() {
    let mut c = Cluster::start(&["alpha", "beta"]).await;
    let (alpha_id, beta_id) = (
        c.get("alpha").server_id.clone(),
        c.get("beta").server_id.clone(),
    );
    let (token, _) = c.get("alpha").sign_up("pin@example.org").await;
    c.get("beta")
        .login_federated(
            c.get("alpha").federate(&token, &beta_id).await.unwrap(),
            &alpha_id,
        )
        .await
        .unwrap();

    let alpha = c.get_mut("alpha");
    alpha.stop().await;
    let replacement = NodeKey::generate();
    let file = alpha.config.data_dir.join("replacement.key");
    hearth::keys::operations::import(&alpha.config.data_dir, (&file, &replacement), &[], true)
        .unwrap();
    alpha.start().await;

    let fed = c.get("alpha").federate(&token, &beta_id).await.unwrap();
    expect_err(
        c.get("beta").login_federated(fed.clone(), &alpha_id).await,
        Code::PermissionDenied,
        "hearth peer pin",
    );
    let err = c.get("beta").link(c.get("alpha")).await.unwrap_err();
    assert!(
        err.is(ErrorKind::PermissionDenied) && err.message.contains("hearth peer pin"),
        "{err}"
    );
    let row = c
        .get("beta")
        .domain()
        .peers
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.server_id == alpha_id)
        .unwrap();
    assert_eq!(row.state, "refused");

    c.get("beta")
        .domain()
        .peers
        .pin(&c.get("alpha").id(), replacement.public())
        .await
        .unwrap();
    c.get("beta").login_federated(fed, &alpha_id).await.unwrap();
}

#[tokio::test]
async fn a_node_that_goes_down_and_comes_back() {
    let mut c = Cluster::start(&["alpha", "beta", "gamma"]).await;
    c.get("alpha").link(c.get("gamma")).await.unwrap();
    let gamma_id = c.get("gamma").server_id.clone();
    let (token, _) = c.get("gamma").sign_up("down@example.org").await;
    let fed = c
        .get("gamma")
        .federate(&token, &c.get("beta").server_id)
        .await
        .unwrap();
    let port = c.get("gamma").config.listen.addr.port();

    c.get_mut("gamma").stop().await;
    let err = c.get("alpha").link(c.get("gamma")).await.unwrap_err();
    assert!(err.is(ErrorKind::Unavailable), "{err}");
    let msg = &err.message;
    assert!(
        msg.contains(&gamma_id) && msg.contains(&format!("127.0.0.1:{port}")),
        "{msg}"
    );
    let row = c
        .get("alpha")
        .domain()
        .peers
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.server_id == gamma_id)
        .unwrap();
    assert_eq!(row.state, "down");
    // beta never saw gamma: it cannot fetch gamma's key while gamma is down. An anonymous
    // caller learns that, not where discovery led (security review: no addresses).
    let refused = expect_err(
        c.get("beta").login_federated(fed.clone(), &gamma_id).await,
        Code::Unavailable,
        "unreachable",
    );
    assert!(!refused.message().contains("127.0.0.1"), "{refused:?}");

    c.get_mut("gamma").start().await;
    c.get("alpha").link(c.get("gamma")).await.unwrap();
    // beta remembers the failed fetch briefly (callers fail fast meanwhile), then retries.
    expect_err(
        c.get("beta").login_federated(fed.clone(), &gamma_id).await,
        Code::Unavailable,
        "unreachable",
    );
    c.get("beta")
        .clock
        .advance_ms(hearth::domain::federation::peers::FAILED_FETCH_MS);
    c.get("beta").login_federated(fed, &gamma_id).await.unwrap();
}

#[tokio::test]
async fn a_name_that_does_not_resolve_says_which_lookups_failed() {
    let c = Cluster::start(&["alpha"]).await;
    let (token, _) = c.get("alpha").sign_up("dns@example.org").await;
    let fed = c
        .get("alpha")
        .federate(&token, "nowhere.hearth.test")
        .await
        .unwrap();
    let alpha = c.get("alpha");
    let err = alpha
        .running()
        .services()
        .links
        .link_now(&"nowhere.hearth.test".parse().unwrap())
        .await
        .unwrap_err();
    let msg = err.to_string();
    for part in [
        "cannot find nowhere.hearth.test",
        "SRV _hearth._tcp.nowhere.hearth.test",
        "well-known",
        "A/AAAA nowhere.hearth.test",
    ] {
        assert!(msg.contains(part), "{msg} lacks {part}");
    }
    expect_err(
        alpha.login_federated(fed, "nowhere.hearth.test").await,
        Code::Unavailable,
        "cannot be found",
    );
}

#[tokio::test]
async fn a_node_claiming_another_nodes_name_is_refused() {
    let c = Cluster::start(&["alpha", "beta"]).await;
    // "evil" runs with beta's name and its own key.
    let dir = tempfile::tempdir().unwrap();
    let mut evil_config = node_config("beta", &c.dns, dir.path().join("data"), 0);
    evil_config.listen.addr = "127.0.0.1:0".parse().unwrap();
    let evil = hearth::Node::start(evil_config).await.unwrap();
    let err = evil
        .services()
        .links
        .link_now(&c.get("alpha").id())
        .await
        .unwrap_err();
    assert!(err.is(ErrorKind::PermissionDenied), "{err}");
    let msg = &err.message;
    assert!(msg.contains("does not own that name"), "{msg}");
    assert_eq!(
        c.get("alpha").pinned(&c.get("beta").server_id).await,
        None,
        "nothing pinned for a squatter"
    );

    // Its federation tokens claiming to come from beta fail beta's real key.
    let signed = evil
        .services()
        .accounts
        .add_user("mallory@example.org", PASSWORD)
        .await
        .unwrap();
    let (secret, _) = evil
        .services()
        .sessions
        .issue_for_email("mallory@example.org", Default::default())
        .await
        .unwrap();
    let p = evil
        .services()
        .credentials
        .resolve(secret.expose(), None)
        .await
        .unwrap();
    assert_eq!(p.user_id, signed.id);
    let token = evil
        .services()
        .login
        .federate(&p, &c.get("alpha").server_id, |claims| {
            format!("{claims:?}").into_bytes()
        })
        .await
        .unwrap();
    let forged = hearth::pb::protocol::harmonytypes::v1::Token {
        sig: token.sig,
        data: token.data,
    };
    expect_err(
        c.get("alpha")
            .login_federated(forged, &c.get("beta").server_id)
            .await,
        Code::Unauthenticated,
        "signature",
    );
    evil.shutdown().await;
}
