//! Issue: sessions (DESIGN.md §3) over tangle.client.auth: device facts, revocation,
//! activity stamps and idle expiry, Authorize, and what is stored of a token.
use hearth::pb::tangle::client::auth as tangle;
use tonic::{Code, Request};

use crate::support::*;

#[tokio::test]
async fn sessions_carry_device_facts_and_revoke_one_at_a_time() {
    let n = TestNode::start().await;
    let (first, first_id, _) = n.sign_up("dev@example.org").await;
    let mut req = Request::new(tangle::SignIn {
        email: "dev@example.org".into(),
        password: PASSWORD.into(),
        totp: None,
    });
    for (k, v) in [
        ("x-client-id", "7"),
        ("x-device-type", "mobile"),
        ("x-device-version", "14"),
        ("x-app-name", "Tangle"),
        ("x-app-version", "2.1"),
    ] {
        req.metadata_mut().insert(k, v.parse().unwrap());
    }
    let second = n.tangle().sign_in(req).await.unwrap().into_inner();
    assert_ne!(second.token, first, "a new token at every sign-in");

    let list = n
        .tangle()
        .get_sessions(authed(tangle::GetSessions {}, &second.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.current, second.session_id);
    assert_eq!(list.sessions.len(), 2);
    let s = list
        .sessions
        .iter()
        .find(|s| s.id == second.session_id)
        .unwrap();
    assert_eq!(
        (
            s.client_id,
            s.device_type.as_str(),
            s.device_version.as_str()
        ),
        (7, "mobile", "14")
    );
    assert_eq!(
        (s.app_name.as_str(), s.app_version.as_str()),
        ("Tangle", "2.1")
    );
    assert!(
        s.last_active > 1_600_000_000,
        "last_active is unix seconds: {}",
        s.last_active
    );

    // Someone else's session cannot be revoked, and nothing is revoked by trying.
    let (other, other_id, _) = n.sign_up("other@example.org").await;
    let r = n
        .tangle()
        .revoke_sessions(authed(
            tangle::RevokeSessions {
                session_ids: vec![first_id, other_id],
            },
            &second.token,
        ))
        .await;
    assert_code(r, Code::NotFound, "not one of your sessions");
    n.pong(Some(&first)).await.unwrap();
    n.pong(Some(&other)).await.unwrap();

    // A huge list is refused before any work; duplicates are fine.
    let r = n
        .tangle()
        .revoke_sessions(authed(
            tangle::RevokeSessions {
                session_ids: (0..1_500).collect(),
            },
            &second.token,
        ))
        .await;
    assert_code(r, Code::InvalidArgument, "at most 1000");
    n.tangle()
        .revoke_sessions(authed(
            tangle::RevokeSessions {
                session_ids: vec![first_id, first_id, first_id],
            },
            &second.token,
        ))
        .await
        .unwrap();
    assert_code(n.pong(Some(&first)).await, Code::Unauthenticated, "revoked");
    n.pong(Some(&second.token)).await.unwrap();
    // The current session may revoke itself.
    n.tangle()
        .revoke_sessions(authed(
            tangle::RevokeSessions {
                session_ids: vec![second.session_id],
            },
            &second.token,
        ))
        .await
        .unwrap();
    assert_code(
        n.pong(Some(&second.token)).await,
        Code::Unauthenticated,
        "revoked",
    );
}

#[tokio::test]
async fn last_active_is_written_at_most_once_a_minute_and_idle_sessions_expire() {
    let n = TestNode::start_with(|c| c.sessions.idle_timeout_secs = 600).await;
    let (token, id, _) = n.sign_up("idle@example.org").await;
    let last_active = |n: &TestNode| {
        let store = n.domain().store().clone();
        async move {
            let user = store
                .read(move |tx| tx.users())
                .await
                .unwrap()
                .into_iter()
                .find(|u| u.email.as_deref() == Some("idle@example.org"))
                .unwrap()
                .id;
            store
                .read(move |tx| tx.sessions_of(user))
                .await
                .unwrap()
                .into_iter()
                .find(|s| s.id == id)
                .unwrap()
                .last_active as i64
        }
    };
    let t0 = last_active(&n).await;
    n.clock.advance_ms(30_000);
    n.pong(Some(&token)).await.unwrap();
    assert_eq!(last_active(&n).await, t0, "not written within a minute");
    n.clock.advance_ms(31_000);
    n.pong(Some(&token)).await.unwrap();
    // Written behind: the node writes pending stamps every second.
    n.domain().sessions.write_activity().await.unwrap();
    assert_eq!(last_active(&n).await, t0 + 61_000);
    n.clock.advance_ms(601_000);
    assert_code(n.pong(Some(&token)).await, Code::Unauthenticated, "idle");
}

#[tokio::test]
async fn returning_sessions_are_stamped_in_one_write_not_one_each() {
    let n = TestNode::start_with(|c| c.sessions.idle_timeout_secs = 600).await;
    let mut tokens = Vec::new();
    for k in 0..20 {
        tokens.push(n.sign_up(&format!("back{k}@example.org")).await.0);
    }
    let store = n.domain().store().clone();
    let stamps = async || {
        let mut all = Vec::new();
        for u in store.read(|tx| tx.users()).await.unwrap() {
            let id = u.id;
            let sessions = store.read(move |tx| tx.sessions_of(id)).await.unwrap();
            all.extend(sessions.into_iter().map(|s| s.last_active));
        }
        all
    };
    // Five minutes later every session comes back: each stamp is due.
    n.clock.advance_ms(300_000);
    let now = hearth::clock::Clock::now_ms(n.clock.as_ref());
    let before = store.writes();
    for t in &tokens {
        n.pong(Some(t)).await.unwrap();
    }
    assert!(
        store.writes() - before <= 1,
        "no write per request ({} writes)",
        store.writes() - before
    );
    // Within a second or so the node writes them, together.
    let mut written = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let rows = stamps().await;
        if rows.len() == 20 && rows.iter().all(|&at| at == now) {
            written = true;
            break;
        }
    }
    assert!(written, "every session's last_active is written");
    assert!(
        store.writes() - before <= 3,
        "one batch, not one write each ({} writes)",
        store.writes() - before
    );

    // A stamp not written yet still counts: used at 599 s of a 600 s idle limit, the
    // session is re-read from the database 6 s later (the cache's 5 s are over) and lives.
    n.clock.advance_ms(599_000);
    n.pong(Some(&tokens[0])).await.unwrap();
    n.clock.advance_ms(6_000);
    n.pong(Some(&tokens[0])).await.unwrap();
}

