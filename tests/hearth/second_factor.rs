//! The second factor (DESIGN.md §3): TOTP set up in two steps with recovery codes, asked
//! for on every password sign-in (gRPC tangle, accounts.v1, the Osmium socket), each code
//! used once even by parallel sign-ins, wrong codes counted by the sign-in throttle, and
//! the operator's way out.
use tonic::Code;

use crate::support::*;
use hearth::pb::accounts::v1 as acc;
use hearth::pb::tangle::client::auth as tangle;

/// The code an authenticator app shows for `url` at `ms` (plus `steps` × 30 s).
fn code_at(url: &str, ms: u64, steps: i64) -> String {
    let t = totp_rs::TOTP::from_url_unchecked(url).unwrap();
    t.generate((ms / 1000).wrapping_add_signed(steps * 30))
}

async fn setup(
    n: &TestNode,
    token: &str,
    enabled: bool,
    code: Option<&str>,
) -> Result<tangle::Totp, tonic::Status> {
    n.tangle()
        .setup_totp(authed(
            tangle::SetupTotp {
                enabled,
                code: code.map(str::to_owned),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn sign_in(n: &TestNode, email: &str, totp: Option<&str>) -> Result<String, tonic::Status> {
    n.tangle()
        .sign_in(tangle::SignIn {
            email: email.into(),
            password: PASSWORD.into(),
            totp: totp.map(str::to_owned),
        })
        .await
        .map(|r| r.into_inner().token)
}

/// Signs `email` up and turns its second factor on; returns (session, otpauth URL,
/// recovery codes).
async fn with_factor(n: &TestNode, email: &str) -> (String, String, Vec<String>) {
    let (token, _, _) = n.sign_up(email).await;
    let started = setup(n, &token, true, None).await.unwrap();
    assert!(!started.enabled && started.backup_codes.is_empty());
    let url = started.url.expect("a setup answers its otpauth:// URL");
    assert!(url.starts_with("otpauth://totp/"), "{url}");
    let first = code_at(&url, n.clock.now_ms(), 0);
    let on = setup(n, &token, true, Some(&first)).await.unwrap();
    assert!(on.enabled && on.url.is_none());
    let codes: Vec<String> = on.backup_codes.iter().map(|c| c.code.clone()).collect();
    assert_eq!(codes.len(), 10);
    (token, url, codes)
}

use hearth::clock::Clock;

/// Sign-ins of `email` with the right password, one per code, all at once.
async fn at_once(
    n: &TestNode,
    email: &str,
    codes: impl Iterator<Item = String>,
) -> Vec<Result<tonic::Response<tangle::Authorization>, tonic::Status>> {
    let calls = codes.map(|code| {
        let mut t = n.tangle();
        let email = email.to_owned();
        async move {
            t.sign_in(tangle::SignIn {
                email,
                password: PASSWORD.into(),
                totp: Some(code),
            })
            .await
        }
    });
    futures_util::future::join_all(calls).await
}

/// The caller's session id, and each listed session's `amr` by id (0: the oldest).
async fn amr_by_session(n: &TestNode, token: &str) -> (u64, impl Fn(u64) -> Vec<String>) {
    let listed = n
        .tangle()
        .get_sessions(authed(tangle::GetSessions {}, token))
        .await
        .unwrap()
        .into_inner();
    let oldest = listed
        .sessions
        .iter()
        .map(|s| s.id)
        .min()
        .unwrap_or_default();
    let sessions = listed.sessions;
    let amr_of = move |id: u64| {
        let id = if id == 0 { oldest } else { id };
        sessions
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.amr.clone())
            .unwrap_or_default()
    };
    (listed.current, amr_of)
}

#[tokio::test]
async fn a_second_factor_is_set_up_in_two_steps_and_asked_for_at_every_sign_in() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("mfa@example.org").await;
    // Confirming needs a setup, and the setup's own code.
    let r = setup(&n, &token, true, Some("123456")).await;
    assert_refused(r, Code::FailedPrecondition, "CODE_INVALID", "setup");
    let url = setup(&n, &token, true, None).await.unwrap().url.unwrap();
    let wrong = setup(&n, &token, true, Some("000000")).await;
    assert_refused(wrong, Code::InvalidArgument, "CODE_INVALID", "code");
    // Until confirmed, nothing changes for sign-ins.
    assert!(sign_in(&n, "mfa@example.org", None).await.is_ok());
    let first = code_at(&url, n.clock.now_ms(), 0);
    let on = setup(&n, &token, true, Some(&first)).await.unwrap();
    assert!(on.enabled);
    let a = n
        .tangle()
        .get_account(authed(tangle::GetAccount {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(a.totp_enabled);

    // Without a code: the answer says what to send; a wrong code is a wrong sign-in.
    let r = sign_in(&n, "mfa@example.org", None).await;
    assert_refused(
        r,
        Code::Unauthenticated,
        "SECOND_FACTOR_REQUIRED",
        "second factor",
    );
    let r = sign_in(&n, "mfa@example.org", Some("000000")).await;
    let wrong_code = assert_code(r, Code::Unauthenticated, "");
    assert_eq!(reason(&wrong_code), "BAD_CREDENTIALS");
    // The same answer as a wrong password: nothing tells which was wrong.
    let wrong_pw = n
        .sign_in("mfa@example.org", "not the password at all")
        .await
        .unwrap_err();
    assert_eq!(wrong_code.message(), wrong_pw.message());

    // The confirming code was used: the next one (30 s on) signs in, once.
    n.clock.advance_ms(30_000);
    let now = code_at(&url, n.clock.now_ms(), 0);
    let with_code = sign_in(&n, "mfa@example.org", Some(&now)).await.unwrap();
    // Each session says how it was made (GetSessions' `amr`).
    let (current, amr_of) = amr_by_session(&n, &with_code).await;
    assert_eq!(amr_of(current), ["pwd", "otp"]);
    assert_eq!(amr_of(0), ["pwd"], "the sign-up's session (the oldest)");
    let replay = sign_in(&n, "mfa@example.org", Some(&now)).await;
    assert_eq!(reason(&replay.unwrap_err()), "BAD_CREDENTIALS");
    // The clock may be one step off either way, never two.
    n.clock.advance_ms(60_000);
    let late = code_at(&url, n.clock.now_ms(), -2);
    assert!(sign_in(&n, "mfa@example.org", Some(&late)).await.is_err());
    let early = code_at(&url, n.clock.now_ms(), 1);
    assert!(sign_in(&n, "mfa@example.org", Some(&early)).await.is_ok());
}

#[tokio::test]
async fn recovery_codes_sign_in_once_each_and_turn_the_factor_off() {
    let n = TestNode::start().await;
    let (token, url, codes) = with_factor(&n, "rec@example.org").await;
    // Typed in upper case or without the dash, a recovery code still counts, once.
    let typed = codes[0].to_uppercase().replace('-', "");
    let s = sign_in(&n, "rec@example.org", Some(&typed)).await.unwrap();
    let (current, amr_of) = amr_by_session(&n, &s).await;
    assert_eq!(amr_of(current), ["pwd", "recovery"]);
    let again = sign_in(&n, "rec@example.org", Some(&codes[0])).await;
    assert_eq!(reason(&again.unwrap_err()), "BAD_CREDENTIALS");
    // Turning it off needs a code; a recovery code does.
    let r = setup(&n, &token, false, None).await;
    assert_refused(r, Code::Unauthenticated, "SECOND_FACTOR_REQUIRED", "turn");
    // New recovery codes for a current code; the old ones stop working.
    n.clock.advance_ms(30_000);
    let now = code_at(&url, n.clock.now_ms(), 0);
    let fresh = setup(&n, &token, true, Some(&now)).await.unwrap();
    assert_eq!(fresh.backup_codes.len(), 10);
    assert!(sign_in(&n, "rec@example.org", Some(&codes[1]))
        .await
        .is_err());
    setup(&n, &token, false, Some(&fresh.backup_codes[0].code))
        .await
        .unwrap();
    assert!(sign_in(&n, "rec@example.org", None).await.is_ok());
}

#[tokio::test]
async fn accounts_v1_sign_in_takes_the_code_too() {
    let n = TestNode::start().await;
    let (_, url, _) = with_factor(&n, "v1@example.org").await;
    let req = |totp: Option<String>| acc::SignInRequest {
        email: "v1@example.org".into(),
        password: PASSWORD.into(),
        totp,
    };
    let r = n.public().sign_in(req(None)).await;
    assert_refused(
        r,
        Code::Unauthenticated,
        "SECOND_FACTOR_REQUIRED",
        "second factor",
    );
    n.clock.advance_ms(30_000);
    let code = code_at(&url, n.clock.now_ms(), 0);
    let ok = n.public().sign_in(req(Some(code))).await.unwrap();
    assert!(ok.metadata().get("authorization").is_some());
}

#[tokio::test]
async fn of_50_parallel_sign_ins_with_one_code_one_gets_in_and_wrong_codes_are_throttled() {
    let n = TestNode::start().await;
    let (_, url, _) = with_factor(&n, "race@example.org").await;
    n.clock.advance_ms(30_000);
    let code = code_at(&url, n.clock.now_ms(), 0);
    let results = at_once(&n, "race@example.org", (0..50).map(|_| code.clone())).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "a code is used once, however many send it at once");

    // 50 wrong codes with the right password: each counts as a failed sign-in, so the
    // account's delay starts (at most five are evaluated before it does).
    let wrong = (0..50).map(|i| format!("{:06}", 100_000 + i));
    let results = at_once(&n, "race@example.org", wrong).await;
    assert!(results.iter().all(|r| r.is_err()));
    let throttled = results
        .iter()
        .filter(|r| matches!(r, Err(s) if reason(s) == "ACCOUNT_THROTTLED"))
        .count();
    assert!(throttled > 0, "wrong codes earn the throttle's delay");
    let after = sign_in(&n, "race@example.org", Some(&code)).await;
    assert_eq!(reason(&after.unwrap_err()), "ACCOUNT_THROTTLED");
}

#[tokio::test]
async fn the_operator_removes_a_lost_second_factor() {
    let n = TestNode::start().await;
    let (_, _, _) = with_factor(&n, "lost@example.org").await;
    let f = n.domain().second_factors.clone();
    let user = n.domain().operator.user("lost@example.org").await.unwrap();
    let status = f.status(user.id).await.unwrap();
    assert!(status.enabled && status.recovery_left == 10);
    assert!(f.reset(user.id).await.unwrap());
    assert!(sign_in(&n, "lost@example.org", None).await.is_ok());
    assert!(!f.reset(user.id).await.unwrap());
}

#[tokio::test]
#[ignore = "needs PostgreSQL (bash scripts/test.sh runs it)"]
async fn on_three_postgres_nodes_a_code_used_on_one_is_refused_on_the_others() {
    let pg = crate::pg::PgServer::start();
    let nodes = crate::cluster::cluster(&pg, 3).await;
    // Set up on the first node: the others open its sealed secret with the shared keys.
    let (_, url, codes) = with_factor(&nodes[0], "shared@example.org").await;
    for n in &nodes {
        n.clock.advance_ms(30_000);
    }
    let code = code_at(&url, nodes[1].clock.now_ms(), 0);
    assert!(sign_in(&nodes[1], "shared@example.org", Some(&code))
        .await
        .is_ok());
    for n in [&nodes[0], &nodes[2]] {
        let again = sign_in(n, "shared@example.org", Some(&code)).await;
        assert_eq!(reason(&again.unwrap_err()), "BAD_CREDENTIALS");
    }
    let r = sign_in(&nodes[2], "shared@example.org", None).await;
    assert_eq!(reason(&r.unwrap_err()), "SECOND_FACTOR_REQUIRED");
    assert!(sign_in(&nodes[2], "shared@example.org", Some(&codes[3]))
        .await
        .is_ok());
    assert!(sign_in(&nodes[0], "shared@example.org", Some(&codes[3]))
        .await
        .is_err());
}

#[tokio::test]
async fn a_key_rotation_keeps_second_factors_and_the_cli_shows_and_resets_them() {
    let n = TestNode::start().await;
    let (_, url, codes) = with_factor(&n, "rot@example.org").await;
    let mut n = n;
    n.stop().await;
    let shown = ok(n.cli(&["user", "mfa", "show", "rot@example.org"]));
    assert!(
        shown.contains("second factor on") && shown.contains("10 of 10"),
        "{shown}"
    );
    let rotated = ok(n.cli(&["key", "rotate"]));
    assert!(rotated.contains("rotated"), "{rotated}");
    let n = n.restart().await;
    // The secret opens under the rotated key: codes and recovery codes still work.
    n.clock.advance_ms(60_000);
    let code = code_at(&url, n.clock.now_ms(), 0);
    assert!(sign_in(&n, "rot@example.org", Some(&code)).await.is_ok());
    assert!(sign_in(&n, "rot@example.org", Some(&codes[0]))
        .await
        .is_ok());
    let mut n = n;
    n.stop().await;
    let reset = ok(n.cli(&["user", "mfa", "reset", "rot@example.org"]));
    assert!(reset.contains("removed the second factor"), "{reset}");
    let n = n.restart().await;
    assert!(sign_in(&n, "rot@example.org", None).await.is_ok());
}

#[tokio::test]
async fn a_password_reset_keeps_the_second_factor_and_the_mail_says_so() {
    let n = TestNode::start().await;
    let (_, url, _) = with_factor(&n, "keep@example.org").await;
    let mut t = n.tangle();
    t.reset_password(reset("keep@example.org", None))
        .await
        .unwrap();
    let code = code_in(&n.last_mail_to("keep@example.org").await.subject);
    t.reset_password(reset(
        "keep@example.org",
        Some((&code, "a brand new passphrase")),
    ))
    .await
    .unwrap();
    let done = n.last_mail_to("keep@example.org").await;
    assert!(
        done.body.contains("second factor stays on"),
        "{}",
        done.body
    );
    let r = t
        .sign_in(tangle::SignIn {
            email: "keep@example.org".into(),
            password: "a brand new passphrase".into(),
            totp: None,
        })
        .await;
    assert_refused(
        r,
        Code::Unauthenticated,
        "SECOND_FACTOR_REQUIRED",
        "second factor",
    );
    n.clock.advance_ms(30_000);
    let r = t
        .sign_in(tangle::SignIn {
            email: "keep@example.org".into(),
            password: "a brand new passphrase".into(),
            totp: Some(code_at(&url, n.clock.now_ms(), 0)),
        })
        .await;
    assert!(r.is_ok());
}

#[tokio::test]
async fn a_node_may_require_a_second_factor_at_home_for_federated_logins() {
    use hearth::domain::federation::PeerNetwork;
    use hearth::identity::server_id::ServerId;
    use hearth::pb::protocol::auth::v1::{
        auth_service_client::AuthServiceClient as Harmony, FederateRequest, LoginFederatedRequest,
    };
    let open = |c: &mut hearth::Config| {
        c.federation.allow_private_addresses = true;
        c.federation.allow_plaintext = true;
    };
    let home = TestNode::start_with(move |c| {
        c.server_id = "home.test".parse().unwrap();
        open(c);
    })
    .await;
    let strict = TestNode::start_with(move |c| {
        c.server_id = "strict.test".parse().unwrap();
        c.federation.require_second_factor = true;
        open(c);
    })
    .await;
    let (home_id, strict_id) = (
        ServerId::parse("home.test").unwrap(),
        ServerId::parse("strict.test").unwrap(),
    );
    home.running().client().set_route(&strict_id, &strict.url());
    strict.running().client().set_route(&home_id, &home.url());
    let visit = async |token: &str| {
        let signed = Harmony::new(home.channel.clone())
            .federate(authed(
                FederateRequest {
                    server_id: "strict.test".into(),
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .token;
        Harmony::new(strict.channel.clone())
            .login_federated(LoginFederatedRequest {
                auth_token: signed,
                server_id: "home.test".into(),
            })
            .await
            .map(|r| r.into_inner().session.unwrap().session_token)
    };
    // Signed in at home with a password alone: refused, saying what to do.
    let (password_only, url, _) = with_factor(&home, "fed@example.org").await;
    let r = visit(&password_only).await;
    assert_refused(
        r,
        Code::Unauthenticated,
        "SECOND_FACTOR_REQUIRED",
        "second factor",
    );
    // Signed in at home with a code: admitted, and the session says how.
    home.clock.advance_ms(30_000);
    let code = code_at(&url, home.clock.now_ms(), 0);
    let with_code = sign_in(&home, "fed@example.org", Some(&code))
        .await
        .unwrap();
    let there = visit(&with_code).await.unwrap();
    let (current, amr_of) = amr_by_session(&strict, &there).await;
    assert_eq!(amr_of(current), ["federated", "pwd", "otp"]);
}

#[tokio::test]
async fn tokens_and_refresh_need_no_code_and_hrpc_sign_in_takes_one() {
    use prost::Message;
    let n = TestNode::start().await;
    let (session, url, _) = with_factor(&n, "tok@example.org").await;
    // A personal access token and a refreshed session are not password sign-ins.
    let (pat, _) = crate::tokens::make(&n, &session, &[]).await;
    n.pong(Some(&pat)).await.unwrap();
    let refreshed = n
        .accounts()
        .refresh_session(authed((), &session))
        .await
        .unwrap();
    let fresh = bearer_in(&refreshed);
    n.pong(Some(&fresh)).await.unwrap();

    // hRPC (Harmony's transport) reaches the same SignIn: no code, then a code.
    let body = |totp: Option<String>| {
        tangle::SignIn {
            email: "tok@example.org".into(),
            password: PASSWORD.into(),
            totp,
        }
        .encode_to_vec()
    };
    let path = "/tangle.client.auth.Auth/SignIn";
    let without = crate::transports::hrpc(&n, path, body(None), None).await;
    assert_eq!(without.error().identifier, "hearth.SECOND_FACTOR_REQUIRED");
    n.clock.advance_ms(30_000);
    let code = code_at(&url, n.clock.now_ms(), 0);
    let with = crate::transports::hrpc(&n, path, body(Some(code)), None).await;
    assert_eq!(with.status, 200);
    let a = tangle::Authorization::decode(&with.body[..]).unwrap();
    n.pong(Some(&a.token)).await.unwrap();
}

#[tokio::test]
async fn of_50_parallel_wrong_codes_at_most_5_are_checked_before_the_delay() {
    let n = TestNode::start().await;
    with_factor(&n, "guess@example.org").await;
    let before = n.domain().accounts.hasher().verifications();
    let wrong = (0..50).map(|i| format!("{:06}", 200_000 + i));
    let results = at_once(&n, "guess@example.org", wrong).await;
    assert!(results.iter().all(Result::is_err));
    // Each evaluated guess costs one password verification: the gate lets five through.
    let evaluated = n.domain().accounts.hasher().verifications() - before;
    assert!(evaluated <= 5, "{evaluated} guesses were evaluated");
}
