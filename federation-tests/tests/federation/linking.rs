//! Links a node did not configure (DESIGN.md §4.8) and budgets per authenticated peer.
use tonic::Code;

use crate::peers::peer_row_until;
use crate::revocation::{notice, send};
use crate::support::{expect_err, Cluster};

#[tokio::test]
async fn a_one_sided_config_links_both_ways() {
    let names = ["alpha", "b", "c", "d", "e", "f"];
    let alpha_id = "alpha.hearth.test";
    let c = Cluster::start_with(&names, Default::default(), |name, config| {
        if name != "alpha" {
            config.federation.peers.push(hearth::config::Peer {
                server_id: alpha_id.parse().unwrap(),
                url: None,
            });
        }
    })
    .await;
    for name in &names[1..] {
        let other = c.get(name);
        peer_row_until(other, alpha_id, 20, |p| p.state == "linked").await;
        // alpha lists nobody: it linked back once discovery confirmed the caller's key.
        let (row, _) = peer_row_until(c.get("alpha"), &other.server_id, 20, |p| {
            p.state == "linked"
        })
        .await;
        assert!(row.linked, "{row:?}");
    }
    // An operator's unlink holds: the peer linking again is not linked back.
    let (alpha, b) = (c.get("alpha"), c.get("b"));
    alpha
        .domain()
        .peers
        .set_link(&b.id(), false, None)
        .await
        .unwrap();
    b.domain().challenge.link(&alpha.id(), None).await.unwrap();
    let rows = alpha.domain().peers.list().await.unwrap();
    let row = rows.iter().find(|p| p.server_id == b.server_id).unwrap();
    assert!(!row.linked && row.state == "unlinked", "{row:?}");
}

#[tokio::test]
async fn without_dns_a_callers_url_names_it_only_where_the_operator_allows() {
    let c = Cluster::start_with(
        &["alpha", "beta", "lone"],
        Default::default(),
        |name, config| {
            match name {
                "alpha" => config.federation.accept_caller_urls = true,
                "lone" => {
                    // A name no discovery finds: only its own URL leads to it.
                    config.server_id = "lone.localhost".parse().unwrap();
                    for peer in ["alpha", "beta"] {
                        config.federation.peers.push(hearth::config::Peer {
                            server_id: format!("{peer}.hearth.test").parse().unwrap(),
                            url: None,
                        });
                    }
                }
                _ => {}
            }
        },
    )
    .await;
    let lone = c.get("lone");
    peer_row_until(lone, "alpha.hearth.test", 20, |p| p.state == "linked").await;
    let (row, _) = peer_row_until(c.get("alpha"), "lone.localhost", 20, |p| {
        p.state == "linked"
    })
    .await;
    assert!(
        row.url
            .as_deref()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "{row:?}"
    );
    let (row, _) = peer_row_until(lone, "beta.hearth.test", 20, |p| p.state != "new").await;
    assert_ne!(
        row.state, "linked",
        "beta does not take a caller's word for its name"
    );
    let beta_rows = c.get("beta").domain().peers.list().await.unwrap();
    assert!(!beta_rows
        .iter()
        .any(|p| p.server_id == "lone.localhost" && p.linked));
}

#[tokio::test]
async fn each_authenticated_peer_has_its_own_budget_whatever_its_address() {
    let c = Cluster::start_with(
        &["alpha", "beta", "gamma"],
        Default::default(),
        |name, config| {
            if name == "alpha" {
                config.federation.calls_per_peer_per_minute = 3;
            }
        },
    )
    .await;
    let (alpha, beta, gamma) = (c.get("alpha"), c.get("beta"), c.get("gamma"));
    for session in 1..=3 {
        send(alpha, vec![notice(beta, beta, alpha, 7, session)])
            .await
            .unwrap();
    }
    let spent = send(alpha, vec![notice(beta, beta, alpha, 7, 4)]).await;
    expect_err(
        spent,
        Code::ResourceExhausted,
        "too many calls from beta.hearth.test",
    );
    // gamma calls from the same address and still has its budget.
    send(alpha, vec![notice(gamma, gamma, alpha, 7, 1)])
        .await
        .unwrap();
}
