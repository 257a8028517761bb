//! The store conformance suite: the rules that guard writes, each under 50 parallel callers,
//! run against a backend given as a function that opens a store on a data dir. Every
//! backend must pass it; SQLite runs it here (`sqlite_*` tests at the bottom).
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use futures_util::future::join_all;
use hearth::clock::ManualClock;
use hearth::domain::invites::NewInvite;
use hearth::domain::model::{AccessToken, InviteTarget, User};
use hearth::domain::scopes::ScopeSet;
use hearth::domain::state::{Store, StoreError};
use hearth::domain::{Keys, Networks, NodeState, RequestContext, Services};
use hearth::federation::client::PeerClient;
use hearth::identity::key::NodeKey;
use hearth::secret::{BearerSecret, SecretKind};
use hearth::Config;

use crate::support::{test_config, PASSWORD};

const CALLERS: usize = 50;

/// A backend under test: opens a store on the database in `dir` (twice for one dir means
/// two processes sharing one database).
pub trait Backend: Fn(&Path) -> Store + Copy {}
impl<F: Fn(&Path) -> Store + Copy> Backend for F {}

async fn services(store: Store, config: &Config, clock: Arc<ManualClock>, who: &str) -> Services {
    let peers = Arc::new(PeerClient::new(config, clock.clone()).unwrap());
    let providers = Arc::new(hearth::providers::Providers::new(&config.federation).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys {
        node: NodeKey::generate(),
        jwt: hearth::keys::files::load_or_generate_jwt(dir.path()).unwrap(),
    };
    Services::new(
        Arc::new(config.clone()),
        NodeState::local(store, clock),
        keys,
        Networks { peers, providers },
        who.to_owned(),
    )
    .await
    .unwrap()
}

async fn setup(open: impl Backend) -> (tempfile::TempDir, Arc<Services>, Config) {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path().to_owned());
    let s = services(open(dir.path()), &config, ManualClock::new(), "node").await;
    (dir, Arc::new(s), config)
}

async fn parallel<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    join_all(handles)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

async fn sign_up(s: &Services, email: &str) -> hearth::domain::accounts::SignedIn {
    s.accounts
        .sign_up(
            hearth::domain::accounts::SignUp {
                email: Some(email.into()),
                password: Some(PASSWORD.to_owned().into()),
                ..Default::default()
            },
            &RequestContext::default(),
        )
        .await
        .unwrap()
}

/// 50 parallel wrong passwords on one account: at most 5 are evaluated by argon2.
pub async fn parallel_wrong_sign_ins_evaluate_at_most_5(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    sign_up(&s, "victim@example.org").await;
    let before = s.accounts.hasher().verifications();
    let results = parallel(CALLERS, |i| {
        let s = s.clone();
        async move {
            let ctx = RequestContext::default();
            s.accounts
                .sign_in(
                    "victim@example.org",
                    &format!("wrong password {i}"),
                    None,
                    &ctx,
                )
                .await
        }
    })
    .await;
    assert!(results.iter().all(Result::is_err));
    let evaluated = s.accounts.hasher().verifications() - before;
    assert!(evaluated <= 5, "{evaluated} passwords evaluated");
}

/// A burst of correct sign-ins on one account is not mistaken for guessing: attempts in
/// flight wait for a slot instead of counting as failures.
pub async fn parallel_correct_sign_ins_all_succeed(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    sign_up(&s, "busy@example.org").await;
    let results = parallel(16, |_| {
        let s = s.clone();
        async move {
            let ctx = RequestContext::default();
            s.accounts
                .sign_in("busy@example.org", PASSWORD, None, &ctx)
                .await
        }
    })
    .await;
    for r in &results {
        assert!(r.is_ok(), "{:?}", r.as_ref().err());
    }
    let state = s
        .store()
        .read(|tx| tx.sign_in_throttle("busy@example.org", ""))
        .await
        .unwrap();
    assert_eq!(state, (0, None));
}

