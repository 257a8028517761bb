//! Issue: e-mail codes, password reset and the mail outbox, including delivery to a real
//! SMTP server process (aiosmtpd, installed by scripts/install-test-deps.sh).
use hearth::pb::accounts::v1 as acc;
use hearth::pb::tangle::client::auth as tangle;
use tonic::Code;

use crate::support::*;

fn wrong(code: &str) -> String {
    format!("{:08}", (code.parse::<u32>().unwrap() + 1) % 100_000_000)
}

#[tokio::test]
async fn verification_codes_are_8_digits_hmac_stored_and_single_use() {
    let n = TestNode::start().await;
    let (token, _, user_id) = n.sign_up("v@example.org").await;
    let code = code_in(&n.last_mail_to("v@example.org").await.subject);
    assert_eq!(code.len(), 8);
    let stored: Vec<u8> = n
        .domain()
        .store()
        .read(move |tx| tx.code(user_id, "verify_email"))
        .await
        .unwrap()
        .unwrap()
        .mac
        .to_vec();
    assert_eq!(stored.len(), 32, "an HMAC-SHA256, not the code");
    assert!(!stored.windows(8).any(|w| w == code.as_bytes()));

    let mut t = n.tangle();
    assert_code(
        t.verify_email(verify("v@example.org", "1234")).await,
        Code::InvalidArgument,
        "8 digits",
    );
    assert_code(
        t.verify_email(verify("v@example.org", &wrong(&code))).await,
        Code::InvalidArgument,
        "code",
    );
    t.verify_email(verify("v@example.org", &code))
        .await
        .unwrap();
    assert_code(
        t.verify_email(verify("v@example.org", &code)).await,
        Code::InvalidArgument,
        "used",
    );
    let verified = n
        .accounts()
        .is_email_verified(authed(acc::IsEmailVerifiedRequest { data: None }, &token))
        .await
        .unwrap();
    assert!(verified.into_inner().verified);
}

#[tokio::test]
async fn codes_are_bound_to_their_purpose_and_expire() {
    let n = TestNode::start().await;
    n.sign_up("p@example.org").await;
    let mut t = n.tangle();
    t.reset_password(reset("p@example.org", None))
        .await
        .unwrap();
    let reset_code = code_in(&n.last_mail_to("p@example.org").await.subject);
    assert_code(
        t.verify_email(verify("p@example.org", &reset_code)).await,
        Code::InvalidArgument,
        "code",
    );

    n.clock.advance_ms(hearth::domain::codes::CODE_TTL_MS);
    let r = t
        .reset_password(reset(
            "p@example.org",
            Some((&reset_code, "a brand new passphrase")),
        ))
        .await;
    assert_code(r, Code::InvalidArgument, "expired");
    n.sign_in("p@example.org", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn five_wrong_tries_kill_a_code_and_50_parallel_guesses_compare_at_most_5() {
    let n = TestNode::start().await;
    n.sign_up("g@example.org").await;
    let code = code_in(&n.last_mail_to("g@example.org").await.subject);
    let before = n.domain().codes.comparisons();
    let guesses = (0..50).map(|i| {
        let mut t = n.tangle();
        let guess = format!(
            "{:08}",
            (code.parse::<u32>().unwrap() + 1 + i) % 100_000_000
        );
        async move { t.verify_email(verify("g@example.org", &guess)).await }
    });
    let results = futures_util::future::join_all(guesses).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_err_and(|s| s.code() == Code::InvalidArgument)));
    let compared = n.domain().codes.comparisons() - before;
    assert!(compared <= 5, "{compared} guesses were compared");
    assert_code(
        n.tangle()
            .verify_email(verify("g@example.org", &code))
            .await,
        Code::InvalidArgument,
        "code",
    );
}

/// Both calls succeeded and carried the same metadata (the `date` header aside): nothing in
/// the answer tells an existing account from a missing one.
fn same_answer<T>(
    a: Result<tonic::Response<T>, tonic::Status>,
    b: Result<tonic::Response<T>, tonic::Status>,
) {
    let keys = |r: Result<tonic::Response<T>, tonic::Status>| {
        let mut k: Vec<String> = r
            .unwrap()
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .filter(|(name, _)| *name != "date" && *name != "x-request-id")
            .map(|(name, value)| format!("{name}={value:?}"))
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(a), keys(b));
}