#[tokio::test]
async fn authorize_reauthenticates_with_a_token_in_the_body() {
    let n = TestNode::start().await;
    let (token, session_id, user_id) = n.sign_up("auth@example.org").await;
    let a = n
        .tangle()
        .authorize(tangle::Authorize {
            token: token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (a.session_id, a.user.unwrap().id, a.token),
        (session_id, user_id, token.clone())
    );
    assert_code(
        n.tangle()
            .authorize(tangle::Authorize {
                token: "hs_nope".into(),
            })
            .await,
        Code::Unauthenticated,
        "malformed",
    );
    n.domain().sessions.revoke_by_id(session_id).await.unwrap();
    assert_code(
        n.tangle().authorize(tangle::Authorize { token }).await,
        Code::Unauthenticated,
        "revoked",
    );
}

#[tokio::test]
async fn only_the_sha256_of_a_session_token_is_stored() {
    use sha2::Digest;
    let n = TestNode::start().await;
    let (token, session_id, _) = n.sign_up("hashonly@example.org").await;
    // Neither the database nor its write-ahead log holds the token itself.
    for file in ["hearth.sqlite3", "hearth.sqlite3-wal"] {
        let bytes = std::fs::read(n.config.data_dir.join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token itself is in {file}"
        );
    }
    let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    let found = n
        .domain()
        .store()
        .read(move |tx| tx.session_credential(&hash))
        .await
        .unwrap();
    let found = found.expect("found by the token's hash");
    assert_eq!(found.id, session_id);
    // What the credential check reads: a signed-in session may do everything, for a while.
    assert_eq!(found.scopes, hearth::domain::scopes::ScopeSet::ALL);
    assert!(found.expires_at > found.last_active);
}

/// The session index (`[sessions] memory_index_max`): a session the short-lived credential
/// cache no longer holds resolves from memory, without a database read; one that ends is
/// refused at once, and so is a token replaced by RefreshSession.
#[tokio::test]
async fn the_session_index_resolves_without_the_database_and_drops_ended_sessions() {
    let n = TestNode::start().await;
    let (token, session, _) = n.sign_up("index@example.org").await;
    let (other, _, _) = n.sign_up("index2@example.org").await;
    n.pong(Some(&token)).await.unwrap();
    n.pong(Some(&other)).await.unwrap();
    // Past the credential cache's 5 s.
    n.clock.advance_ms(6_000);
    let reads = n.domain().store().timings().reads;
    n.pong(Some(&token)).await.unwrap();
    n.pong(Some(&other)).await.unwrap();
    assert_eq!(
        n.domain().store().timings().reads,
        reads,
        "resolved from the index"
    );
    assert!(n.domain().sessions.index().len() >= 2);
    n.tangle()
        .revoke_sessions(authed(
            tangle::RevokeSessions {
                session_ids: vec![session],
            },
            &token,
        ))
        .await
        .unwrap();
    let refused = n.pong(Some(&token)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    // Folded into the sorted part, the ended session stays gone and the other stays.
    n.domain()
        .sessions
        .index()
        .rebuild(hearth::clock::Clock::now_ms(n.clock.as_ref()));
    n.clock.advance_ms(6_000);
    assert_eq!(
        n.pong(Some(&token)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let reads = n.domain().store().timings().reads;
    n.pong(Some(&other)).await.unwrap();
    assert_eq!(n.domain().store().timings().reads, reads);
}
