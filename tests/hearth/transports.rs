//! The transports of DESIGN.md §1 on the one port: hRPC (unary over HTTP/1.1 and h2, with
//! Content-Length or chunked; server streams over a WebSocket) and the Osmium socket, each
//! checked against the same method over gRPC: same answer, same budget, same metrics.
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::support::*;
use hearth::pb;

/// `hrpc.v1.Error`, written from the hRPC spec's field numbers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HrpcError {
    #[prost(string, tag = "1")]
    pub identifier: String,
    #[prost(string, tag = "2")]
    pub human_message: String,
}

pub struct HrpcAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub headers: reqwest::header::HeaderMap,
}

impl HrpcAnswer {
    pub fn error(&self) -> HrpcError {
        HrpcError::decode(&self.body[..]).unwrap()
    }
}

/// An hRPC unary call over HTTP/1.1 with Content-Length.
pub async fn hrpc(n: &TestNode, path: &str, body: Vec<u8>, token: Option<&str>) -> HrpcAnswer {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", n.url()))
        .header("content-type", "application/hrpc")
        .header("hrpc-version", "1")
        .body(body);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let res = req.send().await.unwrap();
    HrpcAnswer {
        status: res.status().as_u16(),
        content_type: res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        headers: res.headers().clone(),
        body: res.bytes().await.unwrap().to_vec(),
    }
}

