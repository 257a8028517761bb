//! Sign-in benchmark, with the default (production) argon2 cost:
//! 1. median time of a sign-in with an unknown e-mail vs a wrong password (enumeration);
//! 2. Pong's latency alone, then while 100 sign-ins run concurrently (starvation).
//!
//! Run: `cargo bench --bench signin`. Prints figures and ratios; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use hearth::pb::tangle::client::auth::{auth_client::AuthClient, SignIn};
use hearth::pb::test::v1::{test_auth_service_client::TestAuthServiceClient, PongRequest};
use tonic::transport::Channel;

mod common;
use common::PASSWORD;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn pong(client: &mut TestAuthServiceClient<Channel>, token: &str) -> Duration {
    let mut req = tonic::Request::new(PongRequest {});
    req.metadata_mut()
        .insert("authorization", token.parse().unwrap());
    let start = Instant::now();
    client.pong(req).await.unwrap();
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let bench = common::start(|_| {}).await;
    let channel = bench.channel.clone();
    let mut auth = AuthClient::new(channel.clone());
    let token = common::sign_up(&channel, "bench@example.org").await;
    let p = bench.node.services().config().passwords.clone();
    println!(
        "argon2id m={} KiB t={} p={}, {} cores",
        p.argon2_memory_kib,
        p.argon2_iterations,
        p.argon2_parallelism,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. Enumeration: interleave, alternating which goes first, so drift hits both equally.
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..60 {
        let mut pair = [
            ("nobody@example.org", &mut unknown),
            ("bench@example.org", &mut wrong),
        ];
        if i % 2 == 1 {
            pair.reverse();
        }
        for (email, out) in pair {
            let start = Instant::now();
            let _ = auth
                .sign_in(SignIn {
                    email: email.into(),
                    password: format!("wrong password {i}"),
                    totp: None,
                })
                .await;
            out.push(start.elapsed());
        }
        // Stay below the progressive delay, which would answer without hashing.
        if i % 4 == 3 {
            auth.sign_in(SignIn {
                email: "bench@example.org".into(),
                password: PASSWORD.into(),
                totp: None,
            })
            .await
            .unwrap();
        }
    }
    let (mu, mw) = (percentile(&mut unknown, 0.5), percentile(&mut wrong, 0.5));
    println!(
        "sign-in median: unknown e-mail {:.2} ms | wrong password {:.2} ms | ratio {:.3}",
        ms(mu),
        ms(mw),
        mu.as_secs_f64() / mw.as_secs_f64()
    );

    // 2. Pong alone.
    let mut client = TestAuthServiceClient::new(channel.clone());
    let mut alone = Vec::new();
    for _ in 0..500 {
        alone.push(pong(&mut client, &token).await);
    }
    // Pong while 100 sign-ins are in flight at once (each on its own connection).
    let mut load = Vec::new();
    for _ in 0..100 {
        let ch = Channel::from_shared(bench.node.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        load.push(tokio::spawn(async move {
            AuthClient::new(ch)
                .sign_in(SignIn {
                    email: "bench@example.org".into(),
                    password: PASSWORD.into(),
                    totp: None,
                })
                .await
                .map(|_| ())
        }));
    }
    let started = Instant::now();
    let mut busy = Vec::new();
    while load.iter().any(|h| !h.is_finished()) && busy.len() < 100_000 {
        busy.push(pong(&mut client, &token).await);
    }
    let load_time = started.elapsed();
    for h in load {
        h.await.unwrap().unwrap();
    }
    let (a50, a99) = (percentile(&mut alone, 0.5), percentile(&mut alone, 0.99));
    let (b50, b99) = (percentile(&mut busy, 0.5), percentile(&mut busy, 0.99));
    println!(
        "pong alone:                  p50 {:.2} ms  p99 {:.2} ms  (n={})",
        ms(a50),
        ms(a99),
        alone.len()
    );
    println!(
        "pong during 100 sign-ins:    p50 {:.2} ms  p99 {:.2} ms  (n={}, sign-ins took {:.0} ms)",
        ms(b50),
        ms(b99),
        busy.len(),
        ms(load_time)
    );
    println!(
        "p99 ratio under load: {:.2}x",
        b99.as_secs_f64() / a99.as_secs_f64()
    );
    bench.node.shutdown().await;
}
