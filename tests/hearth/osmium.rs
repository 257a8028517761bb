//! The Osmium socket (DESIGN.md §1), driven by a client written here from the field numbers
//! of the design (no Osmium client is installable): one WebSocket, binary ClientMessage
//! and ServerMessage envelopes, the session bound to the socket.
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use prost::Message;
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::support::*;
use hearth::pb::tangle::client::auth as tangle;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Initialize {
    #[prost(uint32, tag = "1")]
    pub client_id: u32,
    #[prost(string, tag = "2")]
    pub device_type: String,
    #[prost(string, tag = "3")]
    pub device_version: String,
    #[prost(string, tag = "4")]
    pub app_version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientMessage {
    #[prost(uint32, tag = "1")]
    pub id: u32,
    #[prost(
        oneof = "Member",
        tags = "2, 3, 5, 15, 19, 20, 41, 42, 46, 75, 76, 77, 83, 85"
    )]
    pub message: Option<Member>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Member {
    #[prost(message, tag = "2")]
    SignIn(tangle::SignIn),
    #[prost(message, tag = "3")]
    SignUp(tangle::SignUp),
    /// A chat call (`core_...`), which Hearth does not serve.
    #[prost(bytes, tag = "5")]
    Chat(Vec<u8>),
    #[prost(message, tag = "15")]
    LookupInvite(tangle::LookupInvite),
    #[prost(message, tag = "19")]
    Initialize(Initialize),
    #[prost(message, tag = "20")]
    Authorize(tangle::Authorize),
    #[prost(message, tag = "41")]
    GetSessions(tangle::GetSessions),
    #[prost(message, tag = "42")]
    RevokeSessions(tangle::RevokeSessions),
    #[prost(message, tag = "46")]
    VerifyEmail(tangle::VerifyEmail),
    #[prost(message, tag = "75")]
    GetAccount(tangle::GetAccount),
    #[prost(message, tag = "76")]
    ChangePassword(tangle::ChangePassword),
    #[prost(message, tag = "77")]
    ChangeEmail(tangle::ChangeEmail),
    #[prost(message, tag = "83")]
    SetupTotp(tangle::SetupTotp),
    #[prost(message, tag = "85")]
    DeleteAccount(tangle::DeleteAccount),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerMessage {
    #[prost(uint32, tag = "1")]
    pub id: u32,
    #[prost(message, optional, tag = "3")]
    pub result: Option<RpcResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcResult {
    #[prost(uint32, tag = "1")]
    pub req_id: u32,
    #[prost(string, optional, tag = "37")]
    pub trace_id: Option<String>,
    #[prost(oneof = "Answer", tags = "2, 4, 14, 19, 23, 32, 36")]
    pub result: Option<Answer>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Answer {
    #[prost(message, tag = "2")]
    Error(RpcError),
    #[prost(message, tag = "4")]
    Authorization(tangle::Authorization),
    #[prost(message, tag = "14")]
    Initialized(Initialized),
    #[prost(message, tag = "19")]
    Sessions(tangle::Sessions),
    #[prost(message, tag = "23")]
    InvitePreview(tangle::InvitePreview),
    #[prost(message, tag = "32")]
    Account(tangle::Account),
    #[prost(message, tag = "36")]
    Totp(tangle::Totp),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcError {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Initialized {
    #[prost(message, optional, tag = "1")]
    pub entrypoints: Option<Entrypoints>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Entrypoints {
    #[prost(message, repeated, tag = "1")]
    pub entrypoints: Vec<Entrypoint>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Entrypoint {
    #[prost(string, tag = "1")]
    pub hostname: String,
    #[prost(uint32, tag = "3")]
    pub port: u32,
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Osmium {
    pub ws: Stream,
    next: u32,
}

impl Osmium {
    pub async fn connect(n: &TestNode) -> Self {
        let url = n.url().replace("http://", "ws://") + "/";
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Osmium { ws, next: 0 }
    }

    pub async fn send(&mut self, m: Option<Member>) -> u32 {
        self.next += 1;
        let msg = ClientMessage {
            id: self.next,
            message: m,
        };
        self.ws
            .send(Ws::Binary(msg.encode_to_vec().into()))
            .await
            .unwrap();
        self.next
    }

    /// The next ServerMessage's result (None when the socket closed first).
    pub async fn recv(&mut self) -> Option<RpcResult> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await {
                Ok(Some(Ok(Ws::Binary(b)))) => {
                    return ServerMessage::decode(&b[..]).unwrap().result;
                }
                Ok(Some(Ok(Ws::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Sends `m` and returns its answer (`None`: `()`), or the RPCError.
    pub async fn call(&mut self, m: Member) -> Result<Option<Answer>, RpcError> {
        let id = self.send(Some(m)).await;
        let r = self.recv().await.expect("an answer");
        assert_eq!(r.req_id, id);
        match r.result {
            Some(Answer::Error(e)) => Err(e),
            other => Ok(other),
        }
    }
}

fn sign_up(email: &str) -> Member {
    Member::SignUp(tangle::SignUp {
        email: Some(email.into()),
        password: Some(PASSWORD.into()),
        name: "Osmium".into(),
        invite_code: None,
    })
}

fn sign_in(email: &str, password: &str) -> Member {
    Member::SignIn(tangle::SignIn {
        email: email.into(),
        password: password.into(),
        totp: None,
    })
}

fn authorization(a: Result<Option<Answer>, RpcError>) -> tangle::Authorization {
    match a {
        Ok(Some(Answer::Authorization(a))) => a,
        other => panic!("not an Authorization: {other:?}"),
    }
}

fn sessions(a: Result<Option<Answer>, RpcError>) -> tangle::Sessions {
    match a {
        Ok(Some(Answer::Sessions(s))) => s,
        other => panic!("not Sessions: {other:?}"),
    }
}

#[tokio::test]
async fn an_osmium_client_signs_up_signs_in_authorizes_and_manages_sessions() {
    let n = TestNode::start().await;
    let mut a = Osmium::connect(&n).await;

    // Initialize names the device and answers where to connect.
    let init = a
        .call(Member::Initialize(Initialize {
            client_id: 7,
            device_type: "desktop".into(),
            device_version: "linux".into(),
            app_version: "1.2.3".into(),
        }))
        .await;
    let Ok(Some(Answer::Initialized(init))) = init else {
        panic!("{init:?}")
    };
    let entry = &init.entrypoints.unwrap().entrypoints[0];
    assert_eq!(entry.port, n.running().addr().port() as u32);

    // SignUp binds its session: GetSessions on the socket works without sending a token.
    let signed_up = authorization(a.call(sign_up("os@example.org")).await);
    assert!(n.pong(Some(&signed_up.token)).await.is_ok());
    let s = sessions(a.call(Member::GetSessions(tangle::GetSessions {})).await);
    assert_eq!(s.current, signed_up.session_id);
    let mine = s.sessions.iter().find(|x| x.id == s.current).unwrap();
    assert_eq!((mine.client_id, mine.device_type.as_str()), (7, "desktop"));

    // A second socket: refused until it authorizes with the token.
    let mut b = Osmium::connect(&n).await;
    let e = b
        .call(Member::GetSessions(tangle::GetSessions {}))
        .await
        .unwrap_err();
    assert_eq!(e.error_code, 16, "{e:?}");
    assert!(e.error_message.starts_with("CREDENTIAL_MISSING: "), "{e:?}");
    let authorized = authorization(
        b.call(Member::Authorize(tangle::Authorize {
            token: signed_up.token.clone(),
        }))
        .await,
    );
    assert_eq!(authorized.session_id, signed_up.session_id);
    assert!(b
        .call(Member::GetSessions(tangle::GetSessions {}))
        .await
        .is_ok());

    // A wrong password: the same refusal as over gRPC.
    let mut c = Osmium::connect(&n).await;
    let e = c
        .call(sign_in("os@example.org", "not the password at all"))
        .await
        .unwrap_err();
    let grpc = n
        .sign_in("os@example.org", "not the password at all")
        .await
        .unwrap_err();
    assert_eq!(e.error_code, grpc.code() as u32);
    assert_eq!(
        e.error_message,
        format!("{}: {}", reason(&grpc), grpc.message())
    );
    // SignIn on c binds a second session; revoke the first from c.
    let second = authorization(c.call(sign_in("os@example.org", PASSWORD)).await);
    assert_ne!(second.session_id, signed_up.session_id);
    let revoked = c
        .call(Member::RevokeSessions(tangle::RevokeSessions {
            session_ids: vec![signed_up.session_id],
        }))
        .await;
    assert!(matches!(revoked, Ok(None)), "{revoked:?}");
    // Sockets a and b held the revoked session: their next call is refused.
    let e = a
        .call(Member::GetSessions(tangle::GetSessions {}))
        .await
        .unwrap_err();
    assert_eq!(e.error_code, 16, "{e:?}");
    let e = b
        .call(Member::GetSessions(tangle::GetSessions {}))
        .await
        .unwrap_err();
    assert_eq!(e.error_code, 16, "{e:?}");
    assert!(c
        .call(Member::GetSessions(tangle::GetSessions {}))
        .await
        .is_ok());
}

#[tokio::test]
async fn chat_calls_get_an_rpc_error_heartbeats_nothing_and_pings_a_pong() {
    let n = TestNode::start().await;
    let mut s = Osmium::connect(&n).await;
    let e = s.call(Member::Chat(vec![1, 2, 3])).await.unwrap_err();
    assert_eq!(e.error_code, 12, "UNIMPLEMENTED: {e:?}");
    // A heartbeat is not answered: the next answer is the next call's.
    s.send(None).await;
    let id = s
        .send(Some(Member::LookupInvite(tangle::LookupInvite {
            code: "nope".into(),
        })))
        .await;
    let r = s.recv().await.unwrap();
    assert_eq!(r.req_id, id);
    assert!(r.trace_id.is_some_and(|t| t.len() == 16));
    // WebSocket pings are answered.
    s.ws.send(Ws::Ping(b"hi".to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), s.ws.next())
        .await
        .unwrap();
    assert!(matches!(pong, Some(Ok(Ws::Pong(p))) if &p[..] == b"hi"));
    // The socket still serves.
    assert!(s.call(Member::Chat(Vec::new())).await.is_err());
}

#[tokio::test]
async fn garbage_frames_are_refused_and_a_flood_closes_the_socket_not_the_node() {
    // A budget of 2 frames a second (6 at once), so the flood outruns it however slowly the
    // node reads.
    let n = TestNode::start_with(|c| c.limits.socket_frames_per_second = 2).await;
    let mut s = Osmium::connect(&n).await;
    s.ws.send(Ws::Binary(vec![0xff, 0xff, 0xff].into()))
        .await
        .unwrap();
    let r = s.recv().await.unwrap();
    let Some(Answer::Error(e)) = r.result else {
        panic!("{r:?}")
    };
    assert!(e.error_message.starts_with("FRAME_INVALID"), "{e:?}");
    s.ws.send(Ws::Text("hello".into())).await.unwrap();
    assert!(matches!(
        s.recv().await.unwrap().result,
        Some(Answer::Error(_))
    ));

    // 10,000 garbage frames over several sockets: each socket is closed once it spends its
    // frame budget, the node keeps serving others.
    let mut sent = 0;
    let mut closed = 0;
    while sent < 10_000 {
        let mut s = Osmium::connect(&n).await;
        loop {
            if s.ws.send(Ws::Binary(vec![0x0a; 64].into())).await.is_err() {
                break;
            }
            sent += 1;
            if sent % 250 == 0 || sent >= 10_000 {
                break;
            }
        }
        // Read until the node closes the socket (or it is still within budget).
        let mut answers = 0;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(2), s.ws.next()).await
        {
            match m {
                Ws::Close(Some(f)) => {
                    assert_eq!(u16::from(f.code), 1008);
                    closed += 1;
                    break;
                }
                Ws::Binary(_) => answers += 1,
                _ => {}
            }
        }
        assert!(answers <= 30, "{answers} answers on one socket");
    }
    assert!(closed >= 40, "{closed} sockets closed for flooding");
    assert!(n.pong(None).await.is_err());
    let mut fresh = Osmium::connect(&n).await;
    assert!(fresh.call(sign_up("after@example.org")).await.is_ok());
}

#[tokio::test]
async fn a_thousand_idle_sockets_are_held_then_closed_and_others_are_served() {
    let n = TestNode::start_with(|c| c.limits.idle_timeout_secs = 2).await;
    let mut held = Vec::new();
    for _ in 0..1000 {
        held.push(Osmium::connect(&n).await);
    }
    let mut other = Osmium::connect(&n).await;
    assert!(other.call(sign_up("busy@example.org")).await.is_ok());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut closed = 0;
    for s in &mut held {
        if s.recv().await.is_none() {
            closed += 1;
        }
    }
    assert_eq!(closed, 1000, "idle sockets are closed");
}

#[tokio::test]
async fn protobufjs_decodes_a_group_invite_preview_with_the_real_osmium_types() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/osmium/decode.mjs");
    let modules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/osmium/node_modules/protobufjs"
    );
    assert!(
        std::path::Path::new(modules).exists(),
        "protobufjs is not installed: run `bash scripts/install-test-deps.sh` (the README's test command does)"
    );
    let n = TestNode::start().await;
    let (owner, _, owner_id) = n.sign_up("g@example.org").await;
    let group = n
        .domain()
        .invites
        .create_place(
            hearth::domain::model::InviteTarget::Group,
            "Readers",
            owner_id,
        )
        .await
        .unwrap();
    let code = n
        .tangle()
        .create_invite(authed(
            tangle::CreateInvite {
                target_type: tangle::InviteType::Group as i32,
                target_id: group,
                expires_at: None,
                max_uses: None,
            },
            &owner,
        ))
        .await
        .unwrap()
        .into_inner()
        .code;
    // Over the socket, as an Osmium client asks, signed in as the owner.
    let mut s = Osmium::connect(&n).await;
    authorization(s.call(sign_in("g@example.org", PASSWORD)).await);
    let preview = match s
        .call(Member::LookupInvite(tangle::LookupInvite { code }))
        .await
    {
        Ok(Some(Answer::InvitePreview(p))) => p,
        other => panic!("{other:?}"),
    };
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(hex::encode(preview.encode_to_vec()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["chat"]["owner"], true, "{text}");
    assert_eq!(json["chat"]["name"], "Readers", "{text}");
    assert_eq!(json["chat"]["id"], group.to_string(), "{text}");
}

fn account(a: Result<Option<Answer>, RpcError>) -> tangle::Account {
    match a {
        Ok(Some(Answer::Account(a))) => a,
        other => panic!("not an Account: {other:?}"),
    }
}

#[tokio::test]
async fn an_osmium_client_changes_its_password_and_address_and_deletes_its_account() {
    let n = TestNode::start().await;
    let mut s = Osmium::connect(&n).await;
    authorization(s.call(sign_up("set@example.org")).await);
    let a = account(s.call(Member::GetAccount(tangle::GetAccount {})).await);
    assert_eq!(a.email.as_deref(), Some("set@example.org"));
    assert!(a.has_password && !a.confirmed);

    let change = |current: &str| {
        Member::ChangePassword(tangle::ChangePassword {
            current_password: current.into(),
            new_password: "another long passphrase".into(),
            revoke_sessions: true,
        })
    };
    let e = s.call(change("wrong password here")).await.unwrap_err();
    assert!(e.error_message.starts_with("BAD_CREDENTIALS: "), "{e:?}");
    assert!(matches!(s.call(change(PASSWORD)).await, Ok(None)));
    assert!(n
        .sign_in("set@example.org", "another long passphrase")
        .await
        .is_ok());

    let to = Member::ChangeEmail(tangle::ChangeEmail {
        new_email: "moved@example.org".into(),
    });
    assert!(matches!(s.call(to).await, Ok(None)));
    let code = code_in(&n.last_mail_to("moved@example.org").await.body);
    let verify = Member::VerifyEmail(tangle::VerifyEmail {
        email: "moved@example.org".into(),
        code,
    });
    assert!(matches!(s.call(verify).await, Ok(None)));
    let a = account(s.call(Member::GetAccount(tangle::GetAccount {})).await);
    assert_eq!(
        (a.email.as_deref(), a.confirmed),
        (Some("moved@example.org"), true)
    );

    let bye = Member::DeleteAccount(tangle::DeleteAccount { cancel: None });
    assert!(matches!(s.call(bye).await, Ok(None)));
    // Its session ended with the request.
    let e = s
        .call(Member::GetAccount(tangle::GetAccount {}))
        .await
        .unwrap_err();
    assert_eq!(e.error_code, 16, "{e:?}");
}

fn totp(a: Result<Option<Answer>, RpcError>) -> tangle::Totp {
    match a {
        Ok(Some(Answer::Totp(t))) => t,
        other => panic!("not a Totp: {other:?}"),
    }
}

#[tokio::test]
async fn an_osmium_client_sets_up_a_second_factor_and_signs_in_with_its_code() {
    let n = TestNode::start().await;
    let mut s = Osmium::connect(&n).await;
    authorization(s.call(sign_up("otp@example.org")).await);
    let setup = |enabled: bool, code: Option<String>| {
        Member::SetupTotp(tangle::SetupTotp { enabled, code })
    };
    let url = totp(s.call(setup(true, None)).await).url.unwrap();
    let code = |steps: i64| {
        let t = totp_rs::TOTP::from_url_unchecked(&url).unwrap();
        t.generate((hearth::clock::Clock::now_ms(&*n.clock) / 1000).wrapping_add_signed(steps * 30))
    };
    let on = totp(s.call(setup(true, Some(code(0)))).await);
    assert!(on.enabled && on.backup_codes.len() == 10);
    let a = account(s.call(Member::GetAccount(tangle::GetAccount {})).await);
    assert!(a.totp_enabled);

    let mut c = Osmium::connect(&n).await;
    let without = c
        .call(sign_in("otp@example.org", PASSWORD))
        .await
        .unwrap_err();
    assert!(
        without.error_message.contains("SECOND_FACTOR_REQUIRED"),
        "{without:?}"
    );
    n.clock.advance_ms(30_000);
    let with = Member::SignIn(tangle::SignIn {
        email: "otp@example.org".into(),
        password: PASSWORD.into(),
        totp: Some(code(0)),
    });
    authorization(c.call(with).await);
}