fn addr(n: &TestNode) -> String {
    n.url().trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn hrpc_unary_calls_answer_like_grpc() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("h@example.org").await;

    let ping = hrpc(&n, "/test.v1.TestNoAuthService/Ping", Vec::new(), None).await;
    assert_eq!(
        (ping.status, ping.content_type.as_str()),
        (200, "application/hrpc")
    );
    assert_eq!(ping.headers.get("hrpc-version").unwrap(), "1");
    assert!(ping.headers.contains_key("x-request-id"));

    for credential in [token.clone(), format!("Bearer {token}")] {
        let pong = hrpc(
            &n,
            "/test.v1.TestAuthService/Pong",
            Vec::new(),
            Some(&credential),
        )
        .await;
        assert_eq!(pong.status, 200, "{credential}");
    }
    let missing = hrpc(&n, "/test.v1.TestAuthService/Pong", Vec::new(), None).await;
    assert_eq!(
        (missing.status, missing.content_type.as_str()),
        (401, "application/hrpc")
    );
    assert_eq!(missing.error().identifier, "hearth.CREDENTIAL_MISSING");

    // A refusal reads the same on both transports: code, reason and message.
    let wrong = pb::tangle::client::auth::SignIn {
        email: "h@example.org".into(),
        password: "not the password at all".into(),
        totp: None,
    };
    let grpc = n.tangle().sign_in(wrong.clone()).await.unwrap_err();
    let over_hrpc = hrpc(
        &n,
        "/tangle.client.auth.Auth/SignIn",
        wrong.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(over_hrpc.status, 401);
    let e = over_hrpc.error();
    assert_eq!(e.identifier, format!("hearth.{}", reason(&grpc)));
    assert_eq!(e.human_message, grpc.message());

    // The same answer for a success: an Authorization naming the same user.
    let right = pb::tangle::client::auth::SignIn {
        email: "h@example.org".into(),
        password: PASSWORD.into(),
        totp: None,
    };
    let ok = hrpc(
        &n,
        "/tangle.client.auth.Auth/SignIn",
        right.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(ok.status, 200);
    let a = pb::tangle::client::auth::Authorization::decode(&ok.body[..]).unwrap();
    let g = n.tangle().sign_in(right).await.unwrap().into_inner();
    assert_eq!(a.user.map(|u| u.id), g.user.map(|u| u.id));
    assert!(n.pong(Some(&a.token)).await.is_ok());

    // accounts.v1 hands its token in the `authorization` header on hRPC too.
    let sign_in = pb::accounts::v1::SignInRequest {
        email: "h@example.org".into(),
        password: PASSWORD.into(),
        totp: None,
    };
    let res = hrpc(
        &n,
        "/accounts.v1.PublicAccountsService/SignIn",
        sign_in.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(res.status, 200);
    let bearer = res.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(n.pong(Some(bearer)).await.is_ok());

    // Bad bodies: undecodable, over the limit, a method that does not exist, a stream.
    let bad = hrpc(
        &n,
        "/tangle.client.auth.Auth/SignIn",
        vec![0xff, 0xff, 0xff],
        None,
    )
    .await;
    assert_eq!(
        (bad.status, bad.error().identifier.as_str()),
        (400, "hearth.FIELD_INVALID")
    );
    let big = hrpc(
        &n,
        "/test.v1.TestNoAuthService/Ping",
        vec![0; 16 * 1024 + 1],
        None,
    )
    .await;
    assert_eq!(
        (big.status, big.error().identifier.as_str()),
        (400, "hrpc.http.bad-unary-request")
    );
    let none = hrpc(&n, "/test.v1.TestNoAuthService/Nope", Vec::new(), None).await;
    assert_eq!(
        (none.status, none.error().identifier.as_str()),
        (501, "hrpc.not-implemented")
    );
    let stream = hrpc(
        &n,
        "/protocol.auth.v1.AuthService/StreamSteps",
        Vec::new(),
        None,
    )
    .await;
    assert_eq!(stream.error().identifier, "hrpc.http.bad-unary-request");
    assert!(stream.error().human_message.contains("WebSocket"));
}

/// Writes one HTTP/1.1 request by hand and reads the whole answer (the node closes it).
async fn raw_http(n: &TestNode, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr(n)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn hrpc_takes_chunked_bodies_and_h2() {
    let n = TestNode::start().await;
    let key = pb::protocol::auth::v1::KeyRequest {}.encode_to_vec();
    assert!(key.is_empty());
    // Chunked: a message in two chunks.
    let begin = pb::tangle::client::auth::ResendEmailVerification {
        email: Some("chunked@example.org".into()),
    }
    .encode_to_vec();
    let (a, b) = begin.split_at(1);
    let mut req = format!(
        "POST /tangle.client.auth.Auth/ResendEmailVerification HTTP/1.1\r\nhost: x\r\ncontent-type: application/hrpc\r\nhrpc-version: 1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n",
        a.len()
    )
    .into_bytes();
    req.extend_from_slice(a);
    req.extend_from_slice(format!("\r\n{:x}\r\n", b.len()).as_bytes());
    req.extend_from_slice(b);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    let answer = raw_http(&n, &req).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.contains("content-type: application/hrpc"),
        "{answer}"
    );

    // h2 with prior knowledge, as hyper's client speaks to an h2c server.
    let tcp = tokio::net::TcpStream::connect(addr(&n)).await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("{}/protocol.auth.v1.AuthService/Key", n.url()))
        .header("content-type", "application/hrpc")
        .body(())
        .unwrap();
    let (res, mut send) = h2.send_request(req, false).unwrap();
    send.send_data(bytes::Bytes::new(), true).unwrap();
    let res = res.await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/hrpc");
    let mut body = res.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let key = pb::protocol::auth::v1::KeyResponse::decode(&bytes[..]).unwrap();
    assert_eq!(key.key.len(), 32);
}

#[tokio::test]
async fn grpc_with_another_content_type_gets_415_and_harmony_discovery_answers() {
    let n = TestNode::start().await;
    let res = reqwest::Client::new()
        .post(format!("{}/test.v1.TestNoAuthService/Ping", n.url()))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert!(res.text().await.unwrap().contains("application/hrpc"));
    let doc: serde_json::Value = reqwest::get(format!("{}/_harmony/server", n.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["h.server"], n.url());
}

#[tokio::test]
async fn hrpc_and_grpc_share_one_budget_and_one_metrics_series() {
    let n = TestNode::start_with(|c| c.limits.hashing_calls_per_ip_per_minute = 4).await;
    let wrong = pb::tangle::client::auth::SignIn {
        email: "nobody@example.org".into(),
        password: "not the password at all".into(),
        totp: None,
    };
    for _ in 0..2 {
        let _ = n.tangle().sign_in(wrong.clone()).await;
        let r = hrpc(
            &n,
            "/tangle.client.auth.Auth/SignIn",
            wrong.encode_to_vec(),
            None,
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let r = hrpc(
        &n,
        "/tangle.client.auth.Auth/SignIn",
        wrong.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.error().identifier.as_str()),
        (429, "hearth.IP_THROTTLED")
    );
    let g = n.tangle().sign_in(wrong).await.unwrap_err();
    assert_eq!(reason(&g), "IP_THROTTLED");

    let metrics = get_text(&format!("{}/metrics", n.url())).await;
    let line = |code: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("hearth_requests_total{")
                    && l.contains("method=\"/tangle.client.auth.Auth/SignIn\"")
                    && l.contains(&format!("code=\"{code}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    };
    assert_eq!(line("UNAUTHENTICATED").as_deref(), Some("4"), "{metrics}");
    assert_eq!(
        line("RESOURCE_EXHAUSTED").as_deref(),
        Some("2"),
        "{metrics}"
    );
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn websocket(
    n: &TestNode,
    path: &str,
    protocols: Option<&str>,
    token: Option<&str>,
) -> (Socket, Option<String>) {
    let mut req = format!("ws://{}{path}", addr(n))
        .into_client_request()
        .unwrap();
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().unwrap());
    }
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", t.parse().unwrap());
    }
    let (ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    let echoed = res
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (ws, echoed)
}

/// The binary frames of a socket until it closes.
async fn frames(ws: &mut Socket, want: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while out.len() < want {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Ws::Binary(b)))) => out.push(b.to_vec()),
            Ok(Some(Ok(Ws::Close(_)))) | Ok(None) | Err(_) => break,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("{e}"),
        }
    }
    out
}

#[tokio::test]
async fn hrpc_streams_run_over_a_websocket_with_the_hrpc1_subprotocol() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("ws@example.org").await;

    // StreamSteps: the current step first, then each change; the protocol is echoed.
    let begin = hrpc(
        &n,
        "/protocol.auth.v1.AuthService/BeginAuth",
        Vec::new(),
        None,
    )
    .await;
    let auth_id = pb::protocol::auth::v1::BeginAuthResponse::decode(&begin.body[..])
        .unwrap()
        .auth_id;
    let (mut ws, echoed) = websocket(
        &n,
        "/protocol.auth.v1.AuthService/StreamSteps",
        Some("hrpc1"),
        None,
    )
    .await;
    assert_eq!(echoed.as_deref(), Some("hrpc1"));
    let req = pb::protocol::auth::v1::StreamStepsRequest {
        auth_id: auth_id.clone(),
    };
    ws.send(Ws::Binary(req.encode_to_vec().into()))
        .await
        .unwrap();
    let first = frames(&mut ws, 1).await;
    assert_eq!(first[0][0], 0, "a message frame");
    let step = pb::protocol::auth::v1::StreamStepsResponse::decode(&first[0][1..]).unwrap();
    assert!(step.step.is_some());

    // An unknown flow: an error frame, then a normal close.
    let (mut ws, _) = websocket(
        &n,
        "/protocol.auth.v1.AuthService/StreamSteps",
        Some("hrpc1"),
        None,
    )
    .await;
    let req = pb::protocol::auth::v1::StreamStepsRequest {
        auth_id: "nope".into(),
    };
    ws.send(Ws::Binary(req.encode_to_vec().into()))
        .await
        .unwrap();
    let got = frames(&mut ws, 2).await;
    assert_eq!(got.len(), 1, "one frame, then close");
    assert_eq!(got[0][0], 1, "an error frame");
    let e = HrpcError::decode(&got[0][1..]).unwrap();
    assert!(e.identifier.starts_with("hearth."), "{e:?}");

    // ListTokens with the token as a browser sends it: the second subprotocol.
    let (mut ws, echoed) = websocket(
        &n,
        "/tokens.v1.TokensService/ListTokens",
        Some(&format!("hrpc1, {token}")),
        None,
    )
    .await;
    assert_eq!(echoed.as_deref(), Some("hrpc1"));
    ws.send(Ws::Binary(Vec::new().into())).await.unwrap();
    let got = frames(&mut ws, 1).await;
    assert!(got.is_empty() || got[0][0] == 0, "no refusal: {got:?}");
    // Without a credential: refused in an error frame.
    let (mut ws, _) = websocket(
        &n,
        "/tokens.v1.TokensService/ListTokens",
        Some("hrpc1"),
        None,
    )
    .await;
    ws.send(Ws::Binary(Vec::new().into())).await.unwrap();
    let got = frames(&mut ws, 1).await;
    assert_eq!(got[0][0], 1);
    assert_eq!(
        HrpcError::decode(&got[0][1..]).unwrap().identifier,
        "hearth.CREDENTIAL_MISSING"
    );
}

#[tokio::test]
async fn hrpc_bodies_over_the_limit_leave_the_node_serving() {
    let n = TestNode::start().await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let url = n.url();
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{url}/test.v1.TestNoAuthService/Ping"))
                .header("content-type", "application/hrpc")
                .body(vec![7u8; 1 << 20])
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 400 || status == 0, "{status}");
    }
    let ping = hrpc(&n, "/test.v1.TestNoAuthService/Ping", Vec::new(), None).await;
    assert_eq!(ping.status, 200);
}
