//! Hostile load on a real `hearth serve` process: resident memory during sign-in bursts.
//! Traffic goes to 127.0.0.1 only; every loop is bounded in count and time.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::pb::tangle::client::auth::{auth_client::AuthClient, SignIn, SignUp};
use tonic::transport::Channel;

use crate::support::PASSWORD;

/// A `hearth serve` child process on 127.0.0.1:0, killed when dropped.
pub struct Served {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts the real binary with production defaults plus `env` overrides.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("serve")
            .env("HEARTH_DATA_DIR", dir.path().join("data"))
            .env("HEARTH_LISTEN_ADDR", "127.0.0.1:0")
            .env("HEARTH_ACCOUNTS_SIGN_INS_PER_IP_PER_MINUTE", "1000000")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut addr = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(a) = line.strip_prefix("listening on ") {
                addr = Some(a.trim().to_owned());
                break;
            }
        }
        let addr = addr.expect("hearth printed `listening on`");
        Self {
            child,
            url: format!("http://{addr}"),
            _dir: dir,
        }
    }

    /// Resident memory of the process, in MiB.
    pub fn rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib / 1024
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_burst_does_not_pin_memory() {
    let node = Served::start(&[]);
    let channel = Channel::from_shared(node.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthClient::new(channel.clone())
        .sign_up(SignUp {
            email: Some("burst@example.org".into()),
            password: Some(PASSWORD.into()),
            name: "Burst".into(),
            invite_code: None,
        })
        .await
        .unwrap();
    let before = node.rss_mib();
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(240));
    let deadline = Instant::now() + Duration::from_secs(60);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (channel, left) = (channel.clone(), left.clone());
            tokio::spawn(async move {
                let mut c = AuthClient::new(channel);
                while Instant::now() < deadline
                    && left
                        .fetch_update(
                            std::sync::atomic::Ordering::SeqCst,
                            std::sync::atomic::Ordering::SeqCst,
                            |n| n.checked_sub(1),
                        )
                        .is_ok()
                {
                    c.sign_in(SignIn {
                        email: "burst@example.org".into(),
                        password: PASSWORD.into(),
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let after = node.rss_mib();
    println!(
        "resident memory: {before} MiB before, {after} MiB after 240 sign-ins at 16 concurrent"
    );
    assert!(
        after <= 150,
        "resident memory {after} MiB after a sign-in burst (was {before} MiB)"
    );
}