#[tokio::test]
async fn reset_and_resend_answer_the_same_whether_or_not_the_account_exists() {
    let n = TestNode::start().await;
    n.sign_up("real@example.org").await;
    let mut t = n.tangle();
    same_answer(
        t.reset_password(reset("real@example.org", None)).await,
        t.reset_password(reset("ghost@example.org", None)).await,
    );
    let resend = |e: &str| tangle::ResendEmailVerification {
        email: Some(e.into()),
    };
    same_answer(
        t.resend_email_verification(resend("real@example.org"))
            .await,
        t.resend_email_verification(resend("ghost@example.org"))
            .await,
    );
    let data = |e: &str| acc::ResetPasswordRequest {
        data: Some(acc::AccountData {
            name: String::new(),
            email: e.into(),
        }),
    };
    same_answer(
        n.public().reset_password(data("real@example.org")).await,
        n.public().reset_password(data("ghost@example.org")).await,
    );
    let mails = n.domain().outbox.list().await.unwrap();
    assert!(mails.iter().all(|m| m.recipient != "ghost@example.org"));
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.recipient == "real@example.org")
            .count(),
        4,
        "sign-up, two resets, one resend"
    );
}

#[tokio::test]
async fn a_password_reset_revokes_every_session_and_signs_nobody_in() {
    let n = TestNode::start().await;
    let (first, _, _) = n.sign_up("r@example.org").await;
    let second = n.sign_in("r@example.org", PASSWORD).await.unwrap();
    n.public()
        .reset_password(acc::ResetPasswordRequest {
            data: Some(acc::AccountData {
                name: String::new(),
                email: "r@example.org".into(),
            }),
        })
        .await
        .unwrap();
    let code = code_in(&n.last_mail_to("r@example.org").await.subject);
    let res = n
        .public()
        .new_password(acc::NewPasswordRequest {
            data: Some(acc::AccountData {
                name: String::new(),
                email: "r@example.org".into(),
            }),
            password: Some(acc::AccountPassword {
                password: "a brand new passphrase".into(),
            }),
            code,
        })
        .await
        .unwrap();
    assert!(
        res.metadata().get("authorization").is_none(),
        "a reset must not sign in"
    );
    assert_code(n.pong(Some(&first)).await, Code::Unauthenticated, "revoked");
    assert_code(
        n.pong(Some(&second)).await,
        Code::Unauthenticated,
        "revoked",
    );
    assert_code(
        n.sign_in("r@example.org", PASSWORD).await,
        Code::Unauthenticated,
        "wrong",
    );
    n.sign_in("r@example.org", "a brand new passphrase")
        .await
        .unwrap();
}

#[tokio::test]
async fn the_link_in_the_verification_mail_verifies() {
    let n = TestNode::start().await;
    n.sign_up("link@example.org").await;
    let body = n.last_mail_to("link@example.org").await.body;
    let link = body
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap()
        .to_owned();
    assert!(link.starts_with(&n.url()), "{link}");
    // The link's page verifies when its button is pressed, once.
    let b = crate::pages::Browser::new(&n);
    let landing = b.get(&link[n.url().len()..]).await;
    let res = b.press_verify(&landing).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let again = b.press_verify(&landing).await;
    assert_eq!(again.status, 400, "{}", again.body);
}

#[tokio::test]
async fn with_required_verification_the_sign_up_session_is_unusable_until_verified() {
    let n = TestNode::start_with(|c| c.accounts.require_email_verification = true).await;
    let (token, _, _) = n.sign_up("unverified@example.org").await;
    let s = assert_code(
        n.pong(Some(&token)).await,
        Code::FailedPrecondition,
        "verify",
    );
    let reason = tonic_types::StatusExt::get_details_error_info(&s).map(|i| i.reason);
    assert_eq!(reason.as_deref(), Some("EMAIL_NOT_VERIFIED"));
    assert_code(
        n.accounts().refresh_session(authed((), &token)).await,
        Code::FailedPrecondition,
        "verify",
    );
    let fed = hearth::pb::protocol::auth::v1::auth_service_client::AuthServiceClient::new(
        n.channel.clone(),
    )
    .federate(authed(
        hearth::pb::protocol::auth::v1::FederateRequest {
            server_id: "beta.example.org".into(),
        },
        &token,
    ))
    .await;
    assert_code(fed, Code::FailedPrecondition, "verify");
    // It may still ask whether it is verified.
    let verified = n
        .accounts()
        .is_email_verified(authed(acc::IsEmailVerifiedRequest { data: None }, &token))
        .await
        .unwrap()
        .into_inner()
        .verified;
    assert!(!verified);

    let code = code_in(&n.last_mail_to("unverified@example.org").await.subject);
    n.tangle()
        .verify_email(verify("unverified@example.org", &code))
        .await
        .unwrap();
    n.pong(Some(&token)).await.unwrap();
}

