//! Issue: e-mail codes, password reset and the mail outbox, including delivery to a real
//! SMTP server process (aiosmtpd, installed by scripts/install-test-deps.sh).
use std::time::{Duration, Instant};

use hearth::pb::accounts::v1 as acc;
use hearth::pb::tangle::client::auth as tangle;
use tonic::Code;

use crate::support::*;

fn verify(email: &str, code: &str) -> tangle::VerifyEmail {
    tangle::VerifyEmail {
        email: email.into(),
        code: code.into(),
    }
}

fn reset(email: &str, confirm: Option<(&str, &str)>) -> tangle::ResetPassword {
    tangle::ResetPassword {
        email: email.into(),
        confirm: confirm.map(|(code, pw)| tangle::reset_password::ResetPasswordConfirm {
            code: code.into(),
            new_password: pw.into(),
        }),
    }
}

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
    let res = reqwest::get(&link).await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let again = reqwest::get(&link).await.unwrap();
    assert_eq!(again.status(), 400);
}

struct SmtpServer {
    child: std::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    async fn start_on(port: u16) -> Self {
        let maildir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path().join("mail"))
            .spawn()
            .expect("python3 with aiosmtpd (run scripts/install-test-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start (is it installed?)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            child,
            port,
            maildir,
        }
    }

    async fn wait_for_mail(&self) -> String {
        let dir = self.maildir.path().join("mail").join("new");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(entry) = std::fs::read_dir(&dir).ok().and_then(|mut d| d.next()) {
                return std::fs::read_to_string(entry.unwrap().path()).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no mail arrived at the SMTP server"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn mail_reaches_a_real_smtp_server_with_a_working_code() {
    let smtp = SmtpServer::start().await;
    let n = TestNode::start_with(|c| {
        c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{}", smtp.port));
        c.mail.from = "hearth@alpha.example.org".into();
    })
    .await;
    n.sign_up("smtp@example.org").await;
    let message = smtp.wait_for_mail().await;
    assert!(message.contains("To: smtp@example.org"), "{message}");
    let subject = message.lines().find(|l| l.starts_with("Subject:")).unwrap();
    let code = code_in(subject);
    n.tangle()
        .verify_email(verify("smtp@example.org", &code))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if n.last_mail_to("smtp@example.org").await.sent_at.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox row was not marked sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Delivered mail keeps its envelope only; after a sweep no file holds the code.
    let row = n.last_mail_to("smtp@example.org").await;
    assert!(
        !row.subject.contains(&code) && !row.body.contains(&code),
        "{row:?}"
    );
    n.domain()
        .outbox
        .sweep(hearth::domain::codes::CODE_TTL_MS)
        .await
        .unwrap();
    assert_no_file_holds(&n, &code);
}

/// Neither the database nor its write-ahead log holds `text`.
fn assert_no_file_holds(n: &TestNode, text: &str) {
    for file in ["hearth.sqlite3", "hearth.sqlite3-wal"] {
        let bytes = std::fs::read(n.config.data_dir.join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
            "{file} still holds {text}"
        );
    }
}

#[tokio::test]
async fn codes_in_undelivered_mail_are_dropped_once_they_expire() {
    let n = TestNode::start().await;
    n.sign_up("stale@example.org").await;
    let code = code_in(&n.last_mail_to("stale@example.org").await.subject);
    assert_eq!(
        n.domain()
            .outbox
            .sweep(hearth::domain::codes::CODE_TTL_MS)
            .await
            .unwrap(),
        0
    );
    n.clock.advance_ms(hearth::domain::codes::CODE_TTL_MS);
    assert_eq!(
        n.domain()
            .outbox
            .sweep(hearth::domain::codes::CODE_TTL_MS)
            .await
            .unwrap(),
        1
    );
    let row = n.last_mail_to("stale@example.org").await;
    assert!(
        !row.subject.contains(&code) && row.body.is_empty(),
        "{row:?}"
    );
    assert_eq!(row.last_error.as_deref(), Some("expired before delivery"));
    assert_no_file_holds(&n, &code);
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff() {
    let port = free_port();
    let n =
        TestNode::start_with(|c| c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    n.sign_up("retry@example.org").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let m = n.last_mail_to("retry@example.org").await;
        if m.attempts > 0 {
            break m;
        }
        assert!(Instant::now() < deadline, "no delivery attempt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(failed.sent_at.is_none() && failed.last_error.is_some());
    let smtp = SmtpServer::start_on(port).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        n.last_mail_to("retry@example.org").await.attempts,
        1,
        "no retry before the backoff"
    );
    n.clock.advance_ms(hearth::mail::backoff_ms(0));
    smtp.wait_for_mail().await;
}

#[tokio::test]
async fn a_stalled_smtp_server_does_not_slow_rpcs() {
    // Accepts connections and never says a word.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = stalled.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stalled.accept().await {
            held.push(s);
        }
    });
    let n =
        TestNode::start_with(|c| c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    n.sign_up("first@example.org").await; // the sender is now stuck talking to the stall
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    n.sign_up("second@example.org").await;
    n.tangle()
        .reset_password(reset("first@example.org", None))
        .await
        .unwrap();
    // The SMTP timeout is 20 s; queueing must not wait on it.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "RPCs waited on SMTP: {:?}",
        start.elapsed()
    );
    assert!(n.last_mail_to("second@example.org").await.sent_at.is_none());
    holder.abort();
}

#[tokio::test]
async fn cli_lists_the_outbox() {
    let mut n = TestNode::start().await;
    n.sign_up("outbox@example.org").await;
    let data = n.config.data_dir.clone();
    n.stop().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["mail", "list"])
        .env("HEARTH_DATA_DIR", &data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("to outbox@example.org (queued)") && text.contains("verification code"),
        "{text}"
    );
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
