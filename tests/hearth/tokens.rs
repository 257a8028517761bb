//! Issue: personal access tokens (tokens.v1) over real gRPC: the whole life of a token,
//! scopes enforced through the requirement table, TokenAuthorization, a reset that keeps
//! tokens and mails them, a disabled account, and the operator's CLI.
use hearth::clock::Clock;

use hearth::pb::tangle::client::auth as tangle;
use hearth::pb::tokens::v1::*;
use prost_types::Timestamp;
use tonic::Code;

use crate::support::*;

const DAY_MS: u64 = 24 * 3600 * 1000;

fn scopes(list: &[&str]) -> Option<TokenPermissions> {
    Some(TokenPermissions {
        scopes: list.iter().map(|s| s.to_string()).collect(),
    })
}

fn create(name: &str, list: &[&str]) -> CreateTokenRequest {
    CreateTokenRequest {
        token_metadata: Some(TokenMetadata {
            name: name.into(),
            expires_at: None,
        }),
        token_permissions: scopes(list),
    }
}

fn uuid(u: &str) -> Option<TokenUuid> {
    Some(TokenUuid { uuid: u.into() })
}

fn at(ms: u64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: 0,
    })
}

/// Creates a token with `list` as `caller`; returns (value, uuid).
/// Makes a token named `ci` with `list` (empty: the caller's scopes); (value, uuid).
pub(crate) async fn make(n: &TestNode, caller: &str, list: &[&str]) -> (String, String) {
    let r = n
        .tokens()
        .create_token(authed(create("ci", list), caller))
        .await
        .unwrap_or_else(|s| panic!("CreateToken: {s:?}"))
        .into_inner();
    (r.token_value.unwrap().token, r.token_uuid.unwrap().uuid)
}

async fn get(n: &TestNode, caller: &str, id: &str) -> Result<GetTokenResponse, tonic::Status> {
    n.tokens()
        .get_token(authed(
            GetTokenRequest {
                token_uuid: uuid(id),
            },
            caller,
        ))
        .await
        .map(|r| r.into_inner())
}

/// `credential` holds `sessions:read` but not `sessions:write`.
async fn reads_but_cannot_revoke_sessions(n: &TestNode, credential: &str) {
    n.tangle()
        .get_sessions(authed(tangle::GetSessions {}, credential))
        .await
        .unwrap();
    let r = n
        .tangle()
        .revoke_sessions(authed(
            tangle::RevokeSessions {
                session_ids: vec![1],
            },
            credential,
        ))
        .await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "CREDENTIAL_INSUFFICIENT",
        "`sessions:write`",
    );
}

