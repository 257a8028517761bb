//! A full mesh of `HEARTH_MESH_NODES` nodes (100 by default) in one process, sharing one
//! DNS authority: they all link, users log in across at random without a key fetch or a DNS
//! query, a node dies and the rest carry on and show it down, and a revocation at home
//! reaches every node holding a session made from it. Prints the figures it measured.
use std::time::{Duration, Instant};

use hearth::domain::federation::links::PROBE_EVERY_MS;
use rand::{Rng, SeedableRng};

use crate::peers::key_fetches;
use crate::revocation::federated;
use crate::support::{Cluster, Member};

fn nodes() -> usize {
    std::env::var("HEARTH_MESH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// This process's resident memory, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// CPU time this process used so far (user + system), in clock ticks of 10 ms.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// How many of `m`'s peers are in `state`.
async fn peers_in(m: &Member, state: &str) -> usize {
    let rows = m.domain().peers.list().await.unwrap();
    rows.iter().filter(|p| p.state == state).count()
}

async fn all_key_requests(live: &[&Member]) -> u64 {
    futures_util::future::join_all(live.iter().map(|m| key_fetches(m)))
        .await
        .into_iter()
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `count` logins, each of a random node's user into another random node of `live`;
/// their sorted latencies (Federate at home + LoginFederated there).
async fn random_logins(
    live: &[&Member],
    tokens: &[(String, String)],
    rng: &mut rand::rngs::StdRng,
    count: usize,
) -> Vec<Duration> {
    let mut took = Vec::with_capacity(count);
    for _ in 0..count {
        let home = rng.gen_range(0..live.len());
        let mut target = rng.gen_range(0..live.len() - 1);
        if target >= home {
            target += 1;
        }
        let (home, target) = (live[home], live[target]);
        let token = &tokens
            .iter()
            .find(|(id, _)| *id == home.server_id)
            .unwrap()
            .1;
        let start = Instant::now();
        let session = federated(home, token, target).await;
        took.push(start.elapsed());
        target.pong(&session).await.unwrap();
    }
    took.sort();
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mesh_links_logs_in_across_outlives_a_death_and_revokes_everywhere() {
    let n = nodes();
    let names: Vec<String> = (0..n).map(|i| format!("n{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut c = Cluster::start_with(&names, Default::default(), |_, config| {
        // Linking is a few writes per pair of nodes; the test's disk need not sync each.
        config.store.synchronous = hearth::config::Synchronous::Normal;
    })
    .await;
    println!("mesh: {n} nodes started in {:.1?}", started.elapsed());

    // Every node asks for every other, as `hearth peer link` would; then all link.
    let linking = Instant::now();
    let asks = c.members.iter().map(|m| {
        let others: Vec<_> = c
            .members
            .iter()
            .filter(|o| o.server_id != m.server_id)
            .map(Member::id)
            .collect();
        async move {
            for o in others {
                m.domain().peers.set_link(&o, true, None).await.unwrap();
            }
        }
    });
    futures_util::future::join_all(asks).await;
    loop {
        let linked =
            futures_util::future::join_all(c.members.iter().map(|m| peers_in(m, "linked"))).await;
        if linked.iter().all(|&l| l == n - 1) {
            break;
        }
        assert!(
            linking.elapsed() < Duration::from_secs(150),
            "after 150 s, links per node: {linked:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let link_time = linking.elapsed();
    let rss = rss_kib().saturating_sub(rss_before);
    println!(
        "mesh: {n} nodes linked (full mesh, {} links) in {link_time:.1?}; RSS {} MiB, {} KiB per node",
        n * (n - 1),
        rss / 1024,
        rss / n as u64
    );

    // Idle: probes only (every peer every 20 s); one probe round measured.
    let (cpu0, t0) = (cpu_ticks(), Instant::now());
    tokio::time::sleep(Duration::from_millis(PROBE_EVERY_MS)).await;
    let cpu_ms = (cpu_ticks() - cpu0) * 10;
    println!(
        "mesh: idle CPU {:.2} ms per second per node ({} peers each)",
        cpu_ms as f64 / t0.elapsed().as_secs_f64() / n as f64,
        n - 1
    );

    // Hold every node's timers back a minute: no probe or discovery refresh runs meanwhile,
    // so what the logins fetch and ask DNS is all that is counted.
    for m in &c.members {
        m.clock.rewind_ms(60_000);
    }
    let signups = c.members.iter().map(|m| async move {
        let email = format!("u@{}", m.server_id);
        (m.server_id.clone(), m.sign_up(&email).await.0)
    });
    let tokens: Vec<(String, String)> = futures_util::future::join_all(signups).await;
    let seed: u64 = rand::random();
    println!("mesh: login seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let live: Vec<&Member> = c.members.iter().collect();
    // Probes already on their way when the timers were held still ask for keys: on a
    // loaded machine (CI), a round of 9,900 runs past the rewind. Count from when none
    // has arrived for half a second.
    let mut keys0 = all_key_requests(&live).await;
    let settling = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = all_key_requests(&live).await;
        if now == keys0 || settling.elapsed() > Duration::from_secs(20) {
            break;
        }
        keys0 = now;
    }
    let dns0 = c.dns.queries();
    let before = random_logins(&live, &tokens, &mut rng, 200).await;
    let (keys, dns) = (
        all_key_requests(&live).await - keys0,
        c.dns.queries() - dns0,
    );
    println!(
        "mesh: 200 random cross-node logins: median {:.1?}, p99 {:.1?}; {keys} key fetches, {dns} DNS queries",
        percentile(&before, 0.5),
        percentile(&before, 0.99)
    );
    assert_eq!(
        (keys, dns),
        (0, 0),
        "warm logins fetch no key and ask no DNS"
    );

    // One node dies; logins among the others keep their latency.
    let dead = n / 2;
    c.members[dead].stop().await;
    let dead_id = c.members[dead].server_id.clone();
    let live: Vec<&Member> = c.members.iter().filter(|m| m.node.is_some()).collect();
    let after = random_logins(&live, &tokens, &mut rng, 200).await;
    println!(
        "mesh: with {dead_id} dead: median {:.1?}, p99 {:.1?}",
        percentile(&after, 0.5),
        percentile(&after, 0.99)
    );
    assert!(
        percentile(&after, 0.5) <= percentile(&before, 0.5) * 2 + Duration::from_millis(10),
        "logins slowed down: {:?} → {:?}",
        percentile(&before, 0.5),
        percentile(&after, 0.5)
    );

    // Let time run again: the next probes find the dead node down, on every peer.
    for m in &live {
        m.clock.advance_ms(60_000 + PROBE_EVERY_MS);
    }
    let probing = Instant::now();
    let dead_ref = &dead_id;
    loop {
        let rows = futures_util::future::join_all(live.iter().map(|m| async move {
            let rows = m.domain().peers.list().await.unwrap();
            rows.iter()
                .any(|p| p.server_id == *dead_ref && p.state == "down" && p.last_error.is_some())
        }))
        .await;
        if rows.iter().all(|&down| down) {
            break;
        }
        assert!(
            probing.elapsed() < Duration::from_secs(60),
            "{} of {} peers still show {dead_id} up 60 s after their probes were due",
            rows.iter().filter(|&&d| !d).count(),
            live.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "mesh: every peer shows {dead_id} down {:.1?} after its probe was due",
        probing.elapsed()
    );

    // A user of the first node logs into every other live node; its home session ends.
    let home = live[0];
    let token = &tokens[0].1;
    let mut foreign = Vec::new();
    for target in &live[1..] {
        foreign.push((*target, federated(home, token, target).await));
    }
    let id = home.session_id(token).await;
    let revoked = Instant::now();
    home.revoke_sessions(token, vec![id]).await;
    let refusals = foreign.iter().map(|(node, session)| async move {
        loop {
            match node.pong(session).await {
                Err(s) if s.code() == tonic::Code::Unauthenticated => return revoked.elapsed(),
                Err(s) => panic!("pong on {}: {s:?}", node.server_id),
                Ok(()) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(10),
                "{} still accepts the session",
                node.server_id
            );
        }
    });
    let mut took = futures_util::future::join_all(refusals).await;
    took.sort();
    println!(
        "mesh: home revocation → refused on all {} nodes: median {:.1?}, max {:.1?}",
        took.len(),
        percentile(&took, 0.5),
        took[took.len() - 1]
    );
    assert!(
        took[took.len() - 1] < Duration::from_secs(2),
        "a foreign session outlived its home session by {:?}",
        took[took.len() - 1]
    );
}
