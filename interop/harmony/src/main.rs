//! Harmony's real client stack (`harmony_rust_sdk` 0.8.0 over `hrpc` 0.33.27, its hyper
//! transport) against a running `hearth serve`: Key; register, log in and a refused login
//! through BeginAuth/NextStep; StreamSteps opened before the first NextStep, mirroring every
//! step; CheckLoggedIn with the session; the SDK's register form order; a log-in that the
//! node asks for a second factor (set up over hRPC's tangle SetupTotp, codes made from its
//! `otpauth://` URL as an authenticator app does). Prints one line per check and
//! `harmony interop: N passed, M failed`; exits non-zero on a failure.
//!
//! Usage: hearth-interop-harmony http://127.0.0.1:7450 [FILE]
//! With FILE, the second-factor account's address, password and one unused recovery code are
//! written to it, one per line (scripts/test.sh walks the terminal client with them).
use std::time::{Duration, Instant};

use harmony_rust_sdk::api::auth::{
    auth_service_client::AuthServiceClient,
    auth_step::Step,
    next_step_request::{self, form_fields::Field, FormFields},
    AuthStep, BeginAuthRequest, CheckLoggedInRequest, KeyRequest, NextStepRequest, StepBackRequest,
    StreamStepsRequest,
};
use hrpc::client::transport::http::Hyper;

type Client = AuthServiceClient<Hyper>;
type Failure = String;

fn client(url: &str) -> Client {
    let uri = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
    AuthServiceClient::new_transport(Hyper::new(uri).unwrap_or_else(|e| panic!("{e}")))
}

fn choice(c: &str) -> Option<next_step_request::Step> {
    Some(next_step_request::Step::Choice(next_step_request::Choice {
        choice: c.to_owned(),
    }))
}

fn form(fields: Vec<Field>) -> Option<next_step_request::Step> {
    Some(next_step_request::Step::Form(next_step_request::Form {
        fields: fields
            .into_iter()
            .map(|f| FormFields { field: Some(f) })
            .collect(),
    }))
}

/// What the SDK's `AuthStepResponse::register_form(email, username, password)` sends: the
/// username first. (The helper lives in the SDK's `client` module, whose feature does not
/// build against crates.io's current releases of its dependencies, so its fields are
/// written out here in its order.)
fn sdk_register_form(email: &str, username: &str, password: &str) -> Vec<Field> {
    vec![
        Field::String(username.to_owned()),
        Field::String(email.to_owned()),
        Field::Bytes(password.as_bytes().to_vec()),
    ]
}

fn login_form(email: &str, password: &str) -> Vec<Field> {
    vec![
        Field::String(email.to_owned()),
        Field::Bytes(password.as_bytes().to_vec()),
    ]
}

async fn next(
    c: &mut Client,
    auth_id: &str,
    step: Option<next_step_request::Step>,
) -> Result<AuthStep, Failure> {
    let res = c
        .next_step(NextStepRequest {
            auth_id: auth_id.to_owned(),
            step,
        })
        .await
        .map_err(|e| format!("NextStep: {e:?}"))?;
    res.into_message()
        .await
        .map_err(|e| format!("NextStep body: {e:?}"))?
        .step
        .ok_or_else(|| "NextStep: no step".to_owned())
}

async fn begin(c: &mut Client) -> Result<String, Failure> {
    let res = c
        .begin_auth(BeginAuthRequest::default())
        .await
        .map_err(|e| format!("BeginAuth: {e:?}"))?;
    Ok(res
        .into_message()
        .await
        .map_err(|e| format!("BeginAuth body: {e:?}"))?
        .auth_id)
}

fn title(step: &AuthStep) -> String {
    match &step.step {
        Some(Step::Choice(c)) => format!("choice {}", c.title),
        Some(Step::Form(f)) => format!("form {}", f.title),
        Some(Step::Session(_)) => "session".to_owned(),
        Some(Step::Waiting(w)) => format!("waiting {}", w.title),
        None => "none".to_owned(),
    }
}

async fn key(url: &str) -> Result<String, Failure> {
    let res = client(url)
        .key(KeyRequest {})
        .await
        .map_err(|e| format!("{e:?}"))?;
    let key = res.into_message().await.map_err(|e| format!("{e:?}"))?.key;
    if key.len() != 32 {
        return Err(format!("the key has {} bytes, not 32", key.len()));
    }
    Ok("32-byte ed25519 key".to_owned())
}

