//! Issue: a PostgreSQL cluster survives its database. Three real `hearth serve` processes on
//! one PostgreSQL serve a steady stream of sign-ups, sign-ins and Pongs while the database
//! is restarted, while every one of Hearth's connections is terminated, while the database
//! is down for seconds (the nodes say so on `/readyz`, not on `/healthz`), and while one
//! node is killed with -9. Afterwards every acknowledged sign-up is in the database, every
//! node served again within 10 s of the database coming back without being restarted, no
//! call answered INTERNAL (a budget that cannot be read refuses: UNAVAILABLE), and each
//! node logged the outages, not each refused call.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth::pb::tangle::client::auth as tangle;
use tonic::transport::Channel;
use tonic::Code;

use crate::pg::{url_on, PgServer};
use crate::served::Served;
use crate::support::{authed, reason, PASSWORD};
use hearth::pb::protocol::auth::v1::{
    auth_service_client::AuthServiceClient as Harmony, BeginAuthRequest,
};

/// What the load saw, per node.
#[derive(Default)]
struct Seen {
    /// The node was killed: its calls fail in the client's transport from now on, so their
    /// codes say nothing about what a node answers.
    killed: bool,
    /// Sign-ups answered OK: they must be in the database afterwards.
    acked: Vec<String>,
    /// Answers by status code, across sign-ups, sign-ins and Pongs.
    codes: BTreeMap<String, u64>,
    /// When the node last answered a sign-up OK.
    last_ok: Option<Instant>,
}

