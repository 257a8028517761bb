//! Revocation across nodes (DESIGN.md §4.7): a home session that ends takes the foreign
//! sessions made from it along, on every node, within 2 s; notices are signed, applied
//! once, and reach a node that was down when it links again.
use std::time::{Duration, Instant};

use hearth::pb::protocol::auth::v1::{RevocationNotice, RevokeFederatedRequest};
use tonic::Code;

use crate::support::{expect_err, Cluster, Member, Options};

/// Waits until `token` is refused on `node`; how long it took. Panics after `limit`.
pub async fn refused_within(node: &Member, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match node.pong(token).await {
            Err(s) if s.code() == Code::Unauthenticated => return start.elapsed(),
            Err(s) => panic!("pong on {} failed otherwise: {s:?}", node.server_id),
            Ok(()) => {}
        }
        assert!(
            start.elapsed() < limit,
            "the foreign session on {} still works {limit:?} after its home session ended",
            node.server_id
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A session on `target` for the user of `token` at `home`.
pub async fn federated(home: &Member, token: &str, target: &Member) -> String {
    let fed = home.federate(token, &target.server_id).await.unwrap();
    target
        .login_federated(fed, &home.server_id)
        .await
        .unwrap()
        .session_token
}

pub fn notice(
    home: &Member,
    signer: &Member,
    target: &Member,
    user: u64,
    session: u64,
) -> RevocationNotice {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let message = hearth::identity::proofs::revocation_notice(
        &home.server_id,
        &target.server_id,
        user,
        session,
        at,
    );
    RevocationNotice {
        home_server: home.server_id.clone(),
        target_server: target.server_id.clone(),
        user_id: user,
        home_session_id: session,
        at,
        sig: signer
            .domain()
            .key_ring()
            .current()
            .node
            .sign(message.as_bytes())
            .to_vec(),
    }
}

pub async fn send(
    target: &Member,
    notices: Vec<RevocationNotice>,
) -> Result<(u32, u32), tonic::Status> {
    let r = target
        .harmony()
        .revoke_federated(RevokeFederatedRequest { notices })
        .await?
        .into_inner();
    Ok((r.applied, r.already_applied))
}

#[tokio::test]
async fn a_home_session_that_ends_ends_its_foreign_sessions_on_every_node() {
    let c = Cluster::start_with(
        &["alpha", "beta", "gamma"],
        Options {
            peers: true,
            ..Default::default()
        },
        |_, _| {},
    )
    .await;
    let (alpha, beta, gamma) = (c.get("alpha"), c.get("beta"), c.get("gamma"));
    let (first, _) = alpha.sign_up("ada@example.org").await;
    let second = alpha.sign_in("ada@example.org").await;
    let on_beta = federated(alpha, &first, beta).await;
    let on_gamma = federated(alpha, &first, gamma).await;
    let second_on_beta = federated(alpha, &second, beta).await;
    // A token signed from the first session, not used yet.
    let unused = alpha.federate(&first, &beta.server_id).await.unwrap();

    let id = alpha.session_id(&first).await;
    alpha.revoke_sessions(&second, vec![id]).await;
    let mut slowest = Duration::ZERO;
    for (node, token) in [(beta, &on_beta), (gamma, &on_gamma)] {
        slowest = slowest.max(refused_within(node, token, Duration::from_secs(2)).await);
    }
    println!("home revocation → foreign sessions refused: max {slowest:?} over 2 nodes");
    // Only what came from the ended home session ends.
    beta.pong(&second_on_beta).await.unwrap();
    // A token that the ended session signed no longer logs in.
    expect_err(
        beta.login_federated(unused, &alpha.server_id).await,
        Code::Unauthenticated,
        "has ended",
    );
    outbox_empties(alpha).await;

    // The operator's `hearth session revoke --all` (a CLI process beside the node) too.
    let (ok, _, err) = alpha.cli(&["session", "revoke", "--all", "--email", "ada@example.org"]);
    assert!(ok, "{err}");
    refused_within(beta, &second_on_beta, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_token_that_stops_or_a_disabled_account_ends_what_it_made_elsewhere() {
    let c = Cluster::start(&["alpha", "beta"]).await;
    let (alpha, beta) = (c.get("alpha"), c.get("beta"));
    let (session, _) = alpha.sign_up("dee@example.org").await;
    // A personal access token expired by its owner.
    let (uuid, pat) = alpha.create_token(&session, &["federation"]).await;
    let on_beta = federated(alpha, &pat, beta).await;
    alpha.force_token_expiration(&session, &uuid).await;
    refused_within(beta, &on_beta, Duration::from_secs(2)).await;
    // An account the operator disables: its tokens stay (refused), what they made elsewhere
    // ends, as do its sessions'.
    let (_, pat) = alpha.create_token(&session, &["federation"]).await;
    let from_token = federated(alpha, &pat, beta).await;
    let from_session = federated(alpha, &session, beta).await;
    let (ok, _, err) = alpha.cli(&["user", "disable", "dee@example.org"]);
    assert!(ok, "{err}");
    refused_within(beta, &from_token, Duration::from_secs(3)).await;
    refused_within(beta, &from_session, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_node_that_was_down_gets_the_notices_it_missed_when_it_links_again() {
    let mut c = Cluster::start_with(
        &["alpha", "beta"],
        Options {
            peers: true,
            ..Default::default()
        },
        |_, _| {},
    )
    .await;
    let (token, _) = c.get("alpha").sign_up("bob@example.org").await;
    let on_beta = federated(c.get("alpha"), &token, c.get("beta")).await;
    c.get_mut("beta").stop().await;
    let alpha = c.get("alpha");
    let id = alpha.session_id(&token).await;
    alpha.revoke_sessions(&token, vec![id]).await;
    // Delivery fails while beta is down; the notice waits in the outbox.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(alpha.domain().notices.waiting().await.unwrap(), 1);
    c.get_mut("beta").start().await;
    // Beta links to alpha at start: that is its ask for what it missed.
    refused_within(c.get("beta"), &on_beta, Duration::from_secs(10)).await;
    // The sender removes it from the outbox once beta's answer is back.
    outbox_empties(c.get("alpha")).await;
}

/// Waits (up to 5 s) until `home`'s outbox of notices is empty.
pub async fn outbox_empties(home: &Member) {
    let start = Instant::now();
    while home.domain().notices.waiting().await.unwrap() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "notices still wait in {}'s outbox",
            home.server_id
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn notices_that_are_forged_replayed_misaddressed_or_for_others_users_are_refused() {
    let c = Cluster::start(&["alpha", "beta", "gamma"]).await;
    let (alpha, beta, gamma) = (c.get("alpha"), c.get("beta"), c.get("gamma"));
    let (token, user) = alpha.sign_up("cy@example.org").await;
    let keep = alpha.sign_in("cy@example.org").await;
    let session = alpha.session_id(&token).await;
    let on_beta = federated(alpha, &token, beta).await;
    let kept_on_beta = federated(alpha, &keep, beta).await;

    // gamma signs a notice in alpha's name: the signature is not alpha's.
    let forged = send(beta, vec![notice(alpha, gamma, beta, user, session)]).await;
    expect_err(forged, Code::Unauthenticated, "does not verify");
    // A notice for another node.
    let elsewhere = send(beta, vec![notice(alpha, alpha, gamma, user, session)]).await;
    expect_err(elsewhere, Code::PermissionDenied, "not for this node");
    // gamma's notice about alpha's user ends nothing of alpha's users.
    assert_eq!(
        send(beta, vec![notice(gamma, gamma, beta, user, session)])
            .await
            .unwrap(),
        (1, 0)
    );
    beta.pong(&on_beta).await.unwrap();
    // Mixed senders in one request.
    let mixed = send(
        beta,
        vec![
            notice(alpha, alpha, beta, user, session),
            notice(gamma, gamma, beta, user, 9),
        ],
    )
    .await;
    expect_err(mixed, Code::InvalidArgument, "one home node");
    // Too many at once.
    let flood: Vec<_> = (0..101)
        .map(|i| notice(alpha, alpha, beta, user, 1000 + i))
        .collect();
    expect_err(
        send(beta, flood).await,
        Code::InvalidArgument,
        "at most 100",
    );

    // alpha's real notice applies once; the same notice again changes nothing.
    let real = notice(alpha, alpha, beta, user, session);
    assert_eq!(send(beta, vec![real.clone()]).await.unwrap(), (1, 0));
    refused_within(beta, &on_beta, Duration::from_secs(1)).await;
    assert_eq!(send(beta, vec![real]).await.unwrap(), (0, 1));
    beta.pong(&kept_on_beta).await.unwrap();
}