#[tokio::test]
async fn a_token_lives_shows_its_use_and_dies_when_told() {
    let n = TestNode::start().await;
    let (session, _, _) = n.sign_up("pat@example.org").await;
    let created = n
        .tokens()
        .create_token(authed(create("laptop", &["tokens:read"]), &session))
        .await
        .unwrap()
        .into_inner();
    let value = created.token_value.unwrap().token;
    let id = created.token_uuid.unwrap().uuid;
    assert!(value.starts_with("hpat_"), "{value}");
    let expires = created.token_metadata.unwrap().expires_at.unwrap();
    let now_s = (n.clock.now_ms() / 1000) as i64;
    assert_eq!(expires.seconds - now_s, 30 * 86_400, "30 days by default");

    // Never shown again; never use-stamped before its first use.
    let got = get(&n, &session, &id).await.unwrap();
    assert_eq!(got.token_metadata.unwrap().name, "laptop");
    assert_eq!(got.token_permissions.unwrap().scopes, ["tokens:read"]);
    assert!(got.last_used_at.is_none() && got.last_used_ip.is_empty());

    // A use is recorded with the client IP, at most once a minute.
    n.pong(Some(&value)).await.unwrap();
    let first = get(&n, &value, &id).await.unwrap();
    assert_eq!(first.last_used_ip, "127.0.0.1");
    let stamped = first.last_used_at.unwrap().seconds;
    n.clock.advance_ms(30_000);
    n.pong(Some(&value)).await.unwrap();
    let again = get(&n, &session, &id).await.unwrap();
    assert_eq!(
        again.last_used_at.unwrap().seconds,
        stamped,
        "not within a minute"
    );
    n.clock.advance_ms(31_000);
    n.pong(Some(&value)).await.unwrap();
    let later = get(&n, &session, &id).await.unwrap();
    assert!(later.last_used_at.unwrap().seconds > stamped);

    // ListTokens streams it without a value.
    let mut stream = n
        .tokens()
        .list_tokens(authed((), &value))
        .await
        .unwrap()
        .into_inner();
    let listed = stream.message().await.unwrap().unwrap();
    assert_eq!(listed.token_uuid.unwrap().uuid, id);
    assert!(listed.created_at.is_some());
    assert!(stream.message().await.unwrap().is_none());

    // Update: a name and a later expiry, never past the maximum.
    let far = n.clock.now_ms() + 367 * DAY_MS;
    let r = n
        .tokens()
        .update_token(authed(
            UpdateTokenRequest {
                token_uuid: uuid(&id),
                token_metadata: Some(TokenMetadata {
                    name: String::new(),
                    expires_at: at(far),
                }),
                token_permissions: None,
            },
            &session,
        ))
        .await;
    assert_refused(r, Code::InvalidArgument, "FIELD_INVALID", "366 days");
    let updated = n
        .tokens()
        .update_token(authed(
            UpdateTokenRequest {
                token_uuid: uuid(&id),
                token_metadata: Some(TokenMetadata {
                    name: "laptop (2026)".into(),
                    expires_at: at(n.clock.now_ms() + 90 * DAY_MS),
                }),
                token_permissions: scopes(&["tokens:read", "sessions:read"]),
            },
            &session,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.token_metadata.unwrap().name, "laptop (2026)");
    assert_eq!(
        updated.token_permissions.unwrap().scopes,
        ["sessions:read", "tokens:read"]
    );

    // Regenerate: same uuid, name and scopes; the old value dies at once.
    let fresh = n
        .tokens()
        .regenerate_token(authed(
            RegenerateTokenRequest {
                token_uuid: uuid(&id),
            },
            &session,
        ))
        .await
        .unwrap()
        .into_inner()
        .token_value
        .unwrap()
        .token;
    assert_ne!(fresh, value);
    assert_refused(
        n.pong(Some(&value)).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_UNKNOWN",
        "regenerated",
    );
    let same = get(&n, &fresh, &id).await.unwrap();
    assert_eq!(same.token_metadata.unwrap().name, "laptop (2026)");

    // Forced expiry: refused at once, and an expired token cannot be updated.
    n.tokens()
        .force_token_expiration(authed(
            ForceTokenExpirationRequest {
                token_uuid: uuid(&id),
            },
            &session,
        ))
        .await
        .unwrap();
    assert_refused(
        n.pong(Some(&fresh)).await,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
        "expired",
    );
    let r = n
        .tokens()
        .update_token(authed(
            UpdateTokenRequest {
                token_uuid: uuid(&id),
                token_metadata: Some(TokenMetadata {
                    name: "revive".into(),
                    expires_at: None,
                }),
                token_permissions: None,
            },
            &session,
        ))
        .await;
    assert_refused(
        r,
        Code::FailedPrecondition,
        "TOKEN_EXPIRED",
        "RegenerateToken",
    );

    // A token also expires by time.
    let (short, _) = make(&n, &session, &["tokens:read"]).await;
    n.pong(Some(&short)).await.unwrap();
    n.clock.advance_ms(31 * DAY_MS);
    assert_refused(
        n.pong(Some(&short)).await,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
        "expired",
    );

    // Someone else's uuid, a malformed one, and no token at all.
    let (other, _, _) = n.sign_up("other-pat@example.org").await;
    assert_refused(
        get(&n, &other, &id).await,
        Code::NotFound,
        "ACCESS_TOKEN_UNKNOWN",
        "no personal access token of yours",
    );
    assert_refused(
        get(&n, &other, "nope").await,
        Code::InvalidArgument,
        "FIELD_INVALID",
        "uuid",
    );
}

#[tokio::test]
async fn scopes_bound_what_a_token_reaches_and_grants() {
    let n = TestNode::start().await;
    let (session, _, _) = n.sign_up("scopes@example.org").await;
    let (reader, _) = make(&n, &session, &["sessions:read"]).await;

    // It reaches what its scope allows, and nothing else.
    reads_but_cannot_revoke_sessions(&n, &reader).await;
    let r = n
        .tokens()
        .create_token(authed(create("x", &["sessions:read"]), &reader))
        .await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "CREDENTIAL_INSUFFICIENT",
        "`tokens:write`",
    );
    let r = n.accounts().refresh_session(authed((), &reader)).await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "CREDENTIAL_INSUFFICIENT",
        "session token",
    );

    // A token never mints or widens a token beyond its own scopes.
    let (minter, _) = make(
        &n,
        &session,
        &["tokens:write", "tokens:read", "sessions:read"],
    )
    .await;
    let r = n
        .tokens()
        .create_token(authed(
            create("wider", &["sessions:read", "federation"]),
            &minter,
        ))
        .await;
    assert_refused(r, Code::PermissionDenied, "SCOPE_NOT_HELD", "`federation`");
    let (narrow, narrow_id) = make(&n, &minter, &["sessions:read"]).await;
    n.tangle()
        .get_sessions(authed(tangle::GetSessions {}, &narrow))
        .await
        .unwrap();
    let r = n
        .tokens()
        .update_token(authed(
            UpdateTokenRequest {
                token_uuid: uuid(&narrow_id),
                token_metadata: None,
                token_permissions: scopes(&["sessions:read", "sessions:write"]),
            },
            &minter,
        ))
        .await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "SCOPE_NOT_HELD",
        "`sessions:write`",
    );
    // …nor regenerates a wider one (that would hand it the wider value).
    let (_, wide_id) = make(&n, &session, &["federation", "sessions:read"]).await;
    let r = n
        .tokens()
        .regenerate_token(authed(
            RegenerateTokenRequest {
                token_uuid: uuid(&wide_id),
            },
            &minter,
        ))
        .await;
    assert_refused(r, Code::PermissionDenied, "SCOPE_NOT_HELD", "`federation`");
    // …nor ends one that holds more than it (security review: a `tokens:write` token could
    // force-expire a full-scope one).
    let r = n
        .tokens()
        .force_token_expiration(authed(
            hearth::pb::tokens::v1::ForceTokenExpirationRequest {
                token_uuid: uuid(&wide_id),
            },
            &minter,
        ))
        .await;
    assert_refused(r, Code::PermissionDenied, "SCOPE_NOT_HELD", "`federation`");
    let r = n
        .tokens()
        .force_token_expiration(authed(
            hearth::pb::tokens::v1::ForceTokenExpirationRequest {
                token_uuid: uuid(&narrow_id),
            },
            &minter,
        ))
        .await;
    assert!(r.is_ok(), "a narrower token may be ended: {r:?}");

    // Unknown and missing scopes are named.
    let r = n
        .tokens()
        .create_token(authed(
            create("bad", &["tokens:read", "admin", "root"]),
            &session,
        ))
        .await;
    let s = assert_refused(r, Code::InvalidArgument, "SCOPE_UNKNOWN", "`admin`, `root`");
    assert!(
        s.message().contains("tokens:write"),
        "lists the real scopes: {s:?}"
    );
    // A seed client sends TokenPermissions empty: the token gets what its creator may do.
    let all = n
        .tokens()
        .create_token(authed(create("seed", &[]), &session))
        .await
        .unwrap()
        .into_inner();
    let mut got = all.token_permissions.unwrap().scopes;
    got.sort();
    let mut every: Vec<String> = hearth::domain::scopes::ScopeSet::ALL
        .names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    every.sort();
    assert_eq!(got, every);
    let narrow = n
        .tokens()
        .create_token(authed(
            create("narrow", &["tokens:read", "tokens:write"]),
            &session,
        ))
        .await
        .unwrap()
        .into_inner()
        .token_value
        .unwrap()
        .token;
    let derived = n
        .tokens()
        .create_token(authed(create("derived", &[]), &narrow))
        .await
        .unwrap()
        .into_inner();
    let mut got = derived.token_permissions.unwrap().scopes;
    got.sort();
    assert_eq!(got, ["tokens:read", "tokens:write"]);
    let r = n
        .tokens()
        .create_token(authed(create("", &["tokens:read"]), &session))
        .await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "FIELD_INVALID",
        "token_metadata.name",
    );
}