fn nodes(pg: &PgServer) -> Vec<Served> {
    let url = url_on(pg.port, "faults");
    let env = |data: &str| -> Vec<(String, String)> {
        [
            ("HEARTH_STORE_URL", url.as_str()),
            ("HEARTH_SERVER_ID", "faults.test"),
            ("HEARTH_PASSWORDS_ARGON2_MEMORY_KIB", "256"),
            ("HEARTH_PASSWORDS_ARGON2_ITERATIONS", "1"),
            ("HEARTH_ACCOUNTS_SIGN_INS_PER_IP_PER_MINUTE", "1000000"),
            ("HEARTH_LIMITS_HASHING_CALLS_PER_IP_PER_MINUTE", "1000000"),
            ("HEARTH_LIMITS_SESSION_CALLS_PER_IP_PER_MINUTE", "1000000"),
            ("HEARTH_LOG", "warn"),
            ("HEARTH_DATA_DIR", data),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
    let data: Vec<_> = (0..3).map(|n| dir.path().join(format!("n{n}"))).collect();
    let start = |d: &std::path::Path| {
        let e = env(d.to_str().unwrap());
        let refs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Served::start_in(d, &refs)
    };
    let first = start(&data[0]);
    let mut all = vec![first];
    for d in &data[1..] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::copy(data[0].join("node.key"), d.join("node.key")).unwrap();
        all.push(start(d));
    }
    all
}

async fn channel(n: &Served) -> Channel {
    Channel::from_shared(n.url.clone())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect_lazy()
}

fn code_name(c: Code) -> String {
    format!("{c:?}")
}

/// One node's load: a sign-up, a sign-in and a Pong, over and over, until `stop`.
async fn load(
    node: usize,
    ch: Channel,
    token: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut c = tangle::auth_client::AuthClient::new(ch.clone());
    let mut t = hearth::pb::test::v1::test_auth_service_client::TestAuthServiceClient::new(ch);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let email = format!("n{node}-{i}@example.org");
        let up = c
            .sign_up(tangle::SignUp {
                email: Some(email.clone()),
                password: Some(PASSWORD.into()),
                name: "Load".into(),
                invite_code: None,
            })
            .await;
        let inn = c
            .sign_in(tangle::SignIn {
                email: "steady@example.org".into(),
                password: PASSWORD.into(),
                totp: None,
            })
            .await;
        let pong = t
            .pong(authed(hearth::pb::test::v1::PongRequest {}, &token))
            .await;
        let codes = [
            up.as_ref().err().map(|e| e.code()),
            inn.err().map(|e| e.code()),
            pong.err().map(|e| e.code()),
        ];
        {
            let mut s = seen.lock().unwrap();
            if up.is_ok() {
                s.acked.push(email);
                s.last_ok = Some(Instant::now());
            }
            let killed = s.killed;
            for code in codes.into_iter().filter(|_| !killed) {
                *s.codes
                    .entry(code.map_or("Ok".into(), code_name))
                    .or_default() += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until every listed node answered a sign-up OK after `since`; the longest wait.
async fn all_serve_again(seen: &[Arc<Mutex<Seen>>], since: Instant, what: &str) -> Duration {
    loop {
        let waits: Vec<Option<Instant>> = seen
            .iter()
            .map(|s| s.lock().unwrap().last_ok.filter(|t| *t > since))
            .collect();
        if waits.iter().all(Option::is_some) {
            let worst = waits.iter().flatten().max().unwrap().duration_since(since);
            println!("{what}: every node served again within {worst:?}");
            return worst;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "{what}: a node did not serve again within 10 s: {waits:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(n: &Served, path: &str) -> u16 {
    reqwest::get(format!("{}{path}", n.url))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (bash scripts/test.sh runs it)"]
async fn a_cluster_survives_its_database_and_a_killed_node() {
    let pg = PgServer::start();
    let mut nodes = nodes(&pg);
    let mut first = tangle::auth_client::AuthClient::new(channel(&nodes[0]).await);
    let token = first
        .sign_up(tangle::SignUp {
            email: Some("steady@example.org".into()),
            password: Some(PASSWORD.into()),
            name: "Steady".into(),
            invite_code: None,
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Seen>>> = (0..3).map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        tasks.push(tokio::spawn(load(
            n,
            channel(node).await,
            token.clone(),
            stop.clone(),
            seen[n].clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Steady state: three nodes writing at once, every call answered.
    for s in &seen {
        let s = s.lock().unwrap();
        assert!(
            s.codes.keys().all(|c| c == "Ok") && !s.acked.is_empty(),
            "before any fault: {:?}",
            s.codes
        );
    }

    // 1. A restart: every connection closes; the database is back when pg_ctl returns.
    let p = &pg;
    tokio::task::block_in_place(|| p.restart());
    let back = Instant::now();
    all_serve_again(&seen, back, "pg_ctl restart -m fast").await;

    // 2. Every one of Hearth's connections terminated, the database up all along.
    let killed = pg.sql(
        "postgres",
        "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity \
         WHERE datname = 'faults' AND pid <> pg_backend_pid()",
    );
    let back = Instant::now();
    println!("terminated {killed:?} connections");
    all_serve_again(&seen, back, "pg_terminate_backend").await;

    // 3. Down for 3 s: not ready meanwhile (alive all the same), ready again after.
    tokio::task::block_in_place(|| p.stop());
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in &nodes {
        assert_eq!(
            status(n, "/readyz").await,
            503,
            "ready without its database"
        );
        assert_eq!(
            status(n, "/healthz").await,
            200,
            "not alive without its database"
        );
        // Limits fail closed: a call whose budget cannot be read is refused, retryably.
        let begun = Harmony::new(channel(n).await)
            .begin_auth(BeginAuthRequest {
                for_guest_token: None,
            })
            .await;
        let e = begun.expect_err("a flow begun without its database");
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        assert_eq!(reason(&e), "STORE_UNAVAILABLE", "{e:?}");
    }
    tokio::task::block_in_place(|| p.start_again());
    let back = Instant::now();
    all_serve_again(&seen, back, "stopped 3 s, started").await;
    for n in &nodes {
        assert_eq!(status(n, "/readyz").await, 200, "not ready again");
    }

    // 4. One node killed with -9 under load; the others go on.
    let gone = nodes.pop().unwrap();
    seen[2].lock().unwrap().killed = true;
    drop(gone);
    let after_kill = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    all_serve_again(&seen[..2], after_kill, "node killed -9").await;

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    // Every acknowledged sign-up is in the database.
    let stored: std::collections::HashSet<String> = pg
        .sql("faults", "SELECT email FROM users")
        .into_iter()
        .collect();
    let mut codes = BTreeMap::new();
    let mut acked = 0;
    for s in &seen {
        let s = s.lock().unwrap();
        for email in &s.acked {
            assert!(
                stored.contains(email),
                "acknowledged sign-up {email} was lost"
            );
        }
        acked += s.acked.len();
        for (c, n) in &s.codes {
            *codes.entry(c.clone()).or_insert(0) += n;
        }
    }
    println!("acknowledged sign-ups: {acked}, all stored; answers: {codes:?}");
    assert!(acked > 100, "too little load to mean anything: {acked}");
    // Lines per change of the database's state, not per call: three outages (a restart may
    // show as two, down while stopping and again while starting).
    for n in nodes {
        let log = n.stop();
        let lines = log.lines().count();
        println!("a node logged {lines} lines at warn and above");
        assert!(lines <= 40, "a node logged per call: {lines} lines:\n{log}");
        assert!(
            log.lines()
                .filter(|l| l.contains("PostgreSQL cannot be reached"))
                .count()
                <= 6,
            "{log}"
        );
    }
    assert!(
        !codes.contains_key("Internal") && !codes.contains_key("Unknown"),
        "a call answered INTERNAL or UNKNOWN: {codes:?}"
    );
}
