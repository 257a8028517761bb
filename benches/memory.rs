//! Resident memory of a node (and its in-process client): idle, then after 10,000 sign-ins
//! at 64 concurrent with the production argon2 cost, then after the burst has settled.
//! The figure to watch is the second one against the limit of 150 MB (issue: memory after
//! sign-ins); the baseline is the idle figure of the same run.
//!
//! Run: `cargo bench --bench memory`. Prints figures; asserts nothing. Traffic goes to
//! 127.0.0.1 only; the loop is bounded in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::pb::tangle::client::auth::{auth_client::AuthClient, SignIn};

mod common;
use common::PASSWORD;
const SIGN_INS: usize = 10_000;
const CONCURRENCY: usize = 64;
const LIMIT: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() {
    let bench = common::start(|_| {}).await;
    let channel = bench.channel.clone();
    common::sign_up(&channel, "bench@example.org").await;
    let idle = common::rss_mib_of("self");
    let left = Arc::new(AtomicUsize::new(SIGN_INS));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (channel, left) = (channel.clone(), left.clone());
            tokio::spawn(async move {
                let mut c = AuthClient::new(channel);
                while started.elapsed() < LIMIT
                    && left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    let _ = c
                        .sign_in(SignIn {
                            email: "bench@example.org".into(),
                            password: PASSWORD.into(),
                            totp: None,
                        })
                        .await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let done = SIGN_INS - left.load(Ordering::SeqCst);
    let secs = started.elapsed().as_secs_f64();
    let after = common::rss_mib_of("self");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = common::rss_mib_of("self");
    println!("| row | resident MiB | ratio to idle |");
    println!("|---|---:|---:|");
    println!("| idle, one account | {idle:.0} | 1.00 |");
    println!(
        "| after {done} sign-ins at {CONCURRENCY} concurrent ({:.0}/s) | {after:.0} | {:.2} |",
        done as f64 / secs,
        after / idle
    );
    println!("| 2 s later | {settled:.0} | {:.2} |", settled / idle);
    bench.node.shutdown().await;
}