/// A sign-in cancelled while its password is evaluated counts as a failure, and its slot
/// is given back.
pub async fn a_cancelled_sign_in_counts_as_a_failure(open: impl Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path().to_owned());
    // The production cost, so the attempt is still hashing when it is cancelled.
    config.passwords.argon2_memory_kib = 19456;
    config.passwords.argon2_iterations = 2;
    let s = Arc::new(services(open(dir.path()), &config, ManualClock::new(), "node").await);
    sign_up(&s, "cancel@example.org").await;
    let s2 = s.clone();
    let task = tokio::spawn(async move {
        let ctx = RequestContext::default();
        s2.accounts
            .sign_in("cancel@example.org", "a wrong guess", None, &ctx)
            .await
    });
    // Past the gate (a few ms, more in the widened runs), into argon2 (far longer).
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    task.abort();
    let _ = task.await;
    for _ in 0..100 {
        let (failures, _) = s
            .store()
            .read(|tx| tx.sign_in_throttle("cancel@example.org", ""))
            .await
            .unwrap();
        if failures == 1 {
            // The slot is free again: a correct sign-in goes through.
            let ctx = RequestContext::default();
            s.accounts
                .sign_in("cancel@example.org", PASSWORD, None, &ctx)
                .await
                .unwrap();
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the cancelled attempt was not counted");
}

/// The delays and the lock the store sets follow the policy's rule: the client's delay after
/// each of 99 consecutive failures, and the account-wide lock at the 100th.
pub async fn the_delays_follow_the_policy(open: impl Backend) {
    use hearth::domain::throttle::POLICY;
    let (_dir, s, _) = setup(open).await;
    let start = s.clock().now_ms();
    for n in 1..=POLICY.lock_after {
        // Each attempt comes after the previous delay has passed.
        let now = start + u64::from(n) * POLICY.max_delay_ms;
        let state = s
            .store()
            .write(move |tx| {
                let gate = hearth::domain::throttle::begin_in(
                    tx,
                    "rule@example.org",
                    "192.0.2.9",
                    now,
                    &POLICY,
                )?;
                assert_eq!(gate, hearth::domain::model::SignInGate::Allowed);
                hearth::domain::throttle::finish_in(
                    tx,
                    "rule@example.org",
                    "192.0.2.9",
                    false,
                    now,
                    &POLICY,
                )?;
                Ok::<_, StoreError>((
                    tx.sign_in_throttle("rule@example.org", "192.0.2.9")?,
                    tx.sign_in_throttle("rule@example.org", "*")?,
                ))
            })
            .await
            .unwrap();
        let (client, account) = state;
        assert_eq!(client.0, n);
        assert_eq!(account.0, n);
        if n < POLICY.lock_after {
            assert_eq!(
                client.1,
                POLICY.locked_until(n, now),
                "client delay after {n}"
            );
            assert_eq!(account.1, None, "no account lock after {n}");
        } else {
            assert_eq!(
                account.1,
                POLICY.locked_until(n, now),
                "account lock after {n}"
            );
        }
    }
}

/// 50 parallel guesses of one e-mail code: at most 5 are compared.
pub async fn parallel_code_guesses_compare_at_most_5(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    sign_up(&s, "coded@example.org").await;
    let before = s.codes.comparisons();
    let results = parallel(CALLERS, |i| {
        let s = s.clone();
        async move {
            s.codes
                .verify_email("coded@example.org", &format!("{:08}", 10_000_000 + i))
                .await
        }
    })
    .await;
    assert!(results.iter().filter(|r| r.is_ok()).count() <= 1);
    let compared = s.codes.comparisons() - before;
    assert!(compared <= 5, "{compared} codes compared");
}

/// 50 parallel refreshes of one session: exactly one new token; the others are refused.
pub async fn parallel_session_refreshes_have_one_winner(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    let signed = sign_up(&s, "refresh@example.org").await;
    let p = s
        .credentials
        .resolve(signed.token.expose(), None)
        .await
        .unwrap();
    let results = parallel(CALLERS, |_| {
        let (s, p) = (s.clone(), p.clone());
        async move { s.sessions.refresh(&p).await }
    })
    .await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "one refresh wins");
    assert!(s
        .credentials
        .resolve(winners[0].expose(), None)
        .await
        .is_ok());
    assert!(s
        .credentials
        .resolve(signed.token.expose(), None)
        .await
        .is_err());
}

/// 50 parallel refreshes of one peer token: exactly one new token.
pub async fn parallel_peer_token_refreshes_have_one_winner(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    let token = BearerSecret::generate(SecretKind::Peer);
    let (hash, until) = (token.hash(), s.clock().now_ms() + 3_600_000);
    s.store()
        .write(move |tx| tx.insert_peer_token(&hash, "beta.example.org", until))
        .await
        .unwrap();
    let text = token.expose().to_owned();
    let results = parallel(CALLERS, |_| {
        let (s, t) = (s.clone(), text.clone());
        async move { s.challenge.refresh(&t).await }
    })
    .await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "one refresh wins");
    let fresh = winners[0].token.expose();
    assert_eq!(
        s.challenge.peer_of_token(fresh).await.unwrap(),
        "beta.example.org"
    );
    assert!(s.challenge.peer_of_token(&text).await.is_err());
}

/// A federation nonce is accepted once under 50 parallel uses.
pub async fn a_nonce_is_used_once(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    let now = s.clock().now_ms();
    let results = parallel(CALLERS, |_| {
        let store = s.store().clone();
        async move {
            store
                .write(move |tx| {
                    tx.use_nonce("alpha.example.org", b"0123456789abcdef", now + 60_000, now)
                })
                .await
        }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict(_)))));
}

