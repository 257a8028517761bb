//! Issue: accounts, passwords and sessions (DESIGN.md §3) over tangle.client.auth and
//! accounts.v1.
use hearth::domain::model::User;
use hearth::pb::accounts::v1 as acc;
use hearth::pb::tangle::client::auth as tangle;
use tonic::{Code, Request};

use crate::support::*;

async fn user_row(n: &TestNode, email: &str) -> User {
    let email = email.to_owned();
    n.domain()
        .store()
        .read(move |tx| tx.user_by_email(&email))
        .await
        .unwrap()
        .unwrap()
}

/// Consecutive failed sign-ins of an address from the test client (127.0.0.1).
async fn failures(n: &TestNode, email: &'static str) -> u32 {
    n.domain()
        .store()
        .read(move |tx| tx.sign_in_throttle(email, "127.0.0.1"))
        .await
        .unwrap()
        .0
}

/// How many users, sessions or mails the store holds.
async fn count(n: &TestNode, what: &'static str) -> usize {
    n.domain()
        .store()
        .read(move |tx| {
            Ok::<_, hearth::domain::state::StoreError>(match what {
                "users" => tx.users()?.len(),
                "sessions" => {
                    let mut total = 0;
                    for u in tx.users()? {
                        total += tx.sessions_of(u.id)?.len();
                    }
                    total
                }
                _ => tx.mail()?.len(),
            })
        })
        .await
        .unwrap()
}

fn tangle_sign_up(email: &str, password: &str) -> tangle::SignUp {
    tangle::SignUp {
        email: Some(email.into()),
        password: Some(password.into()),
        name: "N".into(),
        invite_code: None,
    }
}

