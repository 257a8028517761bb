//! The pages in a real browser: headless Chromium (installed by
//! scripts/install-test-deps.sh) driven over the Chrome DevTools Protocol, as a person would
//! use them, on a phone's width and a desktop's: register, see the account, sign out,
//! sign in. The browser also shows what only
//! a browser can: the session cookie is invisible to script, and the Content-Security-Policy
//! stops a script injected into a page.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium and one tab, killed when dropped.
struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    socket: Socket,
    session: String,
    next: u64,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chromium {
    async fn launch() -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("chromium (installed by scripts/install-test-deps.sh)");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let url = tokio::task::spawn_blocking(move || {
            let mut lines = stderr.lines();
            let url = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|l| l.split("DevTools listening on ").nth(1).map(str::to_owned));
            // Keep draining, so Chromium never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            url
        })
        .await
        .unwrap()
        .expect("Chromium's DevTools address");
        let (socket, _) = tokio_tungstenite::connect_async(url.trim()).await.unwrap();
        let mut c = Chromium {
            child,
            _profile: profile,
            socket,
            session: String::new(),
            next: 0,
        };
        let target = c
            .send("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = c
            .send(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        c.session = attached["sessionId"].as_str().unwrap().to_owned();
        c
    }

    /// Sends a command (to the tab once attached) and waits for its answer.
    async fn send(&mut self, method: &str, params: Value) -> Value {
        let v = self.send_raw(method, params).await;
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    /// [`Chromium::send`]'s whole answer, an error included.
    async fn send_raw(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(msg.to_string()))
            .await
            .unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .unwrap()
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == json!(id) {
                return v;
            }
        }
    }

    /// The value of `js` in the page (a promise is awaited); `None` if it threw or the page
    /// was going away.
    async fn eval(&mut self, js: &str) -> Option<Value> {
        // While the tab navigates, an evaluation may fail: that is a `None` too.
        let r = self
            .send_raw(
                "Runtime.evaluate",
                json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        let r = r.get("result")?;
        r.get("exceptionDetails")
            .is_none()
            .then(|| r["result"]["value"].clone())
    }

    /// Waits until a new page (not the one [`Chromium::press`] marked) at `path` has loaded.
    async fn at(&mut self, path: &str) {
        let started = Instant::now();
        loop {
            let now = self
                .eval("window.left ? 'the old page' : [location.pathname, document.readyState].join(' ')")
                .await;
            if now == Some(json!(format!("{path} complete"))) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "never reached {path}: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn open(&mut self, url: &str, path: &str) {
        self.send("Page.navigate", json!({"url": url})).await;
        self.at(path).await;
    }

    /// Types `value` into the field labelled by id `f-<name>`.
    async fn fill(&mut self, name: &str, value: &str) {
        let js = format!(
            "document.getElementById('f-{name}').value = {}; true",
            json!(value)
        );
        assert_eq!(self.eval(&js).await, Some(json!(true)), "no field {name}");
    }

    /// Presses the button labelled `label` and waits for `path`.
    async fn press(&mut self, label: &str, path: &str) {
        let js = format!(
            "(() => {{ const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === {}); if (!b) return false; b.click(); return true; }})()",
            json!(label)
        );
        self.eval("window.left = true").await;
        assert_eq!(self.eval(&js).await, Some(json!(true)), "no button {label}");
        self.at(path).await;
    }

    /// Whether the page fits its viewport's width (nothing to scroll sideways).
    async fn fits(&mut self) -> bool {
        self.eval("document.documentElement.scrollWidth <= window.innerWidth")
            .await
            == Some(json!(true))
    }

    /// A phone's viewport (375 CSS pixels wide), or none.
    async fn phone(&mut self, on: bool) {
        if on {
            let phone =
                json!({"width": 375, "height": 740, "deviceScaleFactor": 2, "mobile": true});
            self.send("Emulation.setDeviceMetricsOverride", phone).await;
        } else {
            self.send("Emulation.clearDeviceMetricsOverride", json!({}))
                .await;
        }
    }

    async fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .await
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium (bash scripts/test.sh installs it)"]
async fn a_person_registers_signs_out_and_signs_in_again_in_chromium() {
    let n = TestNode::start().await;
    let mut c = Chromium::launch().await;
    c.phone(true).await;
    c.open(&format!("{}/", n.url()), "/sign-in").await;
    assert!(c.fits().await, "the sign-in page fits a phone");
    c.open(&format!("{}/register", n.url()), "/register").await;
    assert!(c.fits().await, "the register page fits a phone");
    c.fill("name", "Grace").await;
    c.fill("email", "grace@example.org").await;
    c.fill("password", PASSWORD).await;
    c.press("Create account", "/account").await;
    let page = c.text().await;
    assert!(page.contains("grace@example.org"), "{page}");
    assert!(page.contains("(this browser)"), "{page}");
    assert!(c.fits().await, "the account page fits a phone");
    for path in ["/account/second-factor", "/account/tokens"] {
        c.open(&format!("{}{path}", n.url()), path).await;
        assert!(c.fits().await, "{path} fits a phone");
    }
    // (The check can fail: a page made too wide for a phone does.)
    let widen = "(() => { const d = document.createElement('div'); d.style.width = '2000px'; d.style.height = '1px'; document.body.append(d); return true; })()";
    assert_eq!(c.eval(widen).await, Some(json!(true)));
    assert!(!c.fits().await);
    c.phone(false).await;
    c.open(&format!("{}/account", n.url()), "/account").await;
    assert!(c.fits().await);

    // The session cookie is the browser's, not the page's scripts'.
    assert_eq!(c.eval("document.cookie").await, Some(json!("")));
    // A script injected into the page does not run: the CSP allows none.
    let injected = "(() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1'; document.body.appendChild(s); return window.injected === undefined; })()";
    assert_eq!(c.eval(injected).await, Some(json!(true)));

    c.press("Sign out", "/sign-in").await;
    c.open(&format!("{}/account", n.url()), "/sign-in").await;
    c.fill("email", "grace@example.org").await;
    c.fill("password", "not the password").await;
    c.press("Sign in", "/sign-in").await;
    let page = c.text().await;
    assert!(page.contains("BAD_CREDENTIALS"), "{page}");
    c.fill("password", PASSWORD).await;
    c.press("Sign in", "/account").await;
    assert!(c.text().await.contains("grace@example.org"));
}

/// A node whose public URL names `localhost` (a passkey is bound to a domain name; an IP
/// address names no relying party), on a port picked here.
async fn passkey_node() -> (TestNode, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://localhost:{port}");
    let public = url.clone();
    let n = TestNode::start_with(move |c| {
        c.listen.addr = format!("127.0.0.1:{port}").parse().unwrap();
        c.mail.public_url = Some(public);
    })
    .await;
    (n, url)
}

impl Chromium {
    /// A platform authenticator that keeps discoverable credentials and verifies its user
    /// (Chromium's WebAuthn domain): it answers every ceremony at once.
    async fn authenticator(&mut self) -> String {
        self.send("WebAuthn.enable", json!({})).await;
        let options = json!({"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
            "hasUserVerification": true, "isUserVerified": true,
            "automaticPresenceSimulation": true}});
        let r = self.send("WebAuthn.addVirtualAuthenticator", options).await;
        r["authenticatorId"].as_str().unwrap_or_default().to_owned()
    }

    /// Presses the ceremony button (type=button: the script posts the form) and waits for
    /// `path`.
    async fn use_passkey(&mut self, label: &str, path: &str) {
        self.press_no_wait(label).await;
        self.at(path).await;
    }

    async fn press_no_wait(&mut self, label: &str) {
        let js = format!(
            "(() => {{ const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === {}); if (!b) return false; b.click(); return true; }})()",
            json!(label)
        );
        self.eval("window.left = true").await;
        assert_eq!(self.eval(&js).await, Some(json!(true)), "no button {label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium (bash scripts/test.sh installs it)"]
async fn a_person_adds_a_passkey_and_signs_in_with_it_alone_and_after_the_password() {
    let (n, url) = passkey_node().await;
    let mut c = Chromium::launch().await;
    let authenticator = c.authenticator().await;
    assert!(!authenticator.is_empty(), "no virtual authenticator");
    c.open(&format!("{url}/register"), "/register").await;
    c.fill("name", "Ada").await;
    c.fill("email", "ada@example.org").await;
    c.fill("password", PASSWORD).await;
    c.press("Create account", "/account").await;

    // Add a passkey, named.
    c.open(&format!("{url}/account/passkeys"), "/account/passkeys")
        .await;
    assert!(c.text().await.contains("You have no passkeys"));
    c.fill("name", "laptop").await;
    c.press("Add a passkey", "/account/passkeys/add").await;
    c.use_passkey("Create the passkey", "/account/passkeys/finish")
        .await;
    let page = c.text().await;
    assert!(page.contains("Passkey \"laptop\" added"), "{page}");
    let creds = c
        .send(
            "WebAuthn.getCredentials",
            json!({"authenticatorId": authenticator}),
        )
        .await;
    let creds = creds["credentials"].as_array().cloned().unwrap_or_default();
    assert_eq!(creds.len(), 1, "{creds:?}");
    assert_eq!(
        creds[0]["isResidentCredential"],
        json!(true),
        "a discoverable passkey"
    );

    // Signed out, the passkey alone signs in: no address, no password.
    c.open(&format!("{url}/account"), "/account").await;
    c.press("Sign out", "/sign-in").await;
    c.press("Sign in with a passkey", "/sign-in/passkey").await;
    c.use_passkey("Use your passkey", "/account").await;
    assert!(c.text().await.contains("ada@example.org"));
    let user = n
        .domain()
        .accounts
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.email.as_deref() == Some("ada@example.org"))
        .unwrap();
    let amrs = |n: &TestNode| {
        let store = n.domain().store().clone();
        async move {
            let id = user.id;
            store
                .read(move |tx| Ok::<_, hearth::domain::DomainError>(tx.sessions_of(id)?))
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.amr)
                .collect::<Vec<_>>()
        }
    };
    let listed = amrs(&n).await;
    assert!(listed.iter().any(|a| a == "passkey"), "{listed:?}");

    // With a passkey, a password alone no longer signs in: the passkey is its second step.
    c.open(&format!("{url}/account"), "/account").await;
    c.press("Sign out", "/sign-in").await;
    c.fill("email", "ada@example.org").await;
    c.fill("password", PASSWORD).await;
    c.press("Sign in", "/sign-in").await;
    assert!(c.text().await.contains("passkey after the password"));
    c.press("Use your passkey", "/sign-in/passkey").await;
    c.use_passkey("Use your passkey", "/account").await;
    let listed = amrs(&n).await;
    assert!(listed.iter().any(|a| a == "pwd passkey"), "{listed:?}");
    let err = n.sign_in("ada@example.org", PASSWORD).await.unwrap_err();
    assert_eq!(reason(&err), "SECOND_FACTOR_REQUIRED");

    // A Harmony client cannot run WebAuthn: its flow waits, with a fallback_url to the page
    // that finishes the step; the client then gets the session, the page does not.
    {
        use hearth::pb::protocol::auth::v1::{
            auth_service_client::AuthServiceClient,
            auth_step::Step as S,
            next_step_request::{form_fields::Field, Choice, Form, FormFields, Step as Answer},
            BeginAuthRequest, NextStepRequest,
        };
        let mut h = AuthServiceClient::new(n.channel.clone());
        let id = h
            .begin_auth(BeginAuthRequest::default())
            .await
            .unwrap()
            .into_inner()
            .auth_id;
        let next = |step: Option<Answer>| {
            let (mut h, id) = (h.clone(), id.clone());
            async move {
                let r = h.next_step(NextStepRequest { auth_id: id, step }).await;
                r.unwrap().into_inner().step.unwrap()
            }
        };
        next(Some(Answer::Choice(Choice {
            choice: "login".into(),
        })))
        .await;
        let fields = vec![
            FormFields {
                field: Some(Field::String("ada@example.org".into())),
            },
            FormFields {
                field: Some(Field::Bytes(PASSWORD.as_bytes().to_vec())),
            },
        ];
        let step = next(Some(Answer::Form(Form { fields }))).await;
        assert!(
            matches!(&step.step, Some(S::Waiting(w)) if w.title == "second-factor"),
            "{step:?}"
        );
        assert!(
            step.fallback_url
                .starts_with(&format!("{url}/sign-in/passkey?handoff=")),
            "{step:?}"
        );
        c.open(&step.fallback_url, "/sign-in/passkey").await;
        c.press("Continue with a passkey", "/sign-in/passkey").await;
        c.use_passkey("Use your passkey", "/sign-in/passkey/finish")
            .await;
        assert!(c.text().await.contains("Go back to your app"));
        let done = next(None).await;
        let Some(S::Session(s)) = done.step else {
            panic!("{done:?}")
        };
        assert!(n.pong(Some(&s.session_token)).await.is_ok());
        // The handoff is spent: the page cannot answer the step again.
        c.open(&step.fallback_url, "/sign-in/passkey").await;
        c.press("Continue with a passkey", "/sign-in/passkey").await;
        assert!(
            c.text().await.contains("FLOW_UNKNOWN"),
            "{}",
            c.text().await
        );
    }

    // Removed, the passkey signs in no more, and the password alone does again.
    c.open(&format!("{url}/account/passkeys"), "/account/passkeys")
        .await;
    assert!(c.text().await.contains("laptop"));
    c.press("Remove", "/account/passkeys/remove").await;
    assert!(c.text().await.contains("You have no passkeys"));
    c.open(&format!("{url}/account"), "/account").await;
    c.press("Sign out", "/sign-in").await;
    c.press("Sign in with a passkey", "/sign-in/passkey").await;
    c.use_passkey("Use your passkey", "/sign-in/passkey/finish")
        .await;
    assert!(c.text().await.contains("PASSKEY_INVALID"));
    assert!(n.sign_in("ada@example.org", PASSWORD).await.is_ok());

    // The operator lists and removes passkeys (a lost device).
    c.open(&format!("{url}/sign-in"), "/sign-in").await;
    c.fill("email", "ada@example.org").await;
    c.fill("password", PASSWORD).await;
    c.press("Sign in", "/account").await;
    c.open(&format!("{url}/account/passkeys"), "/account/passkeys")
        .await;
    c.fill("name", "phone").await;
    c.press("Add a passkey", "/account/passkeys/add").await;
    c.use_passkey("Create the passkey", "/account/passkeys/finish")
        .await;
    let listed = ok(n.cli(&["user", "passkeys", "ada@example.org"]));
    assert!(
        listed.contains("phone") && !listed.contains("laptop"),
        "{listed}"
    );
    let id = listed
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    ok(n.cli(&["user", "passkeys", "ada@example.org", "remove", &id]));
    let listed = ok(n.cli(&["user", "passkeys", "ada@example.org"]));
    assert!(listed.contains("no passkeys"), "{listed}");
}