/// Revocation across nodes (DESIGN.md §4.7) under 50 parallel callers. Receiving: a notice
/// applies once, and no foreign session bound to a home session survives its end, however
/// bindings and the end interleave. Home side: a grant that races the end of its session is
/// either refused or becomes a notice.
pub async fn revocation_across_nodes_holds_under_parallel_callers(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    let now = s.clock().now_ms();
    let origin = "alpha.example.org";
    let foreign = User {
        id: 4242,
        email: None,
        name: "ada@alpha.example.org".into(),
        password_hash: None,
        email_verified: false,
        home: Some((origin.into(), 7)),
        disabled: false,
        created_at: now,
    };
    s.store()
        .write(move |tx| tx.insert_user(&foreign))
        .await
        .unwrap();
    // Bindings to home session 99 race its end: every binding that commits is ended.
    let ended = parallel(CALLERS, |i| {
        let (store, sessions) = (s.store().clone(), s.sessions.clone());
        async move {
            if i % 5 == 0 {
                return store
                    .write(move |tx| tx.end_home_session(origin, 7, 99, now + 60_000, now))
                    .await
                    .map(Some);
            }
            let (_, session) = sessions.new_session(4242, Default::default(), "federated");
            store
                .write(move |tx| {
                    tx.insert_session(&session)?;
                    match tx.bind_foreign_session(session.id, origin, 99)? {
                        true => Ok(None),
                        false => Err(StoreError::Conflict("ended")),
                    }
                })
                .await
        }
    })
    .await;
    let applied = ended
        .iter()
        .filter(|r| matches!(r, Ok(Some(Some(_)))))
        .count();
    assert_eq!(applied, 1, "one end applies; the others see it applied");
    let left = s.store().read(|tx| tx.sessions_of(4242)).await.unwrap();
    assert!(
        left.is_empty(),
        "{} bound sessions outlived their home session",
        left.len()
    );

    // Home side: grants of one session for 49 peers race the session's deletion.
    let home = sign_up(&s, "home@example.org").await;
    let (session, user) = (home.session.id, home.user.id);
    let granted = parallel(CALLERS, |i| {
        let store = s.store().clone();
        async move {
            let peer = format!("p{i}.example.org");
            let ok = store
                .write(move |tx| match i {
                    25 => tx.delete_session(session).map(|_| false),
                    _ => tx.grant_federation(session, false, &peer, user),
                })
                .await
                .unwrap();
            (i, ok)
        }
    })
    .await;
    let mut granted: Vec<String> = granted
        .into_iter()
        .filter(|(_, ok)| *ok)
        .map(|(i, _)| format!("p{i}.example.org"))
        .collect();
    let mut noticed: Vec<String> = s
        .store()
        .read(move |tx| tx.due_notices(now, 1000))
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.home_session == session)
        .map(|n| n.peer)
        .collect();
    granted.sort();
    noticed.sort();
    assert_eq!(
        granted, noticed,
        "every grant that committed became a notice"
    );
}

/// Ids stay unique while the CLI and the node write at once: each process leases its own
/// snowflake worker.
pub async fn ids_stay_unique_across_processes(open: impl Backend) {
    let (dir, node, config) = setup(open).await;
    let cli = Arc::new(services(open(dir.path()), &config, ManualClock::new(), "cli").await);
    assert_ne!(node.id_lease().worker(), cli.id_lease().worker());
    let results = parallel(2 * CALLERS, |i| {
        let s = if i % 2 == 0 {
            node.clone()
        } else {
            cli.clone()
        };
        async move {
            s.accounts
                .add_user(&format!("user{i}@example.org"), PASSWORD)
                .await
        }
    })
    .await;
    let mut ids: Vec<u64> = results.into_iter().map(|r| r.unwrap().id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2 * CALLERS);
}

/// A one-use invite is spent once under 50 parallel uses.
pub async fn a_one_use_invite_is_spent_once(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    let now = s.clock().now_ms();
    let (_, invite) = s
        .invites
        .create(
            None,
            NewInvite {
                target: InviteTarget::Registration,
                target_id: 0,
                expires_at: Some(now + 60_000),
                max_uses: Some(1),
            },
        )
        .await
        .unwrap();
    let results = parallel(CALLERS, |_| {
        let store = s.store().clone();
        async move { store.write(move |tx| tx.spend_invite(invite.id, now)).await }
    })
    .await;
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(true))).count(), 1);
    assert!(results.iter().all(Result::is_ok));
}

/// The per-account cap on personal access tokens holds under 50 parallel creations.
pub async fn the_token_cap_holds_under_parallel_creates(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    let user = sign_up(&s, "capped@example.org").await.user.id;
    let now = s.clock().now_ms();
    let results = parallel(CALLERS, |i| {
        let store = s.store().clone();
        async move {
            let secret = BearerSecret::generate(SecretKind::PersonalAccessToken);
            let t = AccessToken {
                id: (1 << 62) + i as u64,
                uuid: format!("00000000-0000-4000-8000-{i:012}"),
                user_id: user,
                name: "parallel".into(),
                token_hash: secret.hash(),
                scopes: ScopeSet::ALL,
                created_at: now,
                expires_at: now + 60_000,
                last_used_at: None,
                last_used_ip: None,
            };
            store.write(move |tx| tx.insert_access_token(&t, 10)).await
        }
    })
    .await;
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(true))).count(), 10);
    assert!(results.iter().all(Result::is_ok));
}

/// An account's passkey cap, and "a credential belongs to one account", under 50 parallel
/// additions: 10 of one account's 50 distinct passkeys are kept, and of 50 additions of one
/// credential to five accounts, one is.
pub async fn the_passkey_rules_hold_under_parallel_adds(open: impl Backend) {
    use hearth::domain::model::StoredPasskey;
    use hearth::domain::passkeys::{add_in, MAX_PER_ACCOUNT};
    let (_dir, s, _) = setup(open).await;
    let mut users = Vec::new();
    for n in 0..5 {
        users.push(sign_up(&s, &format!("keys{n}@example.org")).await.user.id);
    }
    let now = s.clock().now_ms();
    let key = move |i: usize, user: u64, credential: Vec<u8>| StoredPasskey {
        id: (1 << 61) + i as u64,
        user_id: user,
        credential_id: credential,
        name: format!("key {i}"),
        data: "{}".into(),
        created_at: now,
        last_used_at: None,
    };
    let first = users[0];
    let results = parallel(CALLERS, |i| {
        let store = s.store().clone();
        let k = key(i, first, format!("credential {i}").into_bytes());
        async move { store.write(move |tx| add_in(tx, &k)).await }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        MAX_PER_ACCOUNT
    );
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| e.reason.as_str() == "LIMIT_REACHED"));
    let results = parallel(CALLERS, |i| {
        let store = s.store().clone();
        let k = key(100 + i, users[1 + i % 4], b"one credential".to_vec());
        async move { store.write(move |tx| add_in(tx, &k)).await }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| e.reason.as_str() == "PASSKEY_TAKEN"));
}