/// Registers through the flow with StreamSteps open from the start; every step NextStep
/// returns must arrive on the stream within 5 s. Returns the session token.
async fn register_streaming(
    url: &str,
    email: &str,
    password: &str,
) -> Result<(String, String), Failure> {
    let mut c = client(url);
    let auth_id = begin(&mut c).await?;
    let mut socket = c
        .stream_steps(StreamStepsRequest {
            auth_id: auth_id.clone(),
        })
        .await
        .map_err(|e| format!("StreamSteps: {e:?}"))?;
    let mut seen = Vec::new();
    let first = next(&mut c, &auth_id, None).await?;
    seen.push(title(&first));
    let step = next(&mut c, &auth_id, choice("register")).await?;
    seen.push(title(&step));
    let fields = sdk_register_form(email, "sdkuser", password);
    let done = next(&mut c, &auth_id, form(fields)).await?;
    seen.push(title(&done));
    let Some(Step::Session(session)) = done.step else {
        return Err(format!("register ended at {}", title(&done)));
    };
    // The stream starts with the step the flow is at, then mirrors every change.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut streamed = Vec::new();
    while streamed.len() < seen.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, socket.receive_message())
            .await
            .map_err(|_| format!("StreamSteps sent {streamed:?} of {seen:?} in 5 s"))?
            .map_err(|e| format!("StreamSteps: {e:?}"))?;
        streamed.push(msg.step.as_ref().map(title).unwrap_or_default());
    }
    if streamed != seen {
        return Err(format!("streamed {streamed:?}, NextStep saw {seen:?}"));
    }
    Ok((
        session.session_token,
        format!("steps {seen:?}, all mirrored on StreamSteps"),
    ))
}

async fn login(url: &str, email: &str, password: &str) -> Result<AuthStep, Failure> {
    let mut c = client(url);
    let auth_id = begin(&mut c).await?;
    next(&mut c, &auth_id, None).await?;
    next(&mut c, &auth_id, choice("login")).await?;
    next(&mut c, &auth_id, form(login_form(email, password))).await
}

