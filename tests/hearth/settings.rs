//! An account holder's own settings (tangle.client.auth extensions): GetAccount,
//! ChangePassword, ChangeEmail (moved by the code mailed to the new address) and
//! DeleteAccount (a grace period, sessions ended, cancel).
use tonic::Code;

use crate::support::*;
use hearth::pb::tangle::client::auth as tangle;

fn change_password(current: &str, new: &str) -> tangle::ChangePassword {
    tangle::ChangePassword {
        current_password: current.into(),
        new_password: new.into(),
        revoke_sessions: false,
    }
}

#[tokio::test]
async fn get_account_shows_the_address_and_what_the_account_has() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("acct@example.org").await;
    let a = n.account(&token).await;
    assert_eq!(a.email.as_deref(), Some("acct@example.org"));
    assert!(!a.confirmed && a.has_password && !a.totp_enabled && !a.pending_delete);
    let r = n.tangle().get_account(tangle::GetAccount {}).await;
    assert_refused(r, Code::Unauthenticated, "CREDENTIAL_MISSING", "credential");
}

#[tokio::test]
async fn change_password_checks_the_current_one_and_ends_the_other_sessions() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("pw@example.org").await;
    let other = n.sign_in("pw@example.org", PASSWORD).await.unwrap();

    let r = n
        .tangle()
        .change_password(authed(
            change_password("wrong password here", "a brand new passphrase"),
            &token,
        ))
        .await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "BAD_CREDENTIALS",
        "current password",
    );
    let r = n
        .tangle()
        .change_password(authed(change_password(PASSWORD, "short"), &token))
        .await;
    assert_refused(r, Code::InvalidArgument, "FIELD_INVALID", "new_password");
    assert!(
        n.pong(Some(&other)).await.is_ok(),
        "refusals change nothing"
    );

    n.tangle()
        .change_password(authed(
            change_password(PASSWORD, "a brand new passphrase"),
            &token,
        ))
        .await
        .unwrap();
    assert!(
        n.pong(Some(&token)).await.is_ok(),
        "the caller's session stays"
    );
    assert!(
        n.pong(Some(&other)).await.is_err(),
        "every other session ends"
    );
    assert!(n.sign_in("pw@example.org", PASSWORD).await.is_err());
    assert!(n
        .sign_in("pw@example.org", "a brand new passphrase")
        .await
        .is_ok());
}

#[tokio::test]
async fn fifty_parallel_wrong_current_passwords_are_gated_like_sign_ins() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("gate@example.org").await;
    let before = n.domain().accounts.hasher().verifications();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (mut c, token) = (n.tangle(), token.clone());
        tasks.push(tokio::spawn(async move {
            c.change_password(authed(
                change_password(&format!("wrong guess number {i}"), "a brand new passphrase"),
                &token,
            ))
            .await
        }));
    }
    for t in tasks {
        let refused = t.await.unwrap().unwrap_err();
        assert!(
            matches!(
                refused.code(),
                Code::PermissionDenied | Code::ResourceExhausted
            ),
            "{refused:?}"
        );
    }
    let evaluated = n.domain().accounts.hasher().verifications() - before;
    assert!(evaluated <= 5, "{evaluated} of 50 guesses reached argon2");
}