/// The sign-in gate itself, under 50 parallel callers on the store (no node's in-process
/// queue in front of it): exactly its 5 slots are taken.
pub async fn the_gate_admits_its_slots_only(open: impl Backend) {
    use hearth::domain::model::SignInGate;
    use hearth::domain::throttle::{begin_in, finish_in, POLICY};
    let (_dir, s, _) = setup(open).await;
    let now = s.clock().now_ms();
    let results = parallel(CALLERS, |_| {
        let store = s.store().clone();
        async move {
            store
                .write_each(move |tx| begin_in(tx, "gate@example.org", "192.0.2.7", now, &POLICY))
                .await
        }
    })
    .await;
    let allowed = results
        .iter()
        .filter(|r| matches!(r, Ok(SignInGate::Allowed)))
        .count();
    assert_eq!(allowed, POLICY.free_failures as usize, "{results:?}");
    assert!(results.iter().all(Result::is_ok));
    // The first slot given back while every slot was taken (others were answered Busy) says
    // so, and its waiters are woken; the next, with a slot free, wakes nobody.
    let give_back = || {
        s.store().write_counted(move |tx| {
            finish_in(tx, "gate@example.org", "192.0.2.7", true, now, &POLICY)
        })
    };
    assert!(give_back().await.unwrap(), "waiters are told");
    assert!(!give_back().await.unwrap(), "nobody can be waiting");
}

/// A write whose caller went away (its deadline passed) commits nothing, on every backend,
/// however often the backend runs the job; a caller that waits still commits.
pub async fn a_write_nobody_awaits_commits_nothing(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    let user = User {
        id: 1 << 59,
        email: Some("gone@example.org".into()),
        name: "gone".into(),
        password_hash: None,
        email_verified: false,
        home: None,
        disabled: false,
        created_at: 0,
    };
    let (u, store) = (user.clone(), s.store().clone());
    let cut_off = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        store.write(move |tx| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            tx.insert_user(&u)
        }),
    )
    .await;
    assert!(cut_off.is_err(), "the caller gave up first");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let id = user.id;
    assert!(store.read(move |tx| tx.user(id)).await.unwrap().is_none());
    let u = user.clone();
    store.write(move |tx| tx.insert_user(&u)).await.unwrap();
    assert!(store.read(move |tx| tx.user(id)).await.unwrap().is_some());
}

/// The session caps hold under 50 parallel callers: 50 TokenAuthorizations with a token 5
/// short of its cap, then 50 sign-ins with the account 5 short of its, all succeed, each
/// ending the least recently active session over the cap, and the counts end exactly at the
/// caps with every new session alive (security review: one token minted 3,000 sessions in
/// 3.4 s). A two-step count-then-insert would overshoot.
pub async fn the_session_caps_hold_under_parallel_callers(open: impl Backend) {
    use hearth::domain::sessions::{MAX_PER_TOKEN, MAX_PER_USER};
    let (_dir, s, _) = setup(open).await;
    let user = sign_up(&s, "many@example.org").await.user.id;
    let now = s.clock().now_ms();
    let secret = BearerSecret::generate(SecretKind::PersonalAccessToken);
    let t = AccessToken {
        id: 1 << 62,
        uuid: "00000000-0000-4000-8000-000000000001".into(),
        user_id: user,
        name: "minting".into(),
        token_hash: secret.hash(),
        scopes: ScopeSet::ALL,
        created_at: now,
        expires_at: now + 3_600_000,
        last_used_at: None,
        last_used_ip: None,
    };
    s.store()
        .write(move |tx| tx.insert_access_token(&t, 10))
        .await
        .unwrap();
    // Fill: the token 5 short of its cap.
    let fill = |n: u32, token: Option<u64>| {
        let sessions = s.sessions.clone();
        let store = s.store().clone();
        async move {
            let rows: Vec<_> = (0..n)
                .map(|_| {
                    let (_, mut row) = sessions.new_session(user, Default::default(), "pwd");
                    row.access_token_id = token;
                    row
                })
                .collect();
            store
                .write(move |tx| rows.iter().try_for_each(|r| tx.insert_session(r)))
                .await
                .unwrap();
        }
    };
    fill(MAX_PER_TOKEN - 5, Some(1 << 62)).await;
    let p = s
        .credentials
        .resolve(secret.expose(), None)
        .await
        .expect("the token resolves");
    let live = |s: Arc<Services>| async move {
        s.store()
            .read(move |tx| tx.live_sessions(user, Some(1 << 62), now))
            .await
            .unwrap()
    };
    let alive = |s: Arc<Services>, tokens: Vec<String>| async move {
        for t in tokens {
            assert!(
                s.credentials.resolve(&t, None).await.is_ok(),
                "a new session was ended"
            );
        }
    };
    let made: Vec<String> = parallel(CALLERS, |_| {
        let (s, p) = (s.clone(), p.clone());
        async move { s.access_tokens.exchange(&p, Default::default()).await }
    })
    .await
    .into_iter()
    .map(|r| r.expect("TokenAuthorization").0.expose().to_owned())
    .collect();
    assert_eq!(live(s.clone()).await, (1 + MAX_PER_TOKEN, MAX_PER_TOKEN));
    alive(s.clone(), made).await;
    // Fill: the account 5 short of its cap (one session from signing up, 100 the token's).
    fill(MAX_PER_USER - 5 - 1 - MAX_PER_TOKEN, None).await;
    let made: Vec<String> = parallel(CALLERS, |_| {
        let s = s.clone();
        async move {
            let ctx = RequestContext::default();
            s.accounts
                .sign_in("many@example.org", PASSWORD, None, &ctx)
                .await
        }
    })
    .await
    .into_iter()
    .map(|r| r.expect("sign-in").token.expose().to_owned())
    .collect();
    assert_eq!(live(s.clone()).await.0, MAX_PER_USER);
    alive(s.clone(), made).await;
    // No sign-in counted as failed.
    let state = s
        .store()
        .read(|tx| tx.sign_in_throttle("many@example.org", ""))
        .await
        .unwrap();
    assert_eq!(state.0, 0);
}