#[tokio::test]
async fn token_authorization_gives_a_session_with_the_tokens_scopes() {
    let n = TestNode::start().await;
    let (session, _, _) = n.sign_up("exchange@example.org").await;
    let (value, id) = make(&n, &session, &["sessions:read", "tokens:write"]).await;

    let res = n
        .accounts()
        .token_authorization(authed((), &value))
        .await
        .unwrap();
    let derived = bearer_in(&res);
    assert!(derived.starts_with("hs_"), "{derived}");

    // The session holds the token's scopes, no more.
    reads_but_cannot_revoke_sessions(&n, &derived).await;
    let r = n
        .tokens()
        .create_token(authed(
            create("wider", &["tokens:write", "federation"]),
            &derived,
        ))
        .await;
    assert_refused(r, Code::PermissionDenied, "SCOPE_NOT_HELD", "`federation`");

    // A session token is not exchanged; the derived session ends with its token.
    let r = n.accounts().token_authorization(authed((), &session)).await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "CREDENTIAL_INSUFFICIENT",
        "personal access token",
    );
    n.tokens()
        .regenerate_token(authed(
            RegenerateTokenRequest {
                token_uuid: uuid(&id),
            },
            &session,
        ))
        .await
        .unwrap();
    assert_refused(
        n.pong(Some(&derived)).await,
        Code::Unauthenticated,
        "SESSION_UNKNOWN",
        "revoked",
    );
}

