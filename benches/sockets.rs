//! Resident memory of a real `hearth serve` process (its own, not this client's) while
//! WebSocket and hRPC clients misbehave: idle, with 1,000 Osmium sockets held open, after
//! 10,000 garbage frames over them, after 200 hRPC bodies of 1 MiB (each over the 16 KiB
//! limit), once they are gone, and after 100,000 StreamSteps with made-up ids from one
//! address; and whether a well-behaved client is served meanwhile
//! (its calls and errors are counted). The baseline is the idle figure of the same run.
//!
//! Run: `cargo bench --bench sockets` (builds the release binary). Prints figures; asserts
//! nothing. Traffic goes to 127.0.0.1 only; every loop is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth::pb::protocol::auth::v1::{auth_service_client::AuthServiceClient, StreamStepsRequest};
use tokio_tungstenite::tungstenite::Message;

const SOCKETS: usize = 1_000;
const GARBAGE: usize = 10_000;
const BIG_BODIES: usize = 200;
const STREAM_FLOOD: usize = 100_000;

/// Pings over hRPC: (answered, refused or failed).
async fn pings(http: &reqwest::Client, url: &str, n: usize) -> (usize, usize) {
    let mut ok = 0;
    for _ in 0..n {
        let r = http
            .post(format!("{url}/test.v1.TestNoAuthService/Ping"))
            .header("content-type", "application/hrpc")
            .body(Vec::new())
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            ok += 1;
        }
    }
    (ok, n - ok)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("serve")
        .env("HEARTH_DATA_DIR", dir.path())
        .env("HEARTH_LISTEN_ADDR", "127.0.0.1:0")
        .env("HEARTH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the node printed its address").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let url = format!("http://{addr}");
    let http = reqwest::Client::new();
    pings(&http, &url, 100).await;
    let mut rows = vec![(
        "idle".to_owned(),
        common::rss_mib_of(&pid),
        pings(&http, &url, 100).await,
    )];

    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    rows.push((
        format!("{SOCKETS} Osmium sockets open, idle"),
        common::rss_mib_of(&pid),
        pings(&http, &url, 100).await,
    ));

    // Garbage spread so no socket spends its frame budget: every frame is read, refused
    // and answered.
    let per_socket = GARBAGE / SOCKETS;
    for ws in &mut sockets {
        for _ in 0..per_socket {
            let _ = ws.send(Message::Binary(vec![0xff; 64].into())).await;
        }
    }
    let mut answered = 0;
    for ws in &mut sockets {
        for _ in 0..per_socket {
            if let Ok(Some(Ok(Message::Binary(_)))) =
                tokio::time::timeout(Duration::from_secs(5), ws.next()).await
            {
                answered += 1;
            }
        }
    }
    rows.push((
        format!("after {GARBAGE} garbage frames ({answered} refusals read back)"),
        common::rss_mib_of(&pid),
        pings(&http, &url, 100).await,
    ));

    let mut refused = 0;
    for _ in 0..BIG_BODIES {
        let r = http
            .post(format!("{url}/test.v1.TestNoAuthService/Ping"))
            .header("content-type", "application/hrpc")
            .body(vec![7u8; 1 << 20])
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 400) {
            refused += 1;
        }
    }
    rows.push((
        format!("after {BIG_BODIES} hRPC bodies of 1 MiB ({refused} answered 400)"),
        common::rss_mib_of(&pid),
        pings(&http, &url, 100).await,
    ));

    drop(sockets);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rows.push((
        "2 s after the sockets closed".to_owned(),
        common::rss_mib_of(&pid),
        pings(&http, &url, 100).await,
    ));

    // The security review's flood: StreamSteps with made-up 15,000-character ids from one
    // address (answered FLOW_UNKNOWN, or IP_THROTTLED once the flow budget is spent).
    let channel = tonic::transport::Channel::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let long = "x".repeat(15_000);
    let (mut unknown, mut throttled, mut other) = (0, 0, 0);
    let mut client = AuthServiceClient::new(channel);
    for i in 0..STREAM_FLOOD {
        let req = StreamStepsRequest {
            auth_id: format!("{long}{i}"),
        };
        match client.stream_steps(req).await {
            Err(s) if s.code() == tonic::Code::NotFound => unknown += 1,
            Err(s) if s.code() == tonic::Code::ResourceExhausted => throttled += 1,
            _ => other += 1,
        }
    }
    rows.push((
        format!(
            "after {STREAM_FLOOD} StreamSteps with made-up ids ({unknown} FLOW_UNKNOWN, {throttled} IP_THROTTLED, {other} other)"
        ),
        common::rss_mib_of(&pid),
        pings(&http, &url, 100).await,
    ));
    let _ = child.kill();
    let _ = child.wait();

    let idle = rows[0].1;
    println!("| state of the node | RSS MiB | × idle | Pings answered | errors |");
    println!("|---|---:|---:|---:|---:|");
    for (what, rss, (ok, err)) in rows {
        println!("| {what} | {rss:.1} | {:.2} | {ok} | {err} |", rss / idle);
    }
}
