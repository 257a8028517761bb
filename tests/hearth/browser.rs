//! A real browser (headless Chromium, installed by scripts/install-test-deps.sh) on a page
//! served from another origin calls the node over gRPC-Web: Ping, SignUp, then Pong with
//! the token SignUp returned. With the page's origin in `http.cors_origins` it works; without
//! it the browser blocks the calls.
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const PAGE: &str = r#"<!doctype html><html><head><title>pending</title></head><body><script>
const node = "NODE";
function frame(bytes) {
  const f = new Uint8Array(5 + bytes.length), n = bytes.length;
  f[1] = (n >>> 24) & 255; f[2] = (n >>> 16) & 255; f[3] = (n >>> 8) & 255; f[4] = n & 255;
  f.set(bytes, 5); return f;
}
function field(no, text) {
  const b = new TextEncoder().encode(text); return [(no << 3) | 2, b.length, ...b];
}
async function call(path, body, token) {
  const headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"};
  if (token) headers["authorization"] = "Bearer " + token;
  const r = await fetch(node + path, {method: "POST", headers, body: frame(new Uint8Array(body))});
  const buf = new Uint8Array(await r.arrayBuffer());
  let status = r.headers.get("grpc-status"), message = null;
  for (let i = 0; i + 5 <= buf.length;) {
    const len = (buf[i + 1] << 24) | (buf[i + 2] << 16) | (buf[i + 3] << 8) | buf[i + 4];
    const part = buf.slice(i + 5, i + 5 + len);
    if (buf[i] & 0x80) {
      const m = new TextDecoder().decode(part).match(/grpc-status:\s*(\d+)/);
      if (m) status = m[1];
    } else { message = part; }
    i += 5 + len;
  }
  return {status, message, id: r.headers.get("x-request-id")};
}
(async () => {
  try {
    const ping = await call("/test.v1.TestNoAuthService/Ping", []);
    if (ping.status !== "0" || !ping.id) throw new Error("ping " + JSON.stringify(ping));
    const up = await call("/tangle.client.auth.Auth/SignUp",
      [...field(1, "browser@example.org"), ...field(2, "correct horse battery staple"), ...field(3, "B")]);
    if (up.status !== "0") throw new Error("sign-up status " + up.status);
    const len = up.message[1];
    const token = new TextDecoder().decode(up.message.slice(2, 2 + len));
    const pong = await call("/test.v1.TestAuthService/Pong", [], token);
    if (pong.status !== "0") throw new Error("pong status " + pong.status);
    const denied = await call("/test.v1.TestAuthService/Pong", []);
    if (denied.status !== "16") throw new Error("pong without token " + denied.status);
    document.title = "RESULT ok";
  } catch (e) {
    document.title = "RESULT failed: " + e;
  }
})();
</script></body></html>"#;

/// Serves `page` on `listener` to every request until the test ends.
fn serve_page(listener: tokio::net::TcpListener, page: String) {
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    page.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(page.as_bytes()).await;
            });
        }
    });
}

/// Loads `url` in headless Chromium and returns the page's title when it settles.
fn title_in_chromium(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("chromium (installed by scripts/install-test-deps.sh)");
    let dom = String::from_utf8_lossy(&out.stdout);
    dom.split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .unwrap_or_default()
        .to_owned()
}

async fn run(allow_page: bool) -> String {
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!(
        "http://127.0.0.1:{}",
        page_listener.local_addr().unwrap().port()
    );
    let origin = page_origin.clone();
    let n = TestNode::start_with(move |c| {
        if allow_page {
            c.http.cors_origins = vec![origin];
        }
    })
    .await;
    serve_page(page_listener, PAGE.replace("NODE", &n.url()));
    let url = format!("{page_origin}/");
    let title = tokio::task::spawn_blocking(move || title_in_chromium(&url))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    title
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium (bash scripts/test.sh installs it)"]
async fn a_page_on_an_allowed_origin_signs_up_and_calls_with_the_token() {
    assert_eq!(run(true).await, "RESULT ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium (bash scripts/test.sh installs it)"]
async fn a_page_on_another_origin_is_blocked_by_default() {
    let title = run(false).await;
    assert!(title.starts_with("RESULT failed"), "{title}");
}