#[tokio::test]
async fn change_email_moves_the_account_once_the_new_address_proves_itself() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("old@example.org").await;
    n.sign_up("taken@example.org").await;
    let change = |to: &str| tangle::ChangeEmail {
        new_email: to.into(),
    };
    let r = n
        .tangle()
        .change_email(authed(change("taken@example.org"), &token))
        .await;
    assert_refused(r, Code::AlreadyExists, "EMAIL_TAKEN", "e-mail");
    let r = n
        .tangle()
        .change_email(authed(change("not an address"), &token))
        .await;
    assert_refused(r, Code::InvalidArgument, "FIELD_INVALID", "new_email");

    n.tangle()
        .change_email(authed(change("New@Example.org"), &token))
        .await
        .unwrap();
    let notice = n.last_mail_to("old@example.org").await;
    assert!(notice.body.contains("new@example.org"), "{}", notice.body);
    let mail = n.last_mail_to("new@example.org").await;
    let code = code_in(&mail.body);
    // Nothing moved yet; a wrong code moves nothing.
    assert_eq!(
        n.account(&token).await.email.as_deref(),
        Some("old@example.org")
    );
    let wrong = if code == "00000000" {
        "00000001"
    } else {
        "00000000"
    };
    let r = n
        .tangle()
        .verify_email(verify("new@example.org", wrong))
        .await;
    assert_refused(r, Code::InvalidArgument, "CODE_INVALID", "code");
    n.tangle()
        .verify_email(verify("new@example.org", &code))
        .await
        .unwrap();
    let a = n.account(&token).await;
    assert_eq!(
        (a.email.as_deref(), a.confirmed),
        (Some("new@example.org"), true)
    );
    assert!(n.sign_in("new@example.org", PASSWORD).await.is_ok());
    assert!(n.sign_in("old@example.org", PASSWORD).await.is_err());
    // The code is used up.
    let r = n
        .tangle()
        .verify_email(verify("new@example.org", &code))
        .await;
    assert_refused(r, Code::InvalidArgument, "CODE_INVALID", "code");
}

#[tokio::test]
async fn delete_account_ends_sessions_waits_out_the_grace_and_can_be_cancelled() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("bye@example.org").await;
    let delete = |cancel: Option<bool>| tangle::DeleteAccount { cancel };
    n.tangle()
        .delete_account(authed(delete(None), &token))
        .await
        .unwrap();
    assert!(n.pong(Some(&token)).await.is_err(), "every session ends");
    // Within the grace: sign in, see it pending, cancel.
    let again = n.sign_in("bye@example.org", PASSWORD).await.unwrap();
    assert!(n.account(&again).await.pending_delete);
    n.tangle()
        .delete_account(authed(delete(Some(true)), &again))
        .await
        .unwrap();
    assert!(!n.account(&again).await.pending_delete);
    n.clock.advance_ms(8 * 24 * 3600 * 1000);
    assert_eq!(n.domain().settings.delete_due().await.unwrap(), 0);
    assert!(n.pong(Some(&again)).await.is_ok());

    // Asked again and not cancelled: gone once the grace is over, not before.
    n.tangle()
        .delete_account(authed(delete(None), &again))
        .await
        .unwrap();
    n.clock.advance_ms(6 * 24 * 3600 * 1000);
    assert_eq!(n.domain().settings.delete_due().await.unwrap(), 0);
    assert!(n.sign_in("bye@example.org", PASSWORD).await.is_ok());
    n.clock.advance_ms(2 * 24 * 3600 * 1000);
    assert_eq!(n.domain().settings.delete_due().await.unwrap(), 1);
    assert!(n.sign_in("bye@example.org", PASSWORD).await.is_err());
}

#[tokio::test]
async fn with_no_grace_an_account_is_deleted_at_once() {
    let n = TestNode::start_with(|c| c.accounts.delete_grace_days = 0).await;
    let (token, _, _) = n.sign_up("now@example.org").await;
    n.tangle()
        .delete_account(authed(tangle::DeleteAccount { cancel: None }, &token))
        .await
        .unwrap();
    assert!(n.pong(Some(&token)).await.is_err());
    assert!(n.sign_in("now@example.org", PASSWORD).await.is_err());
    n.sign_up("now@example.org").await;
}

#[tokio::test]
async fn fifty_accounts_asking_for_one_new_address_leave_one_waiting_for_it() {
    let n = TestNode::start().await;
    let mut tokens = Vec::new();
    for i in 0..50 {
        tokens.push(n.sign_up(&format!("race{i}@example.org")).await.0);
    }
    let mut tasks = Vec::new();
    for token in tokens {
        let mut c = n.tangle();
        tasks.push(tokio::spawn(async move {
            let to = tangle::ChangeEmail {
                new_email: "prize@example.org".into(),
            };
            c.change_email(authed(to, &token)).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(s) => assert_eq!(reason(&s), "EMAIL_TAKEN", "{s:?}"),
        }
    }
    assert_eq!(won, 1);
}
