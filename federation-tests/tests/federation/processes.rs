//! Three `hearth serve` processes started from `config/{alpha,beta,gamma}.toml` (the demo's
//! files), proving the config-file path end to end: they link, and a user of alpha logs into
//! beta and gamma. Each process gets a temporary data dir through HEARTH_DATA_DIR.
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth::pb::protocol::auth::v1::{
    auth_service_client::AuthServiceClient, FederateRequest, LoginFederatedRequest,
};
use hearth::pb::tangle::client::auth::{auth_client::AuthClient, SignUp};
use tonic::transport::Channel;

use crate::support::{authed, hearth_bin, workspace, PASSWORD};

struct Process {
    name: &'static str,
    child: Child,
    data: PathBuf,
}

impl Process {
    fn start(name: &'static str, data: PathBuf) -> (Self, std::sync::mpsc::Receiver<String>) {
        let mut child = Command::new(hearth_bin())
            .args(["serve", "--config"])
            .arg(workspace().join("config").join(format!("{name}.toml")))
            .env("HEARTH_DATA_DIR", &data)
            .env("HEARTH_PASSWORDS_ARGON2_MEMORY_KIB", "256")
            .env("HEARTH_PASSWORDS_ARGON2_ITERATIONS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        (Self { name, child, data }, rx)
    }

    fn peer_list(&self) -> String {
        let out = Command::new(hearth_bin())
            .args(["peer", "list", "--config"])
            .arg(
                workspace()
                    .join("config")
                    .join(format!("{}.toml", self.name)),
            )
            .env("HEARTH_DATA_DIR", &self.data)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn three_processes_from_the_config_files_link_and_federate() {
    let dir = tempfile::tempdir().unwrap();
    let mut procs = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let (p, lines) = Process::start(name, dir.path().join(name));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("{name} did not print `listening on`"));
            if line.starts_with("listening on ") {
                break;
            }
        }
        procs.push(p);
    }
    // Configured peers link at start-up: each node lists the other two as linked.
    for p in &procs {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = p.peer_list();
            if list.matches(" linked ").count() == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not link both peers:\n{list}",
                p.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let alpha = Channel::from_static("http://127.0.0.1:7451")
        .connect()
        .await
        .unwrap();
    let signed = AuthClient::new(alpha.clone())
        .sign_up(SignUp {
            email: Some("proc@example.org".into()),
            password: Some(PASSWORD.into()),
            name: "P".into(),
            invite_code: None,
        })
        .await
        .unwrap()
        .into_inner();
    for (url, id) in [
        ("http://127.0.0.1:7452", "beta.hearth.local"),
        ("http://127.0.0.1:7453", "gamma.hearth.local"),
    ] {
        let token = AuthServiceClient::new(alpha.clone())
            .federate(authed(
                FederateRequest {
                    server_id: id.into(),
                },
                &signed.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .token;
        let target = Channel::from_shared(url.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let session = AuthServiceClient::new(target)
            .login_federated(LoginFederatedRequest {
                auth_token: token,
                server_id: "alpha.hearth.local".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap();
        assert!(!session.session_token.is_empty());
    }
    for p in &mut procs {
        let status = p.terminate();
        assert!(
            status.success(),
            "{} did not shut down cleanly on SIGTERM: {status}",
            p.name
        );
    }
}
