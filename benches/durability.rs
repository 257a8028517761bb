//! What `[store] synchronous = "full"` costs: sign-ups per second with full against normal,
//! in one run, with a cheap argon2 cost so the commit is what is measured.
//!
//! Run: `cargo bench --bench durability`. Prints figures; asserts nothing. Traffic goes to
//! 127.0.0.1 only; each loop is bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use hearth::config::Synchronous;
use hearth::pb::tangle::client::auth::{auth_client::AuthClient, SignUp};

const WINDOW: Duration = Duration::from_secs(4);
const CONCURRENCY: u64 = 8;

async fn sign_ups_per_second(sync: Synchronous) -> f64 {
    let bench = common::start(|c| {
        c.passwords.argon2_memory_kib = 256;
        c.passwords.argon2_iterations = 1;
        c.store.synchronous = sync;
    })
    .await;
    let channel = bench.channel.clone();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let (channel, done) = (channel.clone(), done.clone());
            tokio::spawn(async move {
                let mut c = AuthClient::new(channel);
                let mut i = 0u64;
                while started.elapsed() < WINDOW {
                    c.sign_up(SignUp {
                        email: Some(format!("u{t}-{i}@example.org")),
                        password: Some(common::PASSWORD.into()),
                        name: "U".into(),
                        invite_code: None,
                    })
                    .await
                    .unwrap();
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    bench.node.shutdown().await;
    rate
}

#[tokio::main]
async fn main() {
    let normal = sign_ups_per_second(Synchronous::Normal).await;
    let full = sign_ups_per_second(Synchronous::Full).await;
    println!("| store.synchronous | sign-ups per second | ratio to normal |");
    println!("|---|---:|---:|");
    println!("| normal | {normal:.0} | 1.00 |");
    println!("| full (default) | {full:.0} | {:.2} |", full / normal);
}