/// Of 50 parallel callers asking for one job lease as different holders, one gets it.
pub async fn a_job_lease_has_one_holder(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    let now = s.clock().now_ms();
    let results = parallel(CALLERS, |i| {
        let store = s.store().clone();
        async move {
            store
                .write(move |tx| {
                    tx.hold_job("mail_sender", &format!("node {i}"), now, now + 30_000)
                })
                .await
        }
    })
    .await;
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(true))).count(), 1);
    assert!(results.iter().all(Result::is_ok));
}

/// Of 50 parallel upgrades of one guest account to 50 addresses, one wins.
pub async fn a_guest_is_upgraded_once(open: impl Backend) {
    let (_dir, s, _) = setup(open).await;
    let guest = User {
        id: 1 << 61,
        email: None,
        name: "guest".into(),
        password_hash: None,
        email_verified: false,
        home: None,
        disabled: false,
        created_at: s.clock().now_ms(),
    };
    let g = guest.clone();
    s.store().write(move |tx| tx.insert_user(&g)).await.unwrap();
    let results = parallel(CALLERS, |i| {
        let store = s.store().clone();
        let mut u = guest.clone();
        u.email = Some(format!("kept{i}@example.org"));
        u.password_hash = Some("$argon2id$stand-in".into());
        async move { store.write(move |tx| tx.upgrade_guest(&u)).await }
    })
    .await;
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(true))).count(), 1);
    assert!(results.iter().all(Result::is_ok));
}

/// Of 50 accounts asking in parallel to move to one new address, one waits for it; and an
/// address in use is refused as a pending one.
pub async fn a_pending_address_has_one_account(open: impl Backend) {
    use hearth::domain::model::AccountChange;
    let (_dir, s, _) = setup(open).await;
    let now = s.clock().now_ms();
    for i in 0..CALLERS as u64 {
        let u = User {
            id: (1 << 60) + i,
            email: Some(format!("mover{i}@example.org")),
            name: "mover".into(),
            password_hash: None,
            email_verified: false,
            home: None,
            disabled: false,
            created_at: now,
        };
        s.store().write(move |tx| tx.insert_user(&u)).await.unwrap();
    }
    let results = parallel(CALLERS, |i| {
        let store = s.store().clone();
        let change = AccountChange {
            pending_email: Some("wanted@example.org".into()),
            delete_at: None,
        };
        async move {
            store
                .write(move |tx| tx.set_account_change((1 << 60) + i as u64, &change))
                .await
        }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict(_)))));
    let taken = AccountChange {
        pending_email: Some("mover7@example.org".into()),
        delete_at: None,
    };
    let r = s
        .store()
        .write(move |tx| tx.set_account_change(1 << 60, &taken))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
}