fn new_password(email: &str, code: &str) -> acc::NewPasswordRequest {
    acc::NewPasswordRequest {
        data: Some(acc::AccountData {
            name: String::new(),
            email: email.into(),
        }),
        password: Some(acc::AccountPassword {
            password: "a brand new passphrase 9".into(),
        }),
        code: code.into(),
    }
}

#[tokio::test]
async fn a_reset_code_is_checked_before_hashing_and_unknown_accounts_look_the_same() {
    let n = TestNode::start().await;
    n.sign_up("known@example.org").await;
    n.tangle()
        .reset_password(reset("known@example.org", None))
        .await
        .unwrap();
    let code = code_in(&n.last_mail_to("known@example.org").await.subject);
    let hashes = n.domain().accounts.hasher().hashes();
    let known = n
        .public()
        .new_password(new_password("known@example.org", &wrong(&code)))
        .await
        .unwrap_err();
    let unknown = n
        .public()
        .new_password(new_password("ghost@example.org", &wrong(&code)))
        .await
        .unwrap_err();
    assert_eq!(known.code(), unknown.code());
    assert_eq!(known.message(), unknown.message());
    assert_eq!(
        known.message(),
        "code: the code is wrong, used or expired; ask for a new one"
    );
    assert_eq!(
        n.domain().accounts.hasher().hashes(),
        hashes,
        "no hash for a wrong code"
    );
    // The right code still works (one try was spent) and hashes once.
    n.public()
        .new_password(new_password("known@example.org", &code))
        .await
        .unwrap();
    assert_eq!(n.domain().accounts.hasher().hashes(), hashes + 1);
}

#[tokio::test]
async fn codes_are_issued_at_most_5_an_hour_and_reissuing_never_refills_tries() {
    let n = TestNode::start_with(|c| c.accounts.codes_per_hour = 5).await;
    n.sign_up("issued@example.org").await;
    let mail_to = |n: &TestNode| {
        let outbox = n.domain().outbox.clone();
        async move {
            outbox
                .list()
                .await
                .unwrap()
                .iter()
                .filter(|m| m.recipient == "issued@example.org")
                .count()
        }
    };
    // Sign-up sent the first code; 10 more requests send 4 more, and answer alike.
    for _ in 0..10 {
        n.tangle()
            .resend_email_verification(tangle::ResendEmailVerification {
                email: Some("issued@example.org".into()),
            })
            .await
            .unwrap();
    }
    assert_eq!(mail_to(&n).await, 5);
    // The window is the hour since the first code.
    n.clock.advance_ms(3_600_000 - 11 * 60 * 1000);
    n.tangle()
        .resend_email_verification(tangle::ResendEmailVerification {
            email: Some("issued@example.org".into()),
        })
        .await
        .unwrap();
    assert_eq!(mail_to(&n).await, 5, "still the same hour's window");
    n.clock.advance_ms(11 * 60 * 1000);
    n.tangle()
        .resend_email_verification(tangle::ResendEmailVerification {
            email: Some("issued@example.org".into()),
        })
        .await
        .unwrap();
    assert_eq!(mail_to(&n).await, 6, "a new hour, a new code");
}

#[tokio::test]
async fn reissuing_a_live_code_keeps_its_spent_tries() {
    let n = TestNode::start().await;
    n.sign_up("tries@example.org").await;
    let first = code_in(&n.last_mail_to("tries@example.org").await.subject);
    for _ in 0..4 {
        n.tangle()
            .verify_email(verify("tries@example.org", &wrong(&first)))
            .await
            .unwrap_err();
    }
    n.tangle()
        .resend_email_verification(tangle::ResendEmailVerification {
            email: Some("tries@example.org".into()),
        })
        .await
        .unwrap();
    let second = code_in(&n.last_mail_to("tries@example.org").await.subject);
    n.tangle()
        .verify_email(verify("tries@example.org", &wrong(&second)))
        .await
        .unwrap_err();
    // Five tries were spent across both codes: the right one is refused now.
    assert_code(
        n.tangle()
            .verify_email(verify("tries@example.org", &second))
            .await,
        Code::InvalidArgument,
        "wrong, used or expired",
    );
}