#[tokio::test]
async fn stored_hash_is_argon2id_with_configured_cost_and_is_upgraded_at_sign_in() {
    let n = TestNode::start().await;
    n.sign_up("hash@example.org").await;
    let hash = user_row(&n, "hash@example.org")
        .await
        .password_hash
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{hash}");

    let n = n
        .restart_with(|c| {
            c.passwords.argon2_memory_kib = 512;
            c.passwords.argon2_iterations = 2;
        })
        .await;
    n.sign_in("hash@example.org", PASSWORD).await.unwrap();
    let hash = user_row(&n, "hash@example.org")
        .await
        .password_hash
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=512,t=2,p=1$"),
        "not re-hashed: {hash}"
    );
    n.sign_in("hash@example.org", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn password_length_and_commonness_rules() {
    let n = TestNode::start().await;
    let mut t = n.tangle();
    let seven = "Zq7#xLp";
    let eight = "Zq7#xLp!";
    let max: String = "Zq7#xLp!".repeat(16);
    assert_eq!(max.chars().count(), 128);
    assert_code(
        t.sign_up(tangle_sign_up("a@example.org", seven)).await,
        Code::InvalidArgument,
        "password: must be at least 8",
    );
    t.sign_up(tangle_sign_up("b@example.org", eight))
        .await
        .unwrap();
    t.sign_up(tangle_sign_up("c@example.org", &max))
        .await
        .unwrap();

    let hashes = n.domain().accounts.hasher().hashes();
    let too_long = format!("{max}x");
    assert_code(
        t.sign_up(tangle_sign_up("d@example.org", &too_long)).await,
        Code::InvalidArgument,
        "at most 128",
    );
    assert_eq!(
        n.domain().accounts.hasher().hashes(),
        hashes,
        "129 code points must be refused before hashing"
    );

    assert_code(
        t.sign_up(tangle_sign_up("e@example.org", "password123"))
            .await,
        Code::InvalidArgument,
        "too common",
    );

    // No truncation: the 128-character password plus one more character is a different one.
    assert_code(
        n.sign_in("c@example.org", &too_long).await,
        Code::Unauthenticated,
        "wrong",
    );
    assert_code(
        n.sign_in("b@example.org", &format!("{eight}x")).await,
        Code::Unauthenticated,
        "wrong",
    );
    n.sign_in("c@example.org", &max).await.unwrap();
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same_and_cost_the_same() {
    let n = TestNode::start().await;
    n.sign_up("known@example.org").await;
    let before = n.domain().accounts.hasher().verifications();
    let wrong = n
        .sign_in("known@example.org", "not the password at all")
        .await
        .unwrap_err();
    let after_wrong = n.domain().accounts.hasher().verifications();
    let unknown = n
        .sign_in("nobody@example.org", "not the password at all")
        .await
        .unwrap_err();
    let after_unknown = n.domain().accounts.hasher().verifications();
    assert_eq!(wrong.code(), unknown.code());
    assert_eq!(wrong.message(), unknown.message());
    assert_eq!(after_wrong - before, 1, "wrong password: one verification");
    assert_eq!(
        after_unknown - after_wrong,
        1,
        "unknown e-mail: one (dummy) verification"
    );
}

#[tokio::test]
async fn failed_sign_ins_delay_progressively_lock_at_100_and_clear_on_success() {
    let n = TestNode::start().await;
    n.sign_up("slow@example.org").await;
    for _ in 0..4 {
        assert_code(
            n.sign_in("slow@example.org", "wrong password!").await,
            Code::Unauthenticated,
            "wrong",
        );
    }
    n.sign_in("slow@example.org", PASSWORD).await.unwrap();
    assert_eq!(
        failures(&n, "slow@example.org").await,
        0,
        "a success clears the counter"
    );

    for _ in 0..5 {
        let _ = n.sign_in("slow@example.org", "wrong password!").await;
    }
    // The fifth failure starts a delay: even the right password must wait.
    assert_code(
        n.sign_in("slow@example.org", PASSWORD).await,
        Code::ResourceExhausted,
        "try again in 1 s",
    );
    n.clock.advance_ms(1_000);
    let _ = n.sign_in("slow@example.org", "wrong password!").await;
    assert_code(
        n.sign_in("slow@example.org", PASSWORD).await,
        Code::ResourceExhausted,
        "try again in 2 s",
    );

    // Keep failing, waiting out each delay, up to 100 consecutive failures.
    let mut failures = failures(&n, "slow@example.org").await;
    while failures < 100 {
        n.clock
            .advance_ms(hearth::domain::throttle::POLICY.max_delay_ms);
        assert_code(
            n.sign_in("slow@example.org", "wrong password!").await,
            Code::Unauthenticated,
            "wrong",
        );
        failures += 1;
    }
    n.clock
        .advance_ms(hearth::domain::throttle::POLICY.max_delay_ms);
    assert_code(
        n.sign_in("slow@example.org", PASSWORD).await,
        Code::ResourceExhausted,
        "locked after 100",
    );
    n.clock.advance_ms(hearth::domain::throttle::POLICY.lock_ms);
    n.sign_in("slow@example.org", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn per_ip_limit_trusts_forwarded_for_only_from_configured_proxies() {
    let sign_in = |n: &TestNode, xff: &'static str| {
        let mut req = Request::new(tangle::SignIn {
            email: "ip@example.org".into(),
            password: "whatever pw".into(),
            totp: None,
        });
        req.metadata_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
        let mut t = n.tangle();
        async move { t.sign_in(req).await }
    };
    let untrusted = TestNode::start_with(|c| c.accounts.sign_ins_per_ip_per_minute = 3).await;
    for xff in ["1.1.1.1", "2.2.2.2", "3.3.3.3"] {
        assert_code(
            sign_in(&untrusted, xff).await,
            Code::Unauthenticated,
            "wrong",
        );
    }
    // Different X-Forwarded-For values do not help: the header is not believed.
    assert_code(
        sign_in(&untrusted, "4.4.4.4").await,
        Code::ResourceExhausted,
        "127.0.0.1",
    );

    let trusted = TestNode::start_with(|c| {
        c.accounts.sign_ins_per_ip_per_minute = 3;
        c.listen.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    for _ in 0..3 {
        assert_code(
            sign_in(&trusted, "1.1.1.1").await,
            Code::Unauthenticated,
            "wrong",
        );
    }
    assert_code(
        sign_in(&trusted, "1.1.1.1").await,
        Code::ResourceExhausted,
        "1.1.1.1",
    );
    assert_code(
        sign_in(&trusted, "2.2.2.2").await,
        Code::Unauthenticated,
        "wrong",
    );
}

#[tokio::test]
async fn accounts_v1_returns_tokens_in_metadata_and_refresh_rotates() {
    let n = TestNode::start().await;
    let res = n
        .public()
        .sign_up(acc::SignUpRequest {
            email: "meta@example.org".into(),
            password: PASSWORD.into(),
            invite_code: String::new(),
        })
        .await
        .unwrap();
    let token = bearer_in(&res);
    n.pong(Some(&token)).await.unwrap();

    let res = n
        .public()
        .sign_in(acc::SignInRequest {
            email: "meta@example.org".into(),
            password: PASSWORD.into(),
            totp: None,
        })
        .await
        .unwrap();
    let signed_in = bearer_in(&res);
    assert_ne!(signed_in, token);

    let verified = n
        .accounts()
        .is_email_verified(authed(acc::IsEmailVerifiedRequest { data: None }, &token))
        .await
        .unwrap()
        .into_inner()
        .verified;
    assert!(!verified);
    let someone_else = acc::IsEmailVerifiedRequest {
        data: Some(acc::AccountData {
            name: String::new(),
            email: "x@example.org".into(),
        }),
    };
    assert_code(
        n.accounts()
            .is_email_verified(authed(someone_else, &token))
            .await,
        Code::PermissionDenied,
        "your own",
    );

    let res = n
        .accounts()
        .refresh_session(authed((), &token))
        .await
        .unwrap();
    let fresh = bearer_in(&res);
    assert_code(n.pong(Some(&token)).await, Code::Unauthenticated, "revoked");
    n.pong(Some(&fresh)).await.unwrap();
    n.pong(Some(&signed_in)).await.unwrap();
}

#[tokio::test]
async fn registration_modes_and_guests() {
    use hearth::config::Registration;
    for (mode, code, needle) in [
        (Registration::Closed, Code::PermissionDenied, "closed"),
        (Registration::Invite, Code::FailedPrecondition, "invite"),
    ] {
        let n = TestNode::start_with(|c| c.accounts.registration = mode).await;
        let r = n
            .tangle()
            .sign_up(tangle_sign_up("x@example.org", PASSWORD))
            .await;
        assert_code(r, code, needle);
    }

    let open = TestNode::start().await;
    let guest = tangle::SignUp {
        email: None,
        password: None,
        name: "Guest".into(),
        invite_code: None,
    };
    assert_code(
        open.tangle().sign_up(guest.clone()).await,
        Code::PermissionDenied,
        "guest",
    );
    let guests = TestNode::start_with(|c| c.accounts.allow_guests = true).await;
    let a = guests.tangle().sign_up(guest).await.unwrap().into_inner();
    assert_eq!(a.user.unwrap().name, "Guest");
    guests.pong(Some(&a.token)).await.unwrap();
    let half = tangle::SignUp {
        email: Some("h@example.org".into()),
        password: None,
        name: "H".into(),
        invite_code: None,
    };
    assert_code(
        guests.tangle().sign_up(half).await,
        Code::InvalidArgument,
        "password",
    );
}

#[tokio::test]
async fn a_failed_request_writes_nothing() {
    let n = TestNode::start().await;
    n.sign_up("taken@example.org").await;
    let (users_before, sessions_before, mail_before) = (
        count(&n, "users").await,
        count(&n, "sessions").await,
        count(&n, "outbox").await,
    );
    let r = n
        .tangle()
        .sign_up(tangle_sign_up("TAKEN@example.org", PASSWORD))
        .await;
    assert_code(r, Code::AlreadyExists, "e-mail address is already taken");
    let writes = n.domain().store().writes();
    assert_code(
        n.tangle()
            .sign_up(tangle_sign_up("bad address", PASSWORD))
            .await,
        Code::InvalidArgument,
        "email",
    );
    assert_eq!(n.domain().store().writes(), writes);
    assert_eq!(count(&n, "users").await, users_before);
    assert_eq!(
        count(&n, "sessions").await,
        sessions_before,
        "no session for a refused sign-up"
    );
    assert_eq!(
        count(&n, "outbox").await,
        mail_before,
        "no mail for a refused sign-up"
    );
}

#[test]
fn open_registration_on_a_public_address_is_announced_loudly() {
    // The warning is logged before the node prints `listening on`, so it is in the log
    // by the time `Served::start` returns.
    let node = crate::served::Served::start(&[
        ("HEARTH_LISTEN_ADDR", "0.0.0.0:0"),
        ("HEARTH_PASSWORDS_ARGON2_MEMORY_KIB", "256"),
    ]);
    let log = node.stop();
    assert!(
        log.contains("REGISTRATION IS OPEN"),
        "no warning about open registration on 0.0.0.0: {log}"
    );
}