#[tokio::test]
async fn a_reset_keeps_tokens_and_mails_them_and_disabling_refuses_both() {
    let n = TestNode::start().await;
    let email = "keeper@example.org";
    let (session, _, _) = n.sign_up(email).await;
    let (value, id) = make(&n, &session, &["tokens:read"]).await;

    n.tangle().reset_password(reset(email, None)).await.unwrap();
    let code = code_in(&n.last_mail_to(email).await.subject);
    n.tangle()
        .reset_password(reset(email, Some((&code, "a brand new passphrase 42"))))
        .await
        .unwrap();
    assert!(n.pong(Some(&session)).await.is_err(), "sessions end");
    n.pong(Some(&value)).await.expect("tokens survive a reset");
    let mail = n.last_mail_to(email).await;
    assert!(
        mail.subject.contains("password was changed"),
        "{}",
        mail.subject
    );
    assert!(
        mail.body.contains(&id) && mail.body.contains("ci"),
        "{}",
        mail.body
    );

    n.domain().operator.set_disabled(email, true).await.unwrap();
    assert_refused(
        n.pong(Some(&value)).await,
        Code::PermissionDenied,
        "ACCOUNT_DISABLED",
        "disabled",
    );
    n.domain()
        .operator
        .set_disabled(email, false)
        .await
        .unwrap();
    n.pong(Some(&value)).await.expect("enabled again");
}

#[tokio::test]
async fn a_token_with_a_bad_checksum_is_refused_before_any_read() {
    let n = TestNode::start().await;
    let (session, _, _) = n.sign_up("checksum@example.org").await;
    let (value, _) = make(&n, &session, &["tokens:read"]).await;
    let mut forged: Vec<char> = value.chars().collect();
    let i = forged.len() - 8; // inside the body, before the checksum
    forged[i] = if forged[i] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let reads = n.domain().store().reads();
    assert_refused(
        n.pong(Some(&forged)).await,
        Code::Unauthenticated,
        "CREDENTIAL_MALFORMED",
        "checksum",
    );
    assert_eq!(n.domain().store().reads(), reads, "no database read");
}

#[tokio::test]
async fn operators_list_and_revoke_tokens_from_the_cli() {
    let n = TestNode::start().await;
    let email = "cli-pat@example.org";
    let (session, _, _) = n.sign_up(email).await;
    let (value, id) = make(&n, &session, &["tokens:read", "sessions:read"]).await;
    let listed = hearth(&n, &["token", "list", "--email", email]);
    assert!(
        listed.contains(&id) && listed.contains("sessions:read"),
        "{listed}"
    );
    assert!(!listed.contains(&value[5..]), "never the value");
    let json = hearth(&n, &["token", "list", "--email", email, "--json"]);
    assert!(json.contains(&format!("\"uuid\":\"{id}\"")), "{json}");
    hearth(&n, &["token", "revoke", &id]);
    // The CLI is another process: the node notices within its cache's 5 s.
    n.clock.advance_ms(6_000);
    assert_refused(
        n.pong(Some(&value)).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_UNKNOWN",
        "revoked",
    );
}

fn hearth(n: &TestNode, args: &[&str]) -> String {
    ok(n.cli(args)).trim().to_owned()
}

/// Security review: one personal access token minted 3,000 sessions in 3.4 s through
/// TokenAuthorization. Each call makes a session, a write: it is charged to the client's
/// `session` budget, like RefreshSession.
#[tokio::test]
async fn token_authorization_is_charged_to_the_session_budget() {
    let n = TestNode::start_with(|c| c.limits.session_calls_per_ip_per_minute = 5).await;
    let (session, _, _) = n.sign_up("mint@example.org").await;
    let (value, _) = make(&n, &session, &["sessions:read"]).await;
    let mut made = 0;
    let mut refused = None;
    for _ in 0..20 {
        match n.accounts().token_authorization(authed((), &value)).await {
            Ok(_) => made += 1,
            Err(s) => {
                refused = Some(s);
                break;
            }
        }
    }
    assert_eq!(made, 5);
    let s = refused.expect("the sixth is refused");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::ResourceExhausted, "IP_THROTTLED")
    );
    assert!(s.message().contains("session"), "{s:?}");
}
