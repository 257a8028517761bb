//! What a hostile peer's rotation history costs everyone else (security review #26, item 2):
//! another client writes every 2 ms while nothing else runs (the baseline), then while a
//! peer's Key answer is checked over and over with a 30,000-record history (refused by its
//! length) and with a 1,023-record one (within the 1,024 accepted: every signature verified).
//! Prints the other client's write latency for each, and the delay over the baseline.
//!
//! Run: `cargo bench --bench hostile_peer`. Prints figures; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use hearth::domain::federation::FetchedKey;
use hearth::domain::Services;
use hearth::identity::key::NodeKey;
use hearth::identity::proofs::{rotation_message, Rotation, MAX_ROTATIONS};
use hearth::identity::server_id::ServerId;

const WINDOW: Duration = Duration::from_secs(3);

fn history(a: &NodeKey, b: &NodeKey, n: usize) -> FetchedKey {
    let history = (0..n as u64)
        .map(|i| {
            let (from, to) = if i.is_multiple_of(2) { (a, b) } else { (b, a) };
            Rotation {
                old_key: from.public().to_vec(),
                new_key: to.public().to_vec(),
                at: i + 1,
                sig: from
                    .sign(rotation_message(&to.public(), i + 1).as_bytes())
                    .to_vec(),
            }
        })
        .collect();
    // Odd lengths end at `b`: from a pin of `a`, every record is followed.
    let key = if n.is_multiple_of(2) {
        a.public()
    } else {
        b.public()
    };
    FetchedKey { key, history }
}

struct Figures {
    p50: Duration,
    p99: Duration,
    max: Duration,
    writes: usize,
    errors: u64,
    checks: u64,
}

/// The other client's writes over `WINDOW`, while `hostile` (if any) is checked in a loop.
async fn measure(
    s: &Arc<Services>,
    pin: [u8; 32],
    hostile: Option<(ServerId, FetchedKey)>,
) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let peer = hostile.map(|(origin, fetched)| {
        let (s, stop, checks) = (s.clone(), stop.clone(), checks.clone());
        tokio::spawn(async move {
            let fetched = Arc::new(fetched);
            while !stop.load(Ordering::Relaxed) {
                // Refused or accepted, each check runs in full; an accepted key is unpinned
                // again so the next check follows the whole chain too.
                if s.peers.accept_key(&origin, &fetched).await.is_ok() {
                    let _ = s.peers.pin(&origin, pin).await;
                }
                checks.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let store = s.store().clone();
    let (mut took, mut errors) = (Vec::new(), 0);
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < WINDOW {
        let at = Instant::now();
        i += 1;
        let n = i;
        match store
            .write(move |tx| tx.set_user_name(n, "x").map(|_| ()))
            .await
        {
            Ok(()) => took.push(at.elapsed()),
            Err(_) => errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(p) = peer {
        p.await.unwrap();
    }
    took.sort();
    let pick = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    Figures {
        p50: pick(0.5),
        p99: pick(0.99),
        max: *took.last().unwrap(),
        writes: took.len(),
        errors,
        checks: checks.load(Ordering::Relaxed),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let bench = common::start(|_| {}).await;
    let s = bench.node.services().clone();
    let (a, b) = (NodeKey::generate(), NodeKey::generate());
    let origin: ServerId = "hostile.example.org".parse().unwrap();
    s.peers.pin(&origin, a.public()).await.unwrap();
    println!("another client's write every 2 ms for {WINDOW:?}, SQLite, release build");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8}  delay of p99 over baseline",
        "while", "p50 ms", "p99 ms", "max ms", "writes", "errors", "checks"
    );
    let base = measure(&s, a.public(), None).await;
    let rows = [
        ("nothing (baseline)", None),
        (
            "a 30,000-record history",
            Some((origin.clone(), history(&a, &b, 30_000))),
        ),
        (
            "a 1,023-record history (accepted)",
            Some((origin.clone(), history(&a, &b, MAX_ROTATIONS - 1))),
        ),
    ];
    for (name, hostile) in rows {
        let f = measure(&s, a.public(), hostile).await;
        println!(
            "{:<34} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>7} {:>8}  {:+.3} ms",
            name,
            ms(f.p50),
            ms(f.p99),
            ms(f.max),
            f.writes,
            f.errors,
            f.checks,
            ms(f.p99) - ms(base.p99),
        );
    }
    bench.node.shutdown().await;
}
