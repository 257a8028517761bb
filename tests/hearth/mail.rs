//! Mail: delivery to a real SMTP server (aiosmtpd), retries with backoff, a stalled server,
//! the outbox CLI, and what the outbox keeps of codes once mail is delivered or expired.
use std::time::{Duration, Instant};

use crate::support::*;

pub struct SmtpServer {
    child: std::process::Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// How many mails arrived so far.
    pub fn delivered(&self) -> usize {
        std::fs::read_dir(self.maildir.path().join("mail").join("new"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    async fn start_on(port: u16) -> Self {
        let maildir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path().join("mail"))
            .spawn()
            .expect("python3 with aiosmtpd (run scripts/install-test-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start (is it installed?)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            child,
            port,
            maildir,
        }
    }

    pub async fn wait_for_mail(&self) -> String {
        let dir = self.maildir.path().join("mail").join("new");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(entry) = std::fs::read_dir(&dir).ok().and_then(|mut d| d.next()) {
                return std::fs::read_to_string(entry.unwrap().path()).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no mail arrived at the SMTP server"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn mail_reaches_a_real_smtp_server_with_a_working_code() {
    let smtp = SmtpServer::start().await;
    let n = TestNode::start_with(|c| {
        c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{}", smtp.port));
        c.mail.from = "hearth@alpha.example.org".into();
    })
    .await;
    n.sign_up("smtp@example.org").await;
    let message = smtp.wait_for_mail().await;
    assert!(message.contains("To: smtp@example.org"), "{message}");
    let subject = message.lines().find(|l| l.starts_with("Subject:")).unwrap();
    let code = code_in(subject);
    n.tangle()
        .verify_email(verify("smtp@example.org", &code))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if n.last_mail_to("smtp@example.org").await.sent_at.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox row was not marked sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Delivered mail keeps its envelope only; after a sweep no file holds the code.
    let row = n.last_mail_to("smtp@example.org").await;
    assert!(
        !row.subject.contains(&code) && !row.body.contains(&code),
        "{row:?}"
    );
    n.domain()
        .outbox
        .sweep(hearth::domain::codes::CODE_TTL_MS)
        .await
        .unwrap();
    assert_no_file_holds(&n, &code);
}

/// Neither the database nor its write-ahead log holds `text`.
fn assert_no_file_holds(n: &TestNode, text: &str) {
    for file in ["hearth.sqlite3", "hearth.sqlite3-wal"] {
        let bytes = std::fs::read(n.config.data_dir.join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
            "{file} still holds {text}"
        );
    }
}

#[tokio::test]
async fn codes_in_undelivered_mail_are_dropped_once_they_expire() {
    let n = TestNode::start().await;
    n.sign_up("stale@example.org").await;
    let code = code_in(&n.last_mail_to("stale@example.org").await.subject);
    assert_eq!(
        n.domain()
            .outbox
            .sweep(hearth::domain::codes::CODE_TTL_MS)
            .await
            .unwrap(),
        0
    );
    n.clock.advance_ms(hearth::domain::codes::CODE_TTL_MS);
    assert_eq!(
        n.domain()
            .outbox
            .sweep(hearth::domain::codes::CODE_TTL_MS)
            .await
            .unwrap(),
        1
    );
    let row = n.last_mail_to("stale@example.org").await;
    assert!(
        !row.subject.contains(&code) && row.body.is_empty(),
        "{row:?}"
    );
    assert_eq!(row.last_error.as_deref(), Some("expired before delivery"));
    assert_no_file_holds(&n, &code);
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff() {
    let port = free_port();
    let n =
        TestNode::start_with(|c| c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    n.sign_up("retry@example.org").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let m = n.last_mail_to("retry@example.org").await;
        if m.attempts > 0 {
            break m;
        }
        assert!(Instant::now() < deadline, "no delivery attempt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(failed.sent_at.is_none() && failed.last_error.is_some());
    let smtp = SmtpServer::start_on(port).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        n.last_mail_to("retry@example.org").await.attempts,
        1,
        "no retry before the backoff"
    );
    n.clock.advance_ms(hearth::mail::backoff_ms(0));
    smtp.wait_for_mail().await;
}

#[tokio::test]
async fn a_stalled_smtp_server_does_not_slow_rpcs() {
    // Accepts connections and never says a word.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = stalled.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stalled.accept().await {
            held.push(s);
        }
    });
    let n =
        TestNode::start_with(|c| c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    n.sign_up("first@example.org").await; // the sender is now stuck talking to the stall
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    n.sign_up("second@example.org").await;
    n.tangle()
        .reset_password(reset("first@example.org", None))
        .await
        .unwrap();
    // The SMTP timeout is 20 s; queueing must not wait on it.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "RPCs waited on SMTP: {:?}",
        start.elapsed()
    );
    assert!(n.last_mail_to("second@example.org").await.sent_at.is_none());
    holder.abort();
}

#[tokio::test]
async fn cli_lists_the_outbox() {
    let mut n = TestNode::start().await;
    n.sign_up("outbox@example.org").await;
    let data = n.config.data_dir.clone();
    n.stop().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["mail", "list"])
        .env("HEARTH_DATA_DIR", &data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("to outbox@example.org (queued at 20") && text.contains("verification code"),
        "{text}"
    );
}
