//! The account's own pages, driven as a browser would (`pages::Browser`): the second factor
//! (QR code, first code, recovery codes shown once, off), personal access tokens (value
//! shown once, scopes, ended at once), changing the e-mail address and deleting the account.
use reqwest::StatusCode;
use tonic::Code;

use crate::pages::{ended, Browser};
use crate::support::*;
use hearth::clock::Clock;
use hearth::pb::tokens::v1 as tokens;

/// A browser signed in as a new account `email`, and that account's first session token.
async fn signed_in(n: &TestNode, email: &str) -> (Browser, String) {
    let (token, _, _) = n.sign_up(email).await;
    let b = Browser::new(n);
    assert_eq!(b.sign_in(email).await.location(), "/account");
    (b, token)
}

#[tokio::test]
async fn the_second_factor_is_set_up_with_a_qr_code_and_shows_recovery_codes_once() {
    let n = TestNode::start().await;
    let (b, token) = signed_in(&n, "qr@example.org").await;
    let page = b.get("/account/second-factor").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Set up an authenticator app"));

    let scan = b
        .submit(&page, "/account/second-factor", &[("action", "start")])
        .await;
    assert_eq!(scan.status, StatusCode::OK, "{}", scan.body);
    assert!(
        scan.body.contains("src=\"data:image/svg+xml;base64,"),
        "a server-rendered QR code: {}",
        scan.body
    );
    let url = scan.hidden("url");
    assert!(url.starts_with("otpauth://totp/"), "{url}");
    let totp = totp_rs::TOTP::from_url_unchecked(&url).unwrap();
    let secret = url
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(
        scan.body.contains(&format!("<code>{secret}</code>")),
        "the key to type by hand"
    );

    let wrong = b
        .submit(
            &scan,
            "/account/second-factor",
            &[
                ("action", "confirm"),
                ("url", &url),
                ("code-confirm", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    assert!(wrong.body.contains("CODE_INVALID"), "{}", wrong.body);
    assert_eq!(
        wrong.hidden("url"),
        url,
        "the same secret stays to be confirmed"
    );
    assert!(!n.account(&token).await.totp_enabled);

    let now = n.clock.now_ms() / 1000;
    let on = b
        .submit(
            &wrong,
            "/account/second-factor",
            &[
                ("action", "confirm"),
                ("url", &url),
                ("code-confirm", &totp.generate(now)),
            ],
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    assert_eq!(on.body.matches("<li><code>").count(), 10, "{}", on.body);
    assert!(n.account(&token).await.totp_enabled);
    let shown = b.get("/account/second-factor").await;
    assert!(
        !shown.body.contains("<li><code>"),
        "recovery codes are shown once"
    );

    // Off without a code is refused (SECOND_FACTOR_REQUIRED, an UNAUTHENTICATED refusal)
    // and shown; it does not sign the browser out.
    let no_code = b
        .submit(
            &shown,
            "/account/second-factor",
            &[("action", "off"), ("code-off", "")],
        )
        .await;
    assert_eq!(no_code.status, StatusCode::UNAUTHORIZED, "{}", no_code.body);
    assert!(
        no_code.body.contains("SECOND_FACTOR_REQUIRED"),
        "{}",
        no_code.body
    );
    assert!(b.session().is_some(), "the browser stays signed in");
    assert!(n.account(&token).await.totp_enabled);

    // Off with a current code.
    let off = b
        .submit(
            &shown,
            "/account/second-factor",
            &[("action", "off"), ("code-off", &totp.generate(now + 30))],
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert!(!n.account(&token).await.totp_enabled);
}

#[tokio::test]
async fn a_token_made_on_the_page_is_shown_once_holds_its_scopes_and_ends_at_once() {
    let n = TestNode::start().await;
    let (b, _) = signed_in(&n, "pat@example.org").await;
    let page = b.get("/account/tokens").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("You have no tokens."));
    let made = b
        .submit(
            &page,
            "/account/tokens/create",
            &[
                ("name", "ci"),
                ("scope", "tokens:read"),
                ("scope", "sessions:read"),
                ("days", "7"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let value = made
        .body
        .split("<code>")
        .find_map(|p| {
            p.strip_prefix("hpat_")
                .map(|r| format!("hpat_{}", &r[..r.find('<').unwrap()]))
        })
        .unwrap_or_else(|| panic!("no token value in {}", made.body));
    assert!(
        made.body.contains("tokens:read, sessions:read")
            || made.body.contains("sessions:read, tokens:read")
    );

    // The value works for its scopes, and only for them.
    let mut list = n.tokens();
    let listed = list
        .list_tokens(authed((), &value))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.token_metadata.unwrap().name, "ci");
    let refused = n
        .tokens()
        .create_token(authed(tokens::CreateTokenRequest::default(), &value))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    let again = b.get("/account/tokens").await;
    assert!(
        !again.body.contains(&value),
        "the value is never shown again"
    );
    let uuid = again.hidden("uuid");
    let ended = b
        .submit(&again, "/account/tokens/expire", &[("uuid", &uuid)])
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    let s = n
        .tokens()
        .list_tokens(authed((), &value))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
}

#[tokio::test]
async fn a_new_address_is_taken_when_its_link_is_pressed() {
    let n = TestNode::start().await;
    let (b, token) = signed_in(&n, "old@example.org").await;
    let page = b.get("/account").await;
    let asked = b
        .submit(&page, "/account/email", &[("email", "new@example.org")])
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert!(
        asked.body.contains("We mailed a link to new@example.org"),
        "{}",
        asked.body
    );
    assert_eq!(
        n.account(&token).await.email.as_deref(),
        Some("old@example.org")
    );
    let link = crate::pages::link_in_mail(&n, "new@example.org").await;
    let landing = b.get(&link).await;
    let done = b.press_verify(&landing).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        n.account(&token).await.email.as_deref(),
        Some("new@example.org")
    );
}

#[tokio::test]
async fn deleting_the_account_takes_its_address_typed_and_can_be_undone_in_the_grace_period() {
    let n = TestNode::start().await;
    let (b, token) = signed_in(&n, "bye@example.org").await;
    let page = b.get("/account").await;
    let mistyped = b
        .submit(&page, "/account/delete", &[("confirm", "by@example.org")])
        .await;
    assert_eq!(
        mistyped.status,
        StatusCode::BAD_REQUEST,
        "{}",
        mistyped.body
    );
    n.pong(Some(&format!("Bearer {token}"))).await.unwrap();

    let gone = b
        .submit(&page, "/account/delete", &[("confirm", "bye@example.org")])
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    assert!(b.session().is_none(), "the cookie is cleared");
    assert!(ended(&n, &token).await, "every session ended");

    // Signing in within the grace period shows the way back.
    b.sign_in("bye@example.org").await;
    let account = b.get("/account").await;
    assert!(
        account.body.contains("set to be deleted"),
        "{}",
        account.body
    );
    let kept = b
        .submit(&account, "/account/delete", &[("cancel", "1")])
        .await;
    assert!(kept.body.contains("Your account stays."), "{}", kept.body);
    assert!(!kept.body.contains("set to be deleted"), "{}", kept.body);
}
