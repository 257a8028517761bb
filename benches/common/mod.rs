//! Shared by the benchmarks: a node on 127.0.0.1:0 in a temporary data dir, with the
//! production defaults except the per-IP limits (every call comes from one address), and a
//! connected channel.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use hearth::pb::tangle::client::auth::{auth_client::AuthClient, SignUp};
use hearth::{Config, RunningNode};
use tonic::transport::Channel;

/// The allocator the `hearth` binary runs with (src/main.rs), so every benchmark measures
/// what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The password of every benchmark account.
pub const PASSWORD: &str = "correct horse battery staple";

/// A started node; dropped with its data dir.
pub struct BenchNode {
    /// The node.
    pub node: RunningNode,
    /// A channel to it.
    pub channel: Channel,
    _dir: tempfile::TempDir,
}

/// Starts a node; `edit` changes the config first.
pub async fn start(edit: impl FnOnce(&mut Config)) -> BenchNode {
    start_keyed(None, edit).await
}

/// Starts another node of `from`'s cluster (its node key and JWT keys copied first).
#[allow(dead_code)]
pub async fn start_beside(from: &BenchNode, edit: impl FnOnce(&mut Config)) -> BenchNode {
    start_keyed(Some(from), edit).await
}

async fn start_keyed(from: Option<&BenchNode>, edit: impl FnOnce(&mut Config)) -> BenchNode {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.listen.addr = "127.0.0.1:0".parse().unwrap();
    config.accounts.sign_ins_per_ip_per_minute = 1_000_000;
    config.limits.hashing_calls_per_ip_per_minute = 1_000_000;
    config.limits.session_calls_per_ip_per_minute = 1_000_000;
    edit(&mut config);
    if let Some(from) = from {
        let source = &from.node.services().config().data_dir;
        std::fs::create_dir_all(&config.data_dir).unwrap();
        for file in ["node.key", "jwt.keys"] {
            std::fs::copy(source.join(file), config.data_dir.join(file)).unwrap();
        }
    }
    let node = hearth::Node::start(config).await.unwrap();
    let channel = Channel::from_shared(node.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    BenchNode {
        node,
        channel,
        _dir: dir,
    }
}

/// Signs up `email` with [`PASSWORD`]; returns the session token.
pub async fn sign_up(channel: &Channel, email: &str) -> String {
    AuthClient::new(channel.clone())
        .sign_up(SignUp {
            email: Some(email.into()),
            password: Some(PASSWORD.into()),
            name: "B".into(),
            invite_code: None,
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

/// Resident memory in MiB of process `proc` (`"self"` or a pid), from /proc.
pub fn rss_mib_of(proc: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{proc}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}