/// `tangle.client.auth.SetupTotp`, written from its wire contract (DESIGN.md §1): the
/// Harmony SDK has no settings service, so this is the one call made outside it.
#[derive(Clone, PartialEq, prost::Message)]
struct SetupTotp {
    #[prost(bool, tag = "1")]
    enabled: bool,
    #[prost(string, optional, tag = "2")]
    code: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Totp {
    #[prost(bool, tag = "1")]
    enabled: bool,
    #[prost(string, optional, tag = "2")]
    url: Option<String>,
    #[prost(message, repeated, tag = "3")]
    backup_codes: Vec<BackupCode>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BackupCode {
    #[prost(string, tag = "1")]
    code: String,
    #[prost(bool, tag = "2")]
    used: bool,
}

/// SetupTotp over hRPC with the SDK's own transport, the session in `authorization`.
async fn setup_totp(url: &str, token: &str, msg: SetupTotp) -> Result<Totp, Failure> {
    let uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let mut c = hrpc::client::Client::new(Hyper::new(uri).map_err(|e| format!("{e}"))?);
    let mut req = hrpc::Request::new(&msg);
    *req.endpoint_mut() = "/tangle.client.auth.Auth/SetupTotp".into();
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", token.parse().map_err(|e| format!("{e}"))?);
    req.extensions_mut().insert(headers);
    let res = c
        .execute_request::<SetupTotp, Totp>(req)
        .await
        .map_err(|e| format!("SetupTotp: {e:?}"))?;
    res.into_message()
        .await
        .map_err(|e| format!("SetupTotp body: {e:?}"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn is_second_factor_form(step: &AuthStep) -> bool {
    matches!(&step.step, Some(Step::Form(f))
        if f.title == "second-factor" && f.fields.len() == 1 && f.fields[0].r#type == "totp")
}

/// Registers, turns on TOTP, then logs in through the flow: the password form leads to the
/// `second-factor` form, a wrong code is refused and asks again, StepBack returns to the
/// password, and the next time step's code (inside the ±1 step window, after the one the
/// setup used) ends in a session. Returns the account and an unused recovery code.
async fn second_factor(
    url: &str,
    email: &str,
    password: &str,
) -> Result<(String, String), Failure> {
    let mut c = client(url);
    let auth_id = begin(&mut c).await?;
    next(&mut c, &auth_id, None).await?;
    next(&mut c, &auth_id, choice("register")).await?;
    let done = next(
        &mut c,
        &auth_id,
        form(sdk_register_form(email, "otpuser", password)),
    )
    .await?;
    let Some(Step::Session(session)) = done.step else {
        return Err(format!("register ended at {}", title(&done)));
    };
    let token = session.session_token;
    let asked = setup_totp(
        url,
        &token,
        SetupTotp {
            enabled: true,
            code: None,
        },
    )
    .await?;
    let link = asked
        .url
        .ok_or("SetupTotp{enabled} answered no otpauth:// URL")?;
    let app = totp_rs::TOTP::from_url(&link).map_err(|e| format!("{link}: {e:?}"))?;
    let now = unix_now();
    let confirm = SetupTotp {
        enabled: true,
        code: Some(app.generate(now)),
    };
    let on = setup_totp(url, &token, confirm).await?;
    if !on.enabled || on.backup_codes.len() != 10 {
        return Err(format!(
            "confirmed, but enabled={} with {} recovery codes",
            on.enabled,
            on.backup_codes.len()
        ));
    }

    let mut c = client(url);
    let auth_id = begin(&mut c).await?;
    next(&mut c, &auth_id, None).await?;
    next(&mut c, &auth_id, choice("login")).await?;
    let asked = next(&mut c, &auth_id, form(login_form(email, password))).await?;
    if !is_second_factor_form(&asked) {
        return Err(format!(
            "the password led to {}, not the second-factor form",
            title(&asked)
        ));
    }
    let valid: Vec<String> = [now - 30, now, now + 30, now + 60]
        .iter()
        .map(|t| app.generate(*t))
        .collect();
    let wrong = ["000000", "111111"]
        .into_iter()
        .find(|w| !valid.iter().any(|v| v == w))
        .unwrap_or("222222");
    match next(
        &mut c,
        &auth_id,
        form(vec![Field::String(wrong.to_owned())]),
    )
    .await
    {
        Err(e) if e.contains("hearth.BAD_CREDENTIALS") => {}
        Err(e) => {
            return Err(format!(
                "a wrong code was refused without BAD_CREDENTIALS: {e}"
            ))
        }
        Ok(step) => return Err(format!("a wrong code got {}", title(&step))),
    }
    let back = c
        .step_back(StepBackRequest {
            auth_id: auth_id.clone(),
        })
        .await
        .map_err(|e| format!("StepBack: {e:?}"))?
        .into_message()
        .await
        .map_err(|e| format!("StepBack body: {e:?}"))?;
    match back.step.as_ref().map(|s| &s.step) {
        Some(Some(Step::Form(f))) if f.title == "login" => {}
        _ => return Err("StepBack from the second factor did not return to login".to_owned()),
    }
    let again = next(&mut c, &auth_id, form(login_form(email, password))).await?;
    if !is_second_factor_form(&again) {
        return Err(format!(
            "the password led to {} the second time",
            title(&again)
        ));
    }
    let code = app.generate(now + 30);
    let done = next(&mut c, &auth_id, form(vec![Field::String(code)])).await?;
    let Some(Step::Session(s)) = done.step else {
        return Err(format!("the right code ended at {}", title(&done)));
    };
    check_logged_in(url, &s.session_token).await?;
    Ok((
        "password, then second-factor (type totp): a wrong code refused, StepBack, the next code signed in".to_owned(),
        on.backup_codes[0].code.clone(),
    ))
}

async fn check_logged_in(url: &str, token: &str) -> Result<String, Failure> {
    let mut req = hrpc::Request::new(&CheckLoggedInRequest {});
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", token.parse().map_err(|e| format!("{e}"))?);
    req.extensions_mut().insert(headers);
    client(url)
        .check_logged_in(req)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok("the session is accepted".to_owned())
}

async fn refused_without_session(url: &str) -> Result<String, Failure> {
    match client(url).check_logged_in(CheckLoggedInRequest {}).await {
        Ok(_) => Err("CheckLoggedIn without a session was accepted".to_owned()),
        Err(e) => {
            let text = format!("{e:?}");
            if text.contains("hearth.CREDENTIAL_MISSING") {
                Ok("refused with hearth.CREDENTIAL_MISSING".to_owned())
            } else {
                Err(format!("refused, but not as expected: {text}"))
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:7450".to_owned());
    let stamp = std::process::id();
    let email = format!("sdk{stamp}@example.org");
    let password = "correct horse battery staple";
    let mut results: Vec<(&str, Result<String, Failure>)> = Vec::new();

    results.push(("Key", key(&url).await));
    let registered = register_streaming(&url, &email, password).await;
    let token = registered.as_ref().ok().map(|(t, _)| t.clone());
    results.push((
        "register (SDK form order) with StreamSteps",
        registered.map(|(_, d)| d),
    ));
    let logged_in = match login(&url, &email, password).await {
        Ok(AuthStep {
            step: Some(Step::Session(s)),
            ..
        }) => Ok(format!("session for user {}", s.user_id)),
        Ok(other) => Err(format!("login ended at {}", title(&other))),
        Err(e) => Err(e),
    };
    results.push(("log in", logged_in));
    let refused = match login(&url, &email, "wrong password entirely").await {
        Ok(step) => Err(format!("a wrong password got {}", title(&step))),
        Err(e) if e.contains("hearth.") => Ok(e.chars().take(160).collect()),
        Err(e) => Err(format!("refused without a reason code: {e}")),
    };
    results.push(("refused login", refused));
    results.push((
        "CheckLoggedIn with the session",
        match token {
            Some(t) => check_logged_in(&url, &t).await,
            None => Err("no session to check".to_owned()),
        },
    ));
    results.push((
        "CheckLoggedIn without one",
        refused_without_session(&url).await,
    ));
    let otp_email = format!("sdk-otp{stamp}@example.org");
    let factor = second_factor(&url, &otp_email, password).await;
    if let (Ok((_, recovery)), Some(file)) = (&factor, std::env::args().nth(2)) {
        let lines = format!("{otp_email}\n{password}\n{recovery}\n");
        if let Err(e) = std::fs::write(&file, lines) {
            eprintln!("{file}: {e}");
        }
    }
    results.push(("log in with a second factor", factor.map(|(d, _)| d)));

    let mut failed = 0;
    for (name, r) in &results {
        match r {
            Ok(detail) => println!("ok   {name}: {detail}"),
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    println!(
        "harmony interop: {} passed, {failed} failed",
        results.len() - failed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