/// What a password sign-in's writes read, each in one statement where the backend can: the
/// gate's rows with the account of the address (and its compare-and-set), the account's factors under its locked row,
/// the new session with the live counts the caps go by, and the least active sessions
/// ended. Each answer is checked against what the separate reads would say.
pub async fn the_sign_in_reads_answer_as_their_parts(open: impl Backend) {
    use hearth::domain::model::{SecondFactor, StoredPasskey, ThrottleRow};
    let (_dir, s, _) = setup(open).await;
    let totp = sign_up(&s, "totp@example.org").await.user.id;
    let passkey = sign_up(&s, "passkey@example.org").await.user.id;
    let plain = sign_up(&s, "plain@example.org").await.user;
    let now = s.clock().now_ms();
    let factors = s
        .store()
        .write(move |tx| {
            let factor = |enabled| SecondFactor {
                sealed_secret: vec![1],
                enabled,
                last_step: 0,
                recovery: Vec::new(),
            };
            tx.set_second_factor(totp, Some(&factor(true)), now)?;
            // A setup in progress is no factor yet.
            tx.set_second_factor(plain.id, Some(&factor(false)), now)?;
            tx.insert_passkey(&StoredPasskey {
                id: 1 << 60,
                user_id: passkey,
                credential_id: vec![7; 16],
                name: "laptop".into(),
                data: "{}".into(),
                created_at: now,
                last_used_at: None,
            })?;
            let mut found = Vec::new();
            for id in [totp, passkey, plain.id, 1 << 61] {
                // No throttle rows yet: they are made, and come back as default rows.
                let held =
                    tx.user_factors_and_gate_for_update(id, "first@example.org", "192.0.2.1")?;
                assert_eq!(held.rows, Default::default());
                // The locked row comes back whole: as the user's own read has it.
                assert_eq!(held.user, tx.user(id)?);
                found.push(held.user.map(|_| (held.totp, held.passkey)));
            }
            Ok::<_, StoreError>(found)
        })
        .await
        .unwrap();
    assert_eq!(
        factors,
        [
            Some((true, false)),
            Some((false, true)),
            Some((false, false)),
            None
        ]
    );

    let client = "192.0.2.9";
    let delayed = ThrottleRow {
        failures: 3,
        ..Default::default()
    };
    let locked = ThrottleRow {
        failures: 100,
        locked_until: Some(now + 1),
        ..Default::default()
    };
    let (known, unknown, alone, held) = s
        .store()
        .write(move |tx| {
            tx.put_sign_in_rows("plain@example.org", &[(client, &delayed)], now)?;
            tx.put_sign_in_rows("locked@example.org", &[("*", &locked)], now)?;
            tx.put_sign_in_rows("locked@example.org", &[(client, &delayed)], now)?;
            let known = tx.sign_in_rows("plain@example.org", client, true)?;
            let unknown = tx.sign_in_rows("nobody@example.org", client, true)?;
            let alone = tx.sign_in_rows("locked@example.org", client, false)?;
            // The final write's rows, with the user's factors and without a user.
            let held = [plain.id, 1 << 61].map(|id| {
                tx.user_factors_and_gate_for_update(id, "locked@example.org", client)
                    .map(|h| (h.user.map(|u| (u.id, (h.totp, h.passkey))), h.rows))
            });
            let [plain_held, none_held] = held;
            let held = [plain_held?, none_held?];
            Ok::<_, StoreError>((known, unknown, alone, held))
        })
        .await
        .unwrap();
    assert_eq!(
        held,
        [
            (Some((plain.id, (false, false))), (locked, delayed)),
            (None, (locked, delayed))
        ]
    );
    assert_eq!((known.0, known.1), (ThrottleRow::default(), Some(delayed)));
    assert_eq!(known.2.map(|u| u.id), Some(plain.id));
    assert_eq!(unknown, (ThrottleRow::default(), None, None));
    assert_eq!(alone, (locked, Some(delayed), None));

    // The gate's compare-and-set writes only over the row it read.
    let taken = ThrottleRow {
        in_flight: 1,
        in_flight_since: Some(now),
        ..delayed
    };
    let swaps = s
        .store()
        .write_each(move |tx| {
            let e = "plain@example.org";
            Ok::<_, StoreError>([
                tx.swap_sign_in_row(e, client, None, &taken, now)?,
                tx.swap_sign_in_row(e, client, Some(&ThrottleRow::default()), &taken, now)?,
                tx.swap_sign_in_row(e, client, Some(&delayed), &taken, now)?,
                tx.swap_sign_in_row(e, client, Some(&delayed), &delayed, now)?,
                tx.swap_sign_in_row("new@example.org", client, None, &taken, now)?,
                tx.swap_sign_in_row("new@example.org", client, None, &delayed, now)?,
                tx.sign_in_rows(e, client, false)?.1 == Some(taken),
                tx.sign_in_rows("new@example.org", client, false)?.1 == Some(taken),
            ])
        })
        .await
        .unwrap();
    assert_eq!(swaps, [false, false, true, false, true, false, true, true]);

    // The account holds its sign-up's session; a second comes a second later, and a third
    // a second after that.
    let (_, mut newer) = s.sessions.new_session(plain.id, Default::default(), "pwd");
    newer.created_at += 1_000;
    newer.last_active += 1_000;
    let newer_id = newer.id;
    let (_, mut newest) = s.sessions.new_session(plain.id, Default::default(), "pwd");
    newest.created_at += 2_000;
    newest.last_active += 2_000;
    let newest_id = newest.id;
    // The answers of the capped inserts are taken after the commit, as a sign-in takes
    // them: PostgreSQL sends those inserts with the statement after them.
    let (roomy, ended, left, trimmed) = s
        .store()
        .write(move |tx| {
            let roomy = tx.insert_session_capped(&newer, 2)?;
            let ended = tx.end_least_active_sessions(plain.id, None, newer.created_at, 1)?;
            let left = tx.live_sessions(plain.id, None, newer.created_at)?;
            let trimmed = tx.insert_session_capped(&newest, 1)?;
            Ok::<_, StoreError>((roomy, ended, left, trimmed))
        })
        .await
        .unwrap();
    let ids = |ended: Option<hearth::domain::state::store::Ended>| ended.map(|e| e.ids);
    assert_eq!(
        ids(roomy.take()),
        Some(vec![]),
        "two live sessions fit a cap of two"
    );
    assert_eq!(
        ended.len(),
        1,
        "the sign-up's session, active least, was ended"
    );
    assert_eq!(left, (1, 0));
    assert_eq!(
        ids(trimmed.take()),
        Some(vec![newer_id]),
        "a cap of one ends every other live session, never the new one"
    );
    let kept = s
        .store()
        .read(move |tx| tx.sessions_of(plain.id))
        .await
        .unwrap();
    let kept: Vec<u64> = kept.iter().map(|k| k.id).collect();
    assert_eq!(kept, [newest_id]);
}

