//! Request rates through one node, with the production argon2 cost, as ratios against a
//! baseline measured in the same run:
//! - Ping (public, no credential) is the baseline for Pong (session credential, cached);
//! - raw argon2id verifications on the same cores are the baseline for SignIn.
//!
//! Run: `cargo bench --bench rates`. Prints figures and ratios; asserts nothing. Traffic goes
//! to 127.0.0.1 only and every loop is bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hearth::pb::tangle::client::auth::{auth_client::AuthClient, SignIn};
use hearth::pb::test::v1::{
    test_auth_service_client::TestAuthServiceClient,
    test_no_auth_service_client::TestNoAuthServiceClient, PingRequest, PongRequest,
};

mod common;
use common::PASSWORD;
const CONCURRENCY: usize = 16;
const RPC_WINDOW: Duration = Duration::from_secs(3);
const HASH_WINDOW: Duration = Duration::from_secs(5);

/// Runs `call` from `CONCURRENCY` tasks for `window`; returns calls per second.
async fn rate<F, Fut>(window: Duration, tasks: usize, call: F) -> f64
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (call, done) = (call.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            while start.elapsed() < window {
                call().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn raw_argon2_rate(params: Params, threads: usize) -> f64 {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string();
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (phc, done) = (phc.clone(), done.clone());
            std::thread::spawn(move || {
                let parsed = PasswordHash::new(&phc).unwrap();
                while start.elapsed() < HASH_WINDOW {
                    Argon2::default()
                        .verify_password(PASSWORD.as_bytes(), &parsed)
                        .unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let bench = common::start(|_| {}).await;
    let channel = bench.channel.clone();
    let p = bench.node.services().config().passwords.clone();
    let token = common::sign_up(&channel, "bench@example.org").await;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "argon2id m={} KiB t={} p={}; {cores} cores; {CONCURRENCY} concurrent calls on one connection",
        p.argon2_memory_kib, p.argon2_iterations, p.argon2_parallelism
    );

    let ch = channel.clone();
    let ping = rate(RPC_WINDOW, CONCURRENCY, move || {
        let mut c = TestNoAuthServiceClient::new(ch.clone());
        async move {
            c.ping(PingRequest {}).await.unwrap();
        }
    })
    .await;
    let (ch, t) = (channel.clone(), token.clone());
    let pong = rate(RPC_WINDOW, CONCURRENCY, move || {
        let mut c = TestAuthServiceClient::new(ch.clone());
        let mut req = tonic::Request::new(PongRequest {});
        req.metadata_mut()
            .insert("authorization", t.parse().unwrap());
        async move {
            c.pong(req).await.unwrap();
        }
    })
    .await;
    let ch = channel.clone();
    let sign_in = rate(HASH_WINDOW, CONCURRENCY, move || {
        let mut c = AuthClient::new(ch.clone());
        async move {
            c.sign_in(SignIn {
                email: "bench@example.org".into(),
                password: PASSWORD.into(),
                totp: None,
            })
            .await
            .unwrap();
        }
    })
    .await;
    let params = Params::new(
        p.argon2_memory_kib,
        p.argon2_iterations,
        p.argon2_parallelism,
        None,
    )
    .unwrap();
    let raw = raw_argon2_rate(params, cores);

    println!("| row | per second | ratio | baseline |");
    println!("|---|---:|---:|---|");
    println!("| Ping (public) | {ping:.0} | 1.00 | itself |");
    println!("| Pong (session) | {pong:.0} | {:.2} | Ping |", pong / ping);
    println!("| raw argon2id verify ({cores} threads) | {raw:.1} | 1.00 | itself |");
    println!(
        "| SignIn | {sign_in:.1} | {:.2} | raw argon2id |",
        sign_in / raw
    );
    bench.node.shutdown().await;
}
