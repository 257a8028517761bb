//! The pages people use (api/pages), driven over real HTTP as a browser would: cookies kept
//! from `Set-Cookie`, forms posted with the CSRF token the page carried, redirects read.
//! Sign-in with and without a second factor, sign-out, registration by mode, the e-mail
//! link (only its button verifies), password reset, the account's sessions, the budgets a
//! page shares with gRPC, and the headers every page answers with.
use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::StatusCode;
use tonic::Code;

use crate::support::*;
use hearth::clock::Clock;
use hearth::config::Registration;
use hearth::pb::tangle::client::auth as tangle;

/// A browser without script: a cookie jar and forms.
pub struct Browser {
    base: String,
    client: reqwest::Client,
    jar: Mutex<BTreeMap<String, String>>,
}

/// One answer.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the hidden field `name` (the first one).
    pub fn hidden(&self, name: &str) -> String {
        let at = self
            .body
            .find(&format!("name=\"{name}\" value=\""))
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body));
        let rest = &self.body[at + name.len() + 15..];
        // As a browser reads an attribute: entities decoded.
        rest[..rest.find('"').unwrap()]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    /// Where a redirect points.
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Every `Set-Cookie` line.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

impl Browser {
    pub fn new(n: &TestNode) -> Self {
        Browser {
            base: n.url(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Mutex::default(),
        }
    }

    fn cookie_header(&self) -> String {
        let jar = self.jar.lock().unwrap();
        jar.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&self, res: reqwest::Response) -> Page {
        let status = res.status();
        let headers = res.headers().clone();
        for line in headers.get_all("set-cookie") {
            let line = line.to_str().unwrap();
            let (pair, attrs) = line.split_once(';').unwrap_or((line, ""));
            let (k, v) = pair.split_once('=').unwrap();
            let mut jar = self.jar.lock().unwrap();
            if v.is_empty() || attrs.contains("Max-Age=0") {
                jar.remove(k);
            } else {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
        let body = res.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    async fn fetch(&self, method: reqwest::Method, path: &str) -> Page {
        let res = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.read(res).await
    }

    pub async fn get(&self, path: &str) -> Page {
        self.fetch(reqwest::Method::GET, path).await
    }

    pub async fn head(&self, path: &str) -> Page {
        self.fetch(reqwest::Method::HEAD, path).await
    }

    /// Posts `fields` to `path` as they are (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.read(res).await
    }

    /// Posts `fields` to `path` with the CSRF token `from` carried, as its form would.
    pub async fn submit(&self, from: &Page, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = from.hidden("csrf");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// The session token the jar holds.
    pub fn session(&self) -> Option<String> {
        self.jar.lock().unwrap().get("hearth_session").cloned()
    }

    /// Presses the button of a verification link's `landing` page.
    pub async fn press_verify(&self, landing: &Page) -> Page {
        let (email, code) = (landing.hidden("email"), landing.hidden("code"));
        self.submit(
            landing,
            "/email/verify",
            &[("email", &email), ("code", &code)],
        )
        .await
    }

    /// Signs in with `email` and the test password through the pages.
    pub async fn sign_in(&self, email: &str) -> Page {
        let form = self.get("/sign-in").await;
        self.submit(
            &form,
            "/sign-in",
            &[("email", email), ("password", PASSWORD)],
        )
        .await
    }
}

/// Whether the session of `token` is over (Pong refuses it).
pub async fn ended(n: &TestNode, token: &str) -> bool {
    n.pong(Some(&format!("Bearer {token}")))
        .await
        .is_err_and(|s| s.code() == Code::Unauthenticated)
}

/// The verification link of the newest mail to `to`.
pub async fn link_in_mail(n: &TestNode, to: &str) -> String {
    let mail = n.last_mail_to(to).await;
    let url = mail
        .body
        .split_whitespace()
        .find(|w| w.contains("/email/verify?"))
        .unwrap()
        .to_owned();
    url[url.find("/email/verify?").unwrap()..].to_owned()
}

#[tokio::test]
async fn pages_answer_with_strict_headers_and_labelled_fields() {
    let n = TestNode::start().await;
    let b = Browser::new(&n);
    let home = b.get("/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location(), "/sign-in");

    let page = b.get("/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && csp.contains("script-src 'self';"),
        "script only from the node's own files: {csp}"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csrf_cookie = page.set_cookies().join("\n");
    assert!(
        csrf_cookie.starts_with("hearth_csrf=")
            && csrf_cookie.contains("HttpOnly")
            && csrf_cookie.contains("SameSite=Strict")
            && !csrf_cookie.contains("Secure"),
        "{csrf_cookie}"
    );
    // Every input has a label naming it; no script anywhere.
    for name in ["email", "password"] {
        assert!(
            page.body.contains(&format!("<label for=\"f-{name}\">")),
            "{}",
            page.body
        );
        assert!(
            page.body.contains(&format!("id=\"f-{name}\"")),
            "{}",
            page.body
        );
    }
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(page.body.contains("name=\"viewport\""));

    let css = b.get("/pages.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let n =
        TestNode::start_with(|c| c.mail.public_url = Some("https://id.example.org".into())).await;
    let page = Browser::new(&n).get("/sign-in").await;
    let cookie = page.set_cookies().join("\n");
    assert!(
        cookie.starts_with("__Host-hearth_csrf=") && cookie.contains("; Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let n = TestNode::start().await;
    let b = Browser::new(&n);
    let form = b.get("/register").await;
    let fields = [
        ("name", "Mallory"),
        ("email", "forged@example.org"),
        ("password", PASSWORD),
    ];
    // No token, a made-up token, and the right token without the cookie it belongs to.
    let none = b.post_raw("/register", &fields).await;
    assert_eq!(none.status, StatusCode::FORBIDDEN, "{}", none.body);
    let mut made_up = vec![("csrf", "00".repeat(32))];
    made_up.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
    let made_up: Vec<(&str, &str)> = made_up.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        b.post_raw("/register", &made_up).await.status,
        StatusCode::FORBIDDEN
    );
    let stranger = Browser::new(&n);
    assert_eq!(
        stranger.submit(&form, "/register", &fields).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        n.sign_in("forged@example.org", PASSWORD)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated,
        "no account was made"
    );
    // With its own token the same form works.
    let made = b.submit(&form, "/register", &fields).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
}

#[tokio::test]
async fn register_sign_out_and_sign_in_again() {
    let n = TestNode::start().await;
    let b = Browser::new(&n);
    let form = b.get("/register").await;
    assert!(!form.body.contains("Invite code"));
    let made = b
        .submit(
            &form,
            "/register",
            &[
                ("name", "Ada"),
                ("email", "ada@example.org"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    assert_eq!(made.location(), "/account");
    let cookie = made.set_cookies().join("\n");
    assert!(
        cookie.contains("hearth_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let token = b.session().unwrap();
    n.pong(Some(&format!("Bearer {token}"))).await.unwrap();

    let account = b.get("/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(account.body.contains("ada@example.org"), "{}", account.body);
    assert!(account.body.contains("(this browser)"), "{}", account.body);
    assert!(account.body.contains("(not verified yet)"));

    let out = b.submit(&account, "/sign-out", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/sign-in");
    assert!(b.session().is_none(), "the cookie is cleared");
    assert!(
        ended(&n, &token).await,
        "the session ended, not only the cookie"
    );
    assert_eq!(b.get("/account").await.location(), "/sign-in");

    // A wrong password shows the form again with the reason; the right one signs in.
    let form = b.get("/sign-in").await;
    let wrong = b
        .submit(
            &form,
            "/sign-in",
            &[("email", "ada@example.org"), ("password", "nope nope nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("BAD_CREDENTIALS"), "{}", wrong.body);
    assert!(
        wrong.body.contains("value=\"ada@example.org\""),
        "the address is kept"
    );
    assert!(b.session().is_none());
    let signed = b.sign_in("ada@example.org").await;
    assert_eq!(signed.location(), "/account", "{}", signed.body);
    let again = b.session().unwrap();
    assert_ne!(again, token);
    n.pong(Some(&format!("Bearer {again}"))).await.unwrap();
}

#[tokio::test]
async fn a_second_factor_is_asked_for_after_the_right_password_only() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("two@example.org").await;
    let setup = |code: Option<String>| tangle::SetupTotp {
        enabled: true,
        code,
    };
    let url = n
        .tangle()
        .setup_totp(authed(setup(None), &token))
        .await
        .unwrap()
        .into_inner()
        .url
        .unwrap();
    let totp = totp_rs::TOTP::from_url_unchecked(&url).unwrap();
    let now = n.clock.now_ms() / 1000;
    n.tangle()
        .setup_totp(authed(setup(Some(totp.generate(now))), &token))
        .await
        .unwrap();

    let b = Browser::new(&n);
    let step = b.sign_in("two@example.org").await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.body);
    assert!(step.body.contains("Second factor"), "{}", step.body);
    assert!(b.session().is_none(), "no session before the code");
    let flow = step.hidden("flow");
    assert!(
        !step.body.contains(PASSWORD),
        "the password never comes back in a page"
    );

    let wrong = b
        .submit(
            &step,
            "/sign-in/code",
            &[("flow", &flow), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(
        wrong.body.contains("Second factor"),
        "the code step stays: {}",
        wrong.body
    );
    assert!(b.session().is_none());

    let code = totp.generate(now + 30);
    let done = b
        .submit(&wrong, "/sign-in/code", &[("flow", &flow), ("code", &code)])
        .await;
    assert_eq!(done.location(), "/account", "{}", done.body);
    let account = b.get("/account").await;
    assert!(
        account.body.contains("password + authenticator code"),
        "{}",
        account.body
    );
    assert!(
        account.body.contains("Second factor: on"),
        "{}",
        account.body
    );
}

#[tokio::test]
async fn the_verification_link_verifies_only_when_its_button_is_pressed() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("link@example.org").await;
    let link = link_in_mail(&n, "link@example.org").await;
    let b = Browser::new(&n);

    // A mail scanner's HEAD and GET change nothing.
    assert_eq!(b.head(&link).await.status, StatusCode::OK);
    let landing = b.get(&link).await;
    assert_eq!(landing.status, StatusCode::OK);
    assert!(
        landing.body.contains("Verify my address"),
        "{}",
        landing.body
    );
    assert!(
        !n.account(&token).await.confirmed,
        "GET and HEAD verify nothing"
    );

    let done = b.press_verify(&landing).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("is verified"), "{}", done.body);
    assert!(n.account(&token).await.confirmed);

    // Pressed again: the page says the link is used up and offers a new one.
    let again = b.press_verify(&landing).await;
    assert!(!again.status.is_success());
    assert!(again.body.contains("Send a new link"), "{}", again.body);
    assert!(again.body.contains("already verified"), "{}", again.body);
}

#[tokio::test]
async fn a_used_link_offers_a_new_one_that_works() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("late@example.org").await;
    let first = link_in_mail(&n, "late@example.org").await;
    let b = Browser::new(&n);
    let bad = first.replace("code=", "code=9");
    let landing = b.get(&bad).await;
    let failed = b.press_verify(&landing).await;
    assert!(!failed.status.is_success(), "{}", failed.body);
    let sent = b
        .submit(&failed, "/email/resend", &[("email", "late@example.org")])
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let fresh = link_in_mail(&n, "late@example.org").await;
    assert_ne!(fresh, first, "a new link was mailed");
    let landing = b.get(&fresh).await;
    b.press_verify(&landing).await;
    assert!(n.account(&token).await.confirmed);
}

#[tokio::test]
async fn password_reset_answers_alike_for_unknown_addresses_and_takes_the_code() {
    let n = TestNode::start().await;
    let (before, _, _) = n.sign_up("reset@example.org").await;
    let b = Browser::new(&n);
    let ask = b.get("/reset").await;
    let known = b
        .submit(&ask, "/reset", &[("email", "reset@example.org")])
        .await;
    let unknown = b
        .submit(&ask, "/reset", &[("email", "nobody@example.org")])
        .await;
    assert_eq!(known.status, StatusCode::OK, "{}", known.body);
    assert_eq!(known.status, unknown.status);
    assert_eq!(
        known.body.replace("reset@example.org", "X"),
        unknown.body.replace("nobody@example.org", "X"),
        "the answer does not tell whether an account has the address"
    );

    let code = code_in(&n.last_mail_to("reset@example.org").await.body);
    let new_password = "a brand new passphrase";
    let wrong = b
        .submit(
            &known,
            "/reset/confirm",
            &[
                ("email", "reset@example.org"),
                ("code", "00000000"),
                ("password", new_password),
            ],
        )
        .await;
    assert!(!wrong.status.is_success(), "{}", wrong.body);
    let done = b
        .submit(
            &known,
            "/reset/confirm",
            &[
                ("email", "reset@example.org"),
                ("code", &code),
                ("password", new_password),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        n.sign_in("reset@example.org", PASSWORD)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    n.sign_in("reset@example.org", new_password).await.unwrap();
    assert!(
        ended(&n, &before).await,
        "the sessions from before the reset ended"
    );
}

#[tokio::test]
async fn registration_pages_follow_the_mode() {
    let closed = TestNode::start_with(|c| c.accounts.registration = Registration::Closed).await;
    let page = Browser::new(&closed).get("/register").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("does not take new accounts"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<form"), "{}", page.body);
    let sign_in = Browser::new(&closed).get("/sign-in").await;
    assert!(!sign_in.body.contains("/register"));

    let invite = TestNode::start_with(|c| c.accounts.registration = Registration::Invite).await;
    let b = Browser::new(&invite);
    let form = b.get("/register").await;
    assert!(form.body.contains("Invite code"), "{}", form.body);
    let refused = b
        .submit(
            &form,
            "/register",
            &[
                ("name", "Eve"),
                ("email", "eve@example.org"),
                ("password", PASSWORD),
                ("invite", "nope"),
            ],
        )
        .await;
    assert!(!refused.status.is_success(), "{}", refused.body);
    assert!(refused.body.contains("role=\"alert\""), "{}", refused.body);
    assert!(
        refused.body.contains("value=\"eve@example.org\""),
        "the form keeps what was typed"
    );
    assert!(b.session().is_none());
}

#[tokio::test]
async fn the_account_page_ends_other_sessions() {
    let n = TestNode::start().await;
    let (first, _, _) = n.sign_up("many@example.org").await;
    let second = n.sign_in("many@example.org", PASSWORD).await.unwrap();
    let b = Browser::new(&n);
    b.sign_in("many@example.org").await;
    let mine = b.session().unwrap();
    let account = b.get("/account").await;
    assert_eq!(
        account.body.matches("End this").count(),
        2,
        "{}",
        account.body
    );

    // End one by its button, then all the others.
    let id = account.hidden("id");
    let after = b
        .submit(&account, "/account/sessions/end", &[("id", &id)])
        .await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert!(after.body.contains("The session has ended."));
    assert_eq!(after.body.matches("End this").count(), 1);
    let after = b.submit(&after, "/account/sessions/end-others", &[]).await;
    assert!(
        after.body.contains("Every other session has ended."),
        "{}",
        after.body
    );
    for t in [&first, &second] {
        assert!(ended(&n, t).await);
    }
    n.pong(Some(&format!("Bearer {mine}"))).await.unwrap();
}

#[tokio::test]
async fn changing_the_password_on_the_account_page() {
    let n = TestNode::start().await;
    let (other, _, _) = n.sign_up("pw@example.org").await;
    let b = Browser::new(&n);
    b.sign_in("pw@example.org").await;
    let account = b.get("/account").await;
    let wrong = b
        .submit(
            &account,
            "/account/password",
            &[
                ("current", "not it at all"),
                ("password", "another long passphrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);
    assert!(wrong.body.contains("BAD_CREDENTIALS"), "{}", wrong.body);
    assert!(
        b.session().is_some(),
        "a mistyped password does not sign the browser out"
    );
    let done = b
        .submit(
            &account,
            "/account/password",
            &[
                ("current", PASSWORD),
                ("password", "another long passphrase"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Your password is changed"));
    n.sign_in("pw@example.org", "another long passphrase")
        .await
        .unwrap();
    assert!(ended(&n, &other).await, "the other sessions ended");
}

#[tokio::test]
async fn page_sign_ins_draw_on_the_budget_grpc_sign_ins_use() {
    let n = TestNode::start_with(|c| c.accounts.sign_ins_per_ip_per_minute = 2).await;
    n.sign_up("budget@example.org").await;
    let b = Browser::new(&n);
    for _ in 0..2 {
        assert_eq!(b.sign_in("budget@example.org").await.location(), "/account");
    }
    let s = n.sign_in("budget@example.org", PASSWORD).await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    let page = b.sign_in("budget@example.org").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page.body.contains("IP_THROTTLED"), "{}", page.body);
}

#[tokio::test]
async fn an_outage_shows_as_try_again_without_internal_detail() {
    let n = TestNode::start().await;
    n.sign_up("down@example.org").await;
    let b = Browser::new(&n);
    let landing = b
        .get("/email/verify?email=down@example.org&code=12345678")
        .await;
    n.domain().store().close();
    let page = b.press_verify(&landing).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(page.body.contains("try again"), "{}", page.body);
    assert!(!page.body.contains("database is closed"), "{}", page.body);
}