/// A client's budget in the shared map (as a cluster keeps it) under 50 parallel charges:
/// exactly its size is allowed and none fails. Each charge reads the row unlocked and
/// stores it only where it still holds what was read (`swap_short_lived`), then, after
/// three lost rounds, queues on the row's lock; a charge that read, then wrote blindly
/// would let more through, and two swaps that each held one row while waiting for the
/// other would deadlock.
pub async fn a_shared_budget_allows_exactly_its_size(open: impl Backend) {
    use hearth::domain::rate_limit::RateLimiter;
    use hearth::domain::state::shared_map::StoreMap;
    let (_dir, s, _) = setup(open).await;
    let keys: hearth::domain::state::shared_map::SealKeys = Arc::default();
    let _ = keys.set(s.key_ring().clone());
    // Three maps, as three nodes have: each remembers the rows it stored (and compares
    // against them without reading), so each must lose its swap when another wrote since.
    let limiters: Vec<RateLimiter> = (0..3)
        .map(|_| {
            let map = StoreMap::new(s.store().clone(), s.clock().clone(), "budget", keys.clone());
            RateLimiter::new(Arc::new(map), s.clock().clone())
        })
        .collect();
    let answers = parallel(CALLERS, |i| {
        let limiter = limiters[i % 3].clone();
        // Three budgets per call, as a costly method charges two: two shared by all (rows
        // every caller swaps, in either order), one its own.
        let mine = format!("mine 192.0.2.{i}");
        let shared = [("one 192.0.2.1", 20), ("two 192.0.2.1", 50)];
        let mut budgets: Vec<(String, u32)> =
            shared.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        budgets.push((mine, 1));
        async move { limiter.take_each(&budgets).await }
    })
    .await;
    let refused: Vec<Option<usize>> = answers
        .into_iter()
        .map(|a| a.expect("every charge is answered"))
        .collect();
    let allowed = refused.iter().filter(|r| r.is_none()).count();
    assert_eq!(allowed, 20, "the shared budget of 20 let {allowed} through");
    assert!(
        refused.iter().all(|r| r.is_none() || *r == Some(0)),
        "only the shared budget runs out"
    );
}

fn sqlite(dir: &Path) -> Store {
    let sqlite = hearth::store::sqlite::Sqlite::open(
        &dir.join("hearth.sqlite3"),
        4,
        hearth::config::Synchronous::Full,
    )
    .unwrap();
    Store::new(Arc::new(sqlite))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_parallel_wrong_sign_ins_evaluate_at_most_5() {
    parallel_wrong_sign_ins_evaluate_at_most_5(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_parallel_correct_sign_ins_all_succeed() {
    parallel_correct_sign_ins_all_succeed(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_cancelled_sign_in_counts_as_a_failure() {
    a_cancelled_sign_in_counts_as_a_failure(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_the_delays_follow_the_policy() {
    the_delays_follow_the_policy(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_parallel_code_guesses_compare_at_most_5() {
    parallel_code_guesses_compare_at_most_5(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_parallel_session_refreshes_have_one_winner() {
    parallel_session_refreshes_have_one_winner(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_parallel_peer_token_refreshes_have_one_winner() {
    parallel_peer_token_refreshes_have_one_winner(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_nonce_is_used_once() {
    a_nonce_is_used_once(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_ids_stay_unique_across_processes() {
    ids_stay_unique_across_processes(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_job_lease_has_one_holder() {
    a_job_lease_has_one_holder(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_pending_address_has_one_account() {
    a_pending_address_has_one_account(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_guest_is_upgraded_once() {
    a_guest_is_upgraded_once(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_one_use_invite_is_spent_once() {
    a_one_use_invite_is_spent_once(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_the_gate_admits_its_slots_only() {
    the_gate_admits_its_slots_only(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_write_nobody_awaits_commits_nothing() {
    a_write_nobody_awaits_commits_nothing(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_shared_budget_allows_exactly_its_size() {
    a_shared_budget_allows_exactly_its_size(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_the_sign_in_reads_answer_as_their_parts() {
    the_sign_in_reads_answer_as_their_parts(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_the_session_caps_hold_under_parallel_callers() {
    the_session_caps_hold_under_parallel_callers(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_the_token_cap_holds_under_parallel_creates() {
    the_token_cap_holds_under_parallel_creates(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_revocation_across_nodes_holds_under_parallel_callers() {
    revocation_across_nodes_holds_under_parallel_callers(sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_the_passkey_rules_hold_under_parallel_adds() {
    the_passkey_rules_hold_under_parallel_adds(sqlite).await;
}

/// The PostgreSQL backend as three nodes see it: each store spreads its operations over
/// three independent connection pools to one database (a database per data dir, so two
/// opens of one dir share it).
fn postgres_spread(port: u16, widen: Option<std::time::Duration>) -> impl Backend {
    move |dir: &Path| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        dir.hash(&mut h);
        let url = crate::pg::url_on(port, &format!("h{:x}", h.finish()));
        let nodes: Vec<Arc<dyn hearth::domain::state::store::Backend>> = (0..3)
            .map(|_| {
                let pg = hearth::store::postgres::Postgres::open(
                    &hearth::store::postgres::PgTarget::new(&url, None).unwrap(),
                    3,
                )
                .unwrap();
                Arc::new(match widen {
                    Some(pause) => pg.widen_races(pause),
                    None => pg,
                }) as Arc<dyn hearth::domain::state::store::Backend>
            })
            .collect();
        Store::new(Arc::new(Spread {
            nodes,
            next: Default::default(),
        }))
    }
}

/// Round-robin over several backends of one database.
#[derive(Debug)]
struct Spread {
    nodes: Vec<Arc<dyn hearth::domain::state::store::Backend>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Spread {
    fn pick(&self) -> &Arc<dyn hearth::domain::state::store::Backend> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.nodes[n % self.nodes.len()]
    }
}

#[async_trait::async_trait]
impl hearth::domain::state::store::Backend for Spread {
    async fn write(&self, job: hearth::domain::state::store::WriteJob) -> Result<(), StoreError> {
        self.pick().write(job).await
    }
    async fn write_locked(
        &self,
        job: hearth::domain::state::store::WriteJob,
    ) -> Result<(), StoreError> {
        self.pick().write_locked(job).await
    }
    async fn write_rows(
        &self,
        job: hearth::domain::state::store::WriteJob,
    ) -> Result<(), StoreError> {
        self.pick().write_rows(job).await
    }
    async fn read(&self, job: hearth::domain::state::store::ReadJob) -> Result<(), StoreError> {
        self.pick().read(job).await
    }
    fn is_ready(&self) -> bool {
        self.nodes.iter().all(|n| n.is_ready())
    }
    async fn scrub(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn close(&self) {
        self.nodes.iter().for_each(|n| n.close());
    }
}

/// Each rule on PostgreSQL twice: as three nodes see it, and with every race window widened
/// (a pause after each read inside a write), so an operation that reads and then writes
/// without holding what it read fails for certain, not by luck.
macro_rules! on_postgres {
    ($($name:ident => $rule:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[ignore = "needs PostgreSQL (bash scripts/test.sh runs it)"]
            async fn $name() {
                let pg = crate::pg::PgServer::start();
                $rule(postgres_spread(pg.port, None)).await;
            }
        )*
        mod widened {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs PostgreSQL (bash scripts/test.sh runs it)"]
                async fn $name() {
                    let pg = crate::pg::PgServer::start();
                    $rule(postgres_spread(pg.port, Some(WIDENED))).await;
                }
            )*
        }
    };
}

/// The pause after each read inside a write in the widened runs.
const WIDENED: std::time::Duration = std::time::Duration::from_millis(3);

on_postgres! {
    postgres_parallel_wrong_sign_ins_evaluate_at_most_5 => parallel_wrong_sign_ins_evaluate_at_most_5,
    postgres_parallel_correct_sign_ins_all_succeed => parallel_correct_sign_ins_all_succeed,
    postgres_a_cancelled_sign_in_counts_as_a_failure => a_cancelled_sign_in_counts_as_a_failure,
    postgres_the_delays_follow_the_policy => the_delays_follow_the_policy,
    postgres_parallel_code_guesses_compare_at_most_5 => parallel_code_guesses_compare_at_most_5,
    postgres_parallel_session_refreshes_have_one_winner => parallel_session_refreshes_have_one_winner,
    postgres_parallel_peer_token_refreshes_have_one_winner => parallel_peer_token_refreshes_have_one_winner,
    postgres_a_nonce_is_used_once => a_nonce_is_used_once,
    postgres_ids_stay_unique_across_processes => ids_stay_unique_across_processes,
    postgres_a_one_use_invite_is_spent_once => a_one_use_invite_is_spent_once,
    postgres_the_token_cap_holds_under_parallel_creates => the_token_cap_holds_under_parallel_creates,
    postgres_a_job_lease_has_one_holder => a_job_lease_has_one_holder,
    postgres_a_guest_is_upgraded_once => a_guest_is_upgraded_once,
    postgres_a_pending_address_has_one_account => a_pending_address_has_one_account,
    postgres_the_session_caps_hold_under_parallel_callers => the_session_caps_hold_under_parallel_callers,
    postgres_the_sign_in_reads_answer_as_their_parts => the_sign_in_reads_answer_as_their_parts,
    postgres_a_shared_budget_allows_exactly_its_size => a_shared_budget_allows_exactly_its_size,
    postgres_the_gate_admits_its_slots_only => the_gate_admits_its_slots_only,
    postgres_a_write_nobody_awaits_commits_nothing => a_write_nobody_awaits_commits_nothing,
    postgres_the_passkey_rules_hold_under_parallel_adds => the_passkey_rules_hold_under_parallel_adds,
    postgres_revocation_across_nodes_holds_under_parallel_callers => revocation_across_nodes_holds_under_parallel_callers,
}
