//! The benchmark table (issue: benchmarks): every row driven by one load generator — N
//! concurrent calls over M connections on loopback (`BENCH_CONCURRENCY`, `BENCH_CONNECTIONS`,
//! `BENCH_SECONDS`) — with throughput, p50 and p99, and each row's ratio to its baseline from
//! the same run. A row and its baseline are measured in alternating rounds
//! (`BENCH_ROUNDS`, 3, of a third of the window each; the SignIn rows on PostgreSQL, whose
//! ratios sit at their goal, at least seven of that length), so a machine that speeds up or slows
//! down during the run (shared hosts do, by a third) moves both alike; the ratio is the
//! median of the rounds' ratios, printed with their range, so one disturbed round neither
//! moves it nor hides.
//! Printed as a markdown table; `scripts/bench.sh` also writes it to docs/BENCHMARKS.md.
//! Asserts nothing. Traffic goes to 127.0.0.1 only; every loop is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::domain::model::{DeviceFacts, Session, User};
use hearth::domain::scopes::ScopeSet;
use hearth::pb::protocol::auth::v1::{
    auth_service_client::AuthServiceClient, CheckLoggedInRequest, FederateRequest,
    LoginFederatedRequest,
};
use hearth::pb::tangle::client::auth::{auth_client::AuthClient, SignIn};
use hearth::pb::test::v1::{
    test_auth_service_client::TestAuthServiceClient,
    test_no_auth_service_client::TestNoAuthServiceClient, PingRequest, PongRequest,
};
use hearth::pb::tokens::v1::{
    tokens_service_client::TokensServiceClient, CreateTokenRequest, TokenMetadata, TokenPermissions,
};
use hearth::secret::{BearerSecret, SecretKind};
use rand::seq::SliceRandom;
use rand::Rng;
use tonic::transport::Channel;

/// Distinct sessions the in-process resolve row uses, at most: fewer than the activity
/// stamps a node keeps pending (100k), so none is dropped.
const IN_PROCESS_MISSES: usize = 90_000;

/// Bearer tokens of one kind (all the same length) in one allocation, so holding a
/// sample of a million doesn't pin the pages the rest were generated in (the memory rows
/// measure this process).
struct TokenPool {
    text: String,
    width: usize,
}

impl TokenPool {
    fn with_capacity(n: usize) -> Self {
        let width = BearerSecret::generate(SecretKind::Session).expose().len();
        Self {
            text: String::with_capacity(n * width),
            width,
        }
    }

    fn push(&mut self, token: &str) {
        assert_eq!(token.len(), self.width);
        self.text.push_str(token);
    }

    fn len(&self) -> usize {
        self.text.len() / self.width
    }

    fn get(&self, k: usize) -> &str {
        &self.text[k * self.width..(k + 1) * self.width]
    }

    /// Shuffles the tokens and splits them into the first `n` and the rest.
    fn shuffle_split(self, n: usize, rng: &mut impl Rng) -> (Self, Self) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        let mut parts = (Self::with_capacity(n), Self::with_capacity(self.len() - n));
        for (i, k) in order.into_iter().enumerate() {
            let part = if i < n { &mut parts.0 } else { &mut parts.1 };
            part.push(self.get(k));
        }
        parts
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy)]
struct Load {
    concurrency: usize,
    connections: usize,
    window: Duration,
}

struct Stats {
    calls: usize,
    /// Calls that failed: they count in no rate, and a row with any is marked.
    errors: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// For a row measured with [`pair`]: its rate over its baseline's in each round.
    round_ratios: Vec<f64>,
}

/// What one or more windows of load produced: the latency of each successful call, and
/// the seconds the windows lasted.
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    errors: usize,
    secs: f64,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.times.extend(other.times);
        self.errors += other.errors;
        self.secs += other.secs;
    }

    fn stats(mut self) -> Stats {
        self.times.sort();
        let at = |p: f64| {
            self.times
                .get(((self.times.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Stats {
            calls: self.times.len(),
            errors: self.errors,
            rate: self.rate(),
            p50: at(0.5),
            p99: at(0.99),
            round_ratios: Vec::new(),
        }
    }

    fn rate(&self) -> f64 {
        self.times.len() as f64 / self.secs.max(1e-9)
    }
}

/// A baseline and a row measured in alternating rounds (base, row, base, row, …); the row
/// keeps each round's ratio, so its ratio is their median: a burst on a shared host that
/// hits one round does not move it (the table shows the spread too).
async fn pair<A, FA, B, FB>(base: A, row: B) -> (Stats, Stats)
where
    A: FnMut(Duration) -> FA,
    FA: Future<Output = Samples>,
    B: FnMut(Duration) -> FB,
    FB: Future<Output = Samples>,
{
    pair_scaled(1, base, row).await
}

/// [`pair`] with rounds `scale` times as long: for rows whose calls take a large part of a
/// round (SignIn queues for ~0.6 s), where a short round measures mostly its ramp.
async fn pair_scaled<A, FA, B, FB>(scale: u32, base: A, row: B) -> (Stats, Stats)
where
    A: FnMut(Duration) -> FA,
    FA: Future<Output = Samples>,
    B: FnMut(Duration) -> FB,
    FB: Future<Output = Samples>,
{
    pair_at_least(scale, 1, base, row).await
}

/// Rounds at least the SignIn rows on PostgreSQL take: their ratios sit within a few
/// hundredths of their goal, and three rounds of the same code spread by ±0.03 (a shared
/// host's noise), so a median of three could not tell met from missed.
const GOAL_ROUNDS: usize = 7;

/// [`pair_scaled`] with at least `min_rounds` rounds, each as long as its rounds.
async fn pair_at_least<A, FA, B, FB>(
    scale: u32,
    min_rounds: usize,
    mut base: A,
    mut row: B,
) -> (Stats, Stats)
where
    A: FnMut(Duration) -> FA,
    FA: Future<Output = Samples>,
    B: FnMut(Duration) -> FB,
    FB: Future<Output = Samples>,
{
    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let window = Duration::from_secs(env("BENCH_SECONDS", 3) as u64) * scale.max(1) / rounds as u32;
    let rounds = rounds.max(min_rounds);
    let (mut a, mut b) = (Samples::default(), Samples::default());
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let (x, y) = (base(window).await, row(window).await);
        ratios.push(y.rate() / x.rate().max(1e-9));
        a.merge(x);
        b.merge(y);
    }
    let mut row = b.stats();
    row.round_ratios = ratios;
    (a.stats(), row)
}

/// Whether the row group `name` runs: `BENCH_ROWS` is a comma list of tokens, stages, distinct,
/// signin, federated, memory, pg, log (default: all). The baselines (plain tonic, Ping, Pong)
/// always run.
fn wanted(name: &str) -> bool {
    match std::env::var("BENCH_ROWS") {
        Ok(rows) => rows.split(',').any(|r| r.trim() == name),
        Err(_) => true,
    }
}

async fn connect(url: &str, n: usize) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            Channel::from_shared(url.to_owned())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    out
}

/// One authenticated Pong with `token`; whether it succeeded.
async fn call_pong(ch: Channel, token: String) -> bool {
    TestAuthServiceClient::new(ch)
        .pong(authed(PongRequest {}, &token))
        .await
        .is_ok()
}

/// One SignIn of the benchmark account; whether it succeeded.
/// The account the sign-in rows sign in thousands of times. Not the one `token` belongs to:
/// the session cap ends an account's least active sessions, which would end `token`'s, and
/// the distinct rows seed a million sessions for that one, which every capped sign-in
/// would have to sort.
const SIGN_IN_ACCOUNT: &str = "signin@example.org";

async fn call_ping(ch: Channel) -> bool {
    TestNoAuthServiceClient::new(ch)
        .ping(PingRequest {})
        .await
        .is_ok()
}

async fn call_sign_in(ch: Channel) -> bool {
    call_sign_in_as(ch, SIGN_IN_ACCOUNT.into()).await
}

async fn call_sign_in_as(ch: Channel, email: String) -> bool {
    AuthClient::new(ch)
        .sign_in(SignIn {
            email,
            password: common::PASSWORD.into(),
            totp: None,
        })
        .await
        .is_ok()
}

/// Runs `call(channel, i)` from `load.concurrency` tasks spread over `channels` for the
/// window (or until `limit` calls); failed calls are counted, not timed, and in no rate.
async fn drive<F, Fut>(channels: &[Channel], load: Load, limit: usize, call: F) -> Stats
where
    F: Fn(Channel, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    samples(channels, load, limit, call).await.stats()
}

/// [`drive`]'s raw samples; `channels` may be any client handle (task `t` uses the
/// `t mod len`-th).
async fn samples<C, F, Fut>(channels: &[C], load: Load, limit: usize, call: F) -> Samples
where
    C: Clone + Send + 'static,
    F: Fn(C, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..load.concurrency)
        .map(|t| {
            let (call, next) = (call.clone(), next.clone());
            let channel = channels[t % channels.len()].clone();
            tokio::spawn(async move {
                let (mut times, mut errors) = (Vec::new(), 0);
                while started.elapsed() < load.window {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= limit {
                        break;
                    }
                    let t0 = Instant::now();
                    match call(channel.clone(), i).await {
                        true => times.push(t0.elapsed()),
                        false => errors += 1,
                    }
                }
                (times, errors)
            })
        })
        .collect();
    let (mut times, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (t, e) = t.await.unwrap();
        times.extend(t);
        errors += e;
    }
    Samples {
        times,
        errors,
        secs: started.elapsed().as_secs_f64(),
    }
}

/// A local account without a password, as the memory rows seed a million of them.
fn seeded_user(id: u64, domain: &str, now: u64) -> User {
    User {
        id,
        email: Some(format!("user{id}@{domain}")),
        name: "U".into(),
        password_hash: None,
        email_verified: false,
        home: None,
        disabled: false,
        created_at: now,
    }
}

/// `load` for `window`.
fn for_window(load: Load, window: Duration) -> Load {
    Load { window, ..load }
}

fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

struct Table(Vec<String>);

impl Table {
    /// A row; its ratio is the median of its rounds' ratios when it was measured with
    /// [`pair`] (with their range), else its rate over `base`'s.
    fn row(&mut self, name: &str, s: &Stats, base: Option<(&str, f64)>) {
        let (ratio, shown) = match (base, &s.round_ratios[..]) {
            (None, _) => (1.0, "1.00".to_owned()),
            (Some((_, b)), []) => (s.rate / b, format!("{:.2}", s.rate / b)),
            (Some(_), [one]) => (*one, format!("{one:.2}")),
            (Some(_), rounds) => {
                let mut sorted = rounds.to_vec();
                sorted.sort_by(f64::total_cmp);
                let median = match sorted.len() % 2 {
                    1 => sorted[sorted.len() / 2],
                    _ => (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0,
                };
                let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
                (median, format!("{median:.2} ({lo:.2}–{hi:.2})"))
            }
        };
        let of = base.map_or("itself", |(n, _)| n);
        let errors = match s.errors {
            0 => "0".to_owned(),
            n => format!("**{n}**"),
        };
        let goal = match goal_of(name) {
            Some(g) if ratio >= g => format!("≥ {g:.2}: met"),
            Some(g) => format!("≥ {g:.2}: **not met**"),
            None => "–".to_owned(),
        };
        self.0.push(format!(
            "| {name} | {:.0} | {:.2} | {:.2} | {shown} | {of} | {errors} | {goal} |",
            s.rate,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3
        ));
    }

    fn note(&mut self, name: &str, value: String, ratio: String, of: &str) {
        self.0.push(format!(
            "| {name} | {value} | – | – | {ratio} | {of} | – | – |"
        ));
    }
}

/// The ratio a row must reach, from the open issues (#27, #32): rows named exactly, or by
/// their start when the name given ends in a space.
fn goal_of(row: &str) -> Option<f64> {
    const GOALS: &[(&str, f64)] = &[
        ("Ping (public)", 0.90),
        ("Pong (one session)", 0.95),
        ("Pong over ", 0.70),
        ("SignIn", 0.95),
        ("SignIn, three nodes on one PostgreSQL", 0.90),
        ("SignIn, one node on PostgreSQL", 0.90),
        ("SignIn, one account per call, one node on PostgreSQL", 0.90),
    ];
    GOALS
        .iter()
        .find(|(name, _)| row == *name || (name.ends_with(' ') && row.starts_with(name)))
        .map(|(_, g)| *g)
}

/// Runs `sql` on the database of `url` (on a thread of its own: the synchronous driver may
/// not run inside the runtime).
fn run_sql(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(&sql).unwrap();
    })
    .join()
    .unwrap();
}

/// Sign-ups per second on 1, 2 and 3 nodes sharing one PostgreSQL (argon2 at its cheapest,
/// so the database is what is measured), and how much of the database's work was waiting
/// for a lock: `pg_stat_activity` sampled every 5 ms, Hearth's active backends that wait
/// on a lock against all of them. With one cluster-wide write lock, three nodes queued
/// behind each other; now they should not.
async fn sign_ups_on_one_database(table: &mut Table, admin_url: &str, load: Load) {
    use hearth::pb::tangle::client::auth::SignUp;
    // A database of its own: a cluster with an identity of its own.
    let db = format!("signups_{}", rand::random::<u32>());
    let url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => return,
    };
    run_sql(admin_url, &format!("CREATE DATABASE {db}"));
    let url = url.as_str();
    let edit = {
        let url = url.to_owned();
        move |c: &mut hearth::Config| {
            c.store.url = Some(url.clone());
            c.limits.max_requests_in_flight = 100_000;
            c.passwords.argon2_memory_kib = 256;
            c.passwords.argon2_iterations = 1;
            // The load generator speaks for many clients (X-Forwarded-For).
            c.listen.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        }
    };
    let first = common::start(edit.clone()).await;
    let mut nodes = vec![first];
    for _ in 1..3 {
        nodes.push(common::start_beside(&nodes[0], edit.clone()).await);
    }
    let mut one = 0.0;
    // (nodes, client addresses): the same 24 callers each time, spread over the nodes; from
    // 4,096 addresses (each with its own budget rows), then all from one address, whose
    // budget row every call must lock in turn (that is the per-client limit working).
    for (n, addresses) in [(1, 4096), (2, 4096), (3, 4096), (3, 1)] {
        let mut chans = Vec::new();
        for node in &nodes[..n] {
            chans.extend(connect(&node.node.url(), 2).await);
        }
        let (stop, url) = (Arc::new(AtomicUsize::new(0)), url.to_owned());
        let sampler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                let (mut active, mut waiting) = (0u64, 0u64);
                while stop.load(Ordering::Relaxed) == 0 {
                    let r = c
                        .query_one(
                            "SELECT count(*) FILTER (WHERE state = 'active'), \
                                    count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock') \
                             FROM pg_stat_activity WHERE datname = current_database() \
                               AND pid <> pg_backend_pid()",
                            &[],
                        )
                        .unwrap();
                    active += r.get::<_, i64>(0) as u64;
                    waiting += r.get::<_, i64>(1) as u64;
                    std::thread::sleep(Duration::from_millis(5));
                }
                (active, waiting)
            })
        };
        let writes_before: Vec<_> = nodes
            .iter()
            .map(|x| x.node.services().store().timings())
            .collect();
        let run = rand::random::<u32>();
        let stats = drive(
            &chans,
            Load {
                concurrency: 24,
                ..load
            },
            usize::MAX,
            move |ch, i| async move {
                let mut req = tonic::Request::new(SignUp {
                    email: Some(format!("s{run}-{i}@example.org")),
                    password: Some(common::PASSWORD.into()),
                    name: "S".into(),
                    invite_code: None,
                });
                let client = 0x0a00_0000u32 + (i % addresses) as u32;
                req.metadata_mut().insert(
                    "x-forwarded-for",
                    std::net::Ipv4Addr::from(client)
                        .to_string()
                        .parse()
                        .unwrap(),
                );
                AuthClient::new(ch).sign_up(req).await.is_ok()
            },
        )
        .await;
        stop.store(1, Ordering::Relaxed);
        let (active, waiting) = sampler.join().unwrap();
        let (mut writes, mut micros) = (0, 0);
        for (x, before) in nodes.iter().zip(writes_before) {
            let after = x.node.services().store().timings();
            writes += after.writes - before.writes;
            micros += after.write_micros - before.write_micros;
        }
        if n == 1 {
            one = stats.rate;
        }
        table.note(
            &format!(
                "sign-ups on {n} node(s), one PostgreSQL, from {addresses} address(es) (cheapest argon2)"
            ),
            format!(
                "{:.0}/s; a write {:.2} ms; lock waits {:.1}% of active backends",
                stats.rate,
                micros as f64 / 1000.0 / writes.max(1) as f64,
                100.0 * waiting as f64 / active.max(1) as f64
            ),
            format!("{:.2}", stats.rate / one.max(1e-9)),
            "1 node",
        );
    }
}

/// CPU time so far of this process's threads whose name starts with `prefix` (Linux
/// truncates thread names to 15 bytes).
fn threads_cpu(prefix: &str) -> Duration {
    let ticks: u64 = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| {
            let (head, tail) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1;
            let fields: Vec<&str> = tail.split_whitespace().collect();
            // After the name: state is field 3, utime 14 and stime 15 (proc(5)).
            let used =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            name.starts_with(prefix).then_some(used)
        })
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn rss_mib() -> f64 {
    common::rss_mib_of("self")
}

/// `ClientMessage{id, <member>: body}` of the Osmium socket.
fn envelope(id: u32, member: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    prost::encoding::uint32::encode(1, &id, &mut b);
    prost::encoding::bytes::encode(member, &body.to_vec(), &mut b);
    b
}

/// What the socket row reads of a `ServerMessage`: whether its result has an `account`.
#[derive(Clone, PartialEq, prost::Message)]
struct ServerMessage {
    #[prost(message, optional, tag = "3")]
    result: Option<RpcResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RpcResult {
    #[prost(bytes = "vec", optional, tag = "32")]
    account: Option<Vec<u8>>,
}

/// Ping over hRPC (HTTP/1.1 POSTs with a bare body, as Harmony's client sends them)
/// against Ping over gRPC; GetAccount over the Osmium socket (one socket per concurrent
/// caller, as each Osmium app holds one; Ping is no member of the socket) against
/// GetAccount over gRPC with the same session.
async fn transport_rows(table: &mut Table, url: &str, chans: &[Channel], token: &str, load: Load) {
    use futures_util::{SinkExt, StreamExt};
    use hearth::pb::tangle::client::auth::GetAccount;
    use prost::Message;
    let on = |w| for_window(load, w);
    let ping_call = |ch, _| call_ping(ch);
    let http = reqwest::Client::new();
    let ping_url = format!("{url}/test.v1.TestNoAuthService/Ping");
    let hrpc_call = move |c: reqwest::Client, _| {
        let req = c
            .post(ping_url.clone())
            .header("content-type", "application/hrpc")
            .body(Vec::new());
        async move { req.send().await.is_ok_and(|r| r.status() == 200) }
    };
    let (ping, hrpc) = pair(
        |w| samples(chans, on(w), usize::MAX, ping_call),
        |w| {
            samples(
                std::slice::from_ref(&http),
                on(w),
                usize::MAX,
                hrpc_call.clone(),
            )
        },
    )
    .await;
    table.row(
        "Ping over hRPC (HTTP/1.1)",
        &hrpc,
        Some(("Ping over gRPC", ping.rate)),
    );

    // One bound socket per concurrent caller.
    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;
    let mut sockets = Vec::new();
    for _ in 0..load.concurrency {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.replace("http://", "ws://") + "/")
            .await
            .unwrap();
        let authorize = hearth::pb::tangle::client::auth::Authorize {
            token: token.to_owned(),
        };
        let msg = envelope(1, 20, &authorize.encode_to_vec());
        ws.send(tokio_tungstenite::tungstenite::Message::Binary(msg.into()))
            .await
            .unwrap();
        ws.next().await.unwrap().unwrap();
        sockets.push(Arc::new(tokio::sync::Mutex::new(ws)));
    }
    let get_account = envelope(2, 75, &GetAccount {}.encode_to_vec());
    let get_account = bytes::Bytes::from(get_account);
    let socket_call = move |ws: Arc<tokio::sync::Mutex<Ws>>, _| {
        let frame = get_account.clone();
        async move {
            let mut ws = ws.lock().await;
            if ws
                .send(tokio_tungstenite::tungstenite::Message::Binary(frame))
                .await
                .is_err()
            {
                return false;
            }
            // An answer with an `account`, not an error.
            match ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(b))) => {
                    ServerMessage::decode(&b[..])
                        .is_ok_and(|m| m.result.is_some_and(|r| r.account.is_some()))
                }
                _ => false,
            }
        }
    };
    let t = token.to_owned();
    let grpc_account = move |ch: Channel, _| {
        let t = t.clone();
        async move {
            AuthClient::new(ch)
                .get_account(authed(GetAccount {}, &t))
                .await
                .is_ok()
        }
    };
    let (grpc, socket) = pair(
        |w| samples(chans, on(w), usize::MAX, grpc_account.clone()),
        |w| samples(&sockets, on(w), usize::MAX, socket_call.clone()),
    )
    .await;
    table.row(
        "GetAccount over the Osmium socket",
        &socket,
        Some(("GetAccount over gRPC", grpc.rate)),
    );
}

/// What each stage of the request pipeline costs a public call (Ping's row of the method
/// table, no credential), in process on one task: the stage around an answer that costs
/// nothing, against the same answer alone. The log line's formatting and writing are not
/// in `trace` here (no subscriber in this process); the "logging each request" row has
/// them.
async fn stage_costs(table: &mut Table, services: &hearth::domain::Services) {
    use axum::body::Body;
    use hearth::api::{auth, cors, deadline, methods, metrics, rate_limits, trace};
    const CALLS: u32 = 200_000;
    let path = "/test.v1.TestNoAuthService/Ping";
    let method = methods::find(path).unwrap();
    let request = || {
        let mut req = axum::extract::Request::new(Body::empty());
        *req.uri_mut() = path.parse().unwrap();
        req.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        req.extensions_mut()
            .insert(hearth::api::context::ClientIp(Some(
                std::net::Ipv4Addr::LOCALHOST.into(),
            )));
        req
    };
    let answer = |req: axum::extract::Request| async move {
        drop(req);
        axum::response::Response::new(Body::empty())
    };
    let cors = cors::Cors::new(&[]);
    let metrics = metrics::Metrics::default();
    let bounds = deadline::Bounds {
        timeout: Duration::from_secs(30),
        in_flight: tokio::sync::Semaphore::new(1024),
    };
    let limits = rate_limits::RateLimits::new(
        services.config().limits.clone(),
        u32::MAX,
        hearth::domain::rate_limit::RateLimiter::new(
            services.state().buckets.clone(),
            services.clock().clone(),
        ),
    );
    let credentials = services.credentials.clone();
    async fn per_call<F: Future<Output = axum::response::Response>>(
        mut call: impl FnMut() -> F,
    ) -> f64 {
        let start = Instant::now();
        for _ in 0..CALLS {
            std::hint::black_box(call().await);
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS)
    }
    let alone = per_call(|| answer(request())).await;
    let stages = [
        (
            "trace (span, request id)",
            per_call(|| trace::around(request(), answer)).await,
        ),
        (
            "cors",
            per_call(|| cors::around(&cors, request(), answer)).await,
        ),
        (
            "metrics",
            per_call(|| metrics::around(&metrics, Some(method), request(), answer)).await,
        ),
        (
            "deadline (timeout, in-flight cap)",
            per_call(|| deadline::around(&bounds, request(), answer)).await,
        ),
        (
            "rate limits (a free method)",
            per_call(|| rate_limits::around(&limits, method, request(), answer)).await,
        ),
        (
            "auth (public, no credential)",
            per_call(|| auth::around(&credentials, method, request(), answer)).await,
        ),
    ];
    table.note(
        "pipeline stages: a request and an empty answer, alone",
        format!("{alone:.0} ns"),
        "–".into(),
        "–",
    );
    let mut sum = 0.0;
    for (stage, ns) in stages {
        sum += ns - alone;
        table.note(
            &format!("… {stage}"),
            format!("{:.0} ns", ns - alone),
            "–".into(),
            "beyond the answer alone",
        );
    }
    table.note(
        "… all six stages",
        format!("{sum:.0} ns"),
        "–".into(),
        "beyond the answer alone",
    );
}

/// tonic's own server (`tonic::transport::Server`, no axum, no Hearth code) with only the
/// health service: the baseline of every RPC row, so the table shows what Hearth's stack
/// costs over the plain library.
async fn bare_tonic() -> String {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming)
            .await;
    });
    url
}

#[tokio::main]
async fn main() {
    let load = Load {
        concurrency: env("BENCH_CONCURRENCY", 64),
        connections: env("BENCH_CONNECTIONS", 4),
        window: Duration::from_secs(env("BENCH_SECONDS", 3) as u64),
    };
    let sessions_total = env("BENCH_SESSIONS", 1_000_000);
    let sessions_used = env("BENCH_DISTINCT", 200_000).min(sessions_total);
    let mut table = Table(Vec::new());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{cores} cores; {} concurrent calls over {} connections; {} s per row",
        load.concurrency,
        load.connections,
        load.window.as_secs()
    );

    let bare = connect(&bare_tonic().await, load.connections).await;
    let alpha = common::start(|c| {
        c.server_id = "alpha.bench.test".parse().unwrap();
        c.federation.allow_private_addresses = true;
        c.federation.allow_plaintext = true;
        c.limits.peer_calls_per_ip_per_minute = u32::MAX;
        c.limits.max_requests_in_flight = 100_000;
        c.limits.socket_frames_per_second = u32::MAX;
    })
    .await;
    let chans = connect(&alpha.node.url(), load.connections).await;
    let token = common::sign_up(&alpha.channel, "bench@example.org").await;
    common::sign_up(&alpha.channel, SIGN_IN_ACCOUNT).await;

    // Ping against plain tonic, then every request row against Ping, each pair in
    // alternating rounds.
    let bare_call = |ch: Channel, _| async move {
        tonic_health::pb::health_client::HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok()
    };
    let ping_call = |ch, _| call_ping(ch);
    let on = |w| for_window(load, w);
    let ping_round = |w| samples(&chans, on(w), usize::MAX, ping_call);
    // Warm both servers (connections, allocator, caches) before the first timed round.
    let warm = Duration::from_millis(env("BENCH_WARMUP_MS", 1000) as u64);
    if !warm.is_zero() {
        samples(&bare, on(warm), usize::MAX, bare_call).await;
        ping_round(warm).await;
    }
    eprintln!("[bench] the bare and Ping rows start");
    let (base, ping) = pair(|w| samples(&bare, on(w), usize::MAX, bare_call), ping_round).await;
    table.row("plain tonic server (health Check)", &base, None);
    table.row("Ping (public)", &ping, Some(("plain tonic", base.rate)));
    if wanted("stages") {
        // What a Ping costs beyond plain tonic, in CPU per call (client and server share
        // the cores), set against what the pipeline's own stages cost.
        let mut rounds = ping.round_ratios.clone();
        rounds.sort_by(f64::total_cmp);
        let median = rounds.get(rounds.len() / 2).copied().unwrap_or(1.0);
        table.note(
            "CPU a Ping costs beyond plain tonic's Check (client + server, median round)",
            format!(
                "{:.0} ns",
                cores as f64 * 1e9 / base.rate.max(1e-9) * (1.0 / median.max(1e-9) - 1.0)
            ),
            "–".into(),
            "–",
        );
        stage_costs(&mut table, alpha.node.services()).await;
    }
    eprintln!("[bench] the one-session Pong rows start");
    let t = token.clone();
    let pong_call = move |ch, _| call_pong(ch, t.clone());
    let (ping, pong) = pair(ping_round, |w| {
        samples(&chans, on(w), usize::MAX, pong_call.clone())
    })
    .await;
    table.row("Pong (one session)", &pong, Some(("Ping", ping.rate)));
    if wanted("log") {
        log_rows(&mut table, load).await;
    }
    if wanted("transports") {
        transport_rows(&mut table, &alpha.node.url(), &chans, &token, load).await;
    }
    let store = alpha.node.services().store().clone();
    let now = hearth::clock::Clock::now_ms(&hearth::clock::SystemClock);
    if wanted("tokens") {
        let t = token.clone();
        let checked_call = move |ch, _| {
            let t = t.clone();
            async move {
                let mut req = tonic::Request::new(CheckLoggedInRequest {});
                req.metadata_mut()
                    .insert("authorization", t.parse().unwrap());
                AuthServiceClient::new(ch)
                    .check_logged_in(req)
                    .await
                    .is_ok()
            }
        };
        let (ping, checked) = pair(ping_round, |w| {
            samples(&chans, on(w), usize::MAX, checked_call.clone())
        })
        .await;
        table.row(
            "CheckLoggedIn (bare token)",
            &checked,
            Some(("Ping", ping.rate)),
        );
        let pat = TokensServiceClient::new(alpha.channel.clone())
            .create_token(authed(
                CreateTokenRequest {
                    token_metadata: Some(TokenMetadata {
                        name: "bench".into(),
                        expires_at: None,
                    }),
                    token_permissions: Some(TokenPermissions {
                        scopes: vec!["tokens:read".into()],
                    }),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .token_value
            .unwrap()
            .token;
        let pat_call = move |ch, _| call_pong(ch, pat.clone());
        let (ping, with_pat) = pair(ping_round, |w| {
            samples(&chans, on(w), usize::MAX, pat_call.clone())
        })
        .await;
        table.row(
            "Pong with a personal access token",
            &with_pat,
            Some(("Ping", ping.rate)),
        );
        // A JWT bound to the bench user's session, as GetJWT would issue it.
        let services = alpha.node.services().clone();
        let me = services.credentials.resolve(&token, None).await.unwrap();
        let jwt = services.jwts.issue(me.user_id, me.session_id);
        let jwt_call = move |ch, _| call_pong(ch, jwt.clone());
        let (ping, with_jwt) = pair(ping_round, |w| {
            samples(&chans, on(w), usize::MAX, jwt_call.clone())
        })
        .await;
        table.row(
            "Pong with a Hearth JWT",
            &with_jwt,
            Some(("Ping", ping.rate)),
        );
    }

    // Distinct sessions: seed the database, then each call presents another token.
    if wanted("distinct") {
        let user_id = store
            .read(|tx| tx.user_by_email("bench@example.org"))
            .await
            .unwrap()
            .unwrap()
            .id;
        let seeding = Instant::now();
        // Sessions the in-process row resolves, apart from the RPC row's.
        let in_process_used = env("BENCH_IN_PROCESS", IN_PROCESS_MISSES)
            .min(sessions_total - sessions_used)
            .min(IN_PROCESS_MISSES);
        let tokens = seed_sessions(
            &store,
            user_id,
            sessions_total,
            sessions_used + in_process_used,
            now,
        )
        .await;
        let mut rng = rand::thread_rng();
        let seeded = seeding.elapsed();
        // The sessions went into the database behind the node's back: it loads its session
        // index as it does at start (a restart would).
        let rss_before_index = rss_mib();
        let loading = Instant::now();
        let sessions = &alpha.node.services().sessions;
        let indexed = sessions.load_index().await.unwrap();
        let load_time = loading.elapsed();
        let (per_entry, index_bytes) = sessions.index().bytes();
        table.note(
            &format!("session index: {indexed} sessions loaded"),
            format!("{:.1} s", load_time.as_secs_f64()),
            "–".into(),
            "–",
        );
        table.note(
            "… bytes per session in memory (entry; whole index / sessions)",
            format!(
                "{per_entry} B; {:.1} B",
                index_bytes as f64 / indexed.max(1) as f64
            ),
            "–".into(),
            "goal ≤ 32 B (36: a 96-bit key)",
        );
        table.note(
            "… resident memory it added (MiB)",
            format!("{:.0}", rss_mib() - rss_before_index),
            "–".into(),
            "–",
        );
        // For attaching a profiler to the cache-miss rows.
        eprintln!("[bench] sessions seeded; the distinct-session rows start");
        let (tokens, in_process) = tokens.shuffle_split(sessions_used, &mut rng);
        // Each call presents the next token, across rounds: every call misses the cache.
        let (t, next) = (Arc::new(tokens), Arc::new(AtomicUsize::new(0)));
        let distinct_call = move |ch, _| {
            let k = next.fetch_add(1, Ordering::Relaxed);
            call_pong(ch, t.get(k % t.len()).to_owned())
        };
        let writer_before = threads_cpu("hearth-sqlite-w");
        let (ping, distinct) = pair(ping_round, |w| {
            samples(&chans, on(w), usize::MAX, distinct_call.clone())
        })
        .await;
        // The stamps still pending are written now, so the writer's CPU covers them all.
        alpha
            .node
            .services()
            .sessions
            .write_activity()
            .await
            .unwrap();
        let writer = threads_cpu("hearth-sqlite-w") - writer_before;
        table.row(
            &format!("Pong over {sessions_used} distinct sessions of {sessions_total}"),
            &distinct,
            Some(("Ping", ping.rate)),
        );
        // Each call found its session's activity stamp due; the node wrote them behind.
        table.note(
            "… the store writer's CPU per call (activity written behind)",
            format!(
                "{:.1} µs",
                writer.as_secs_f64() * 1e6 / distinct.calls.max(1) as f64
            ),
            "–".into(),
            "–",
        );
        // Client and server share the cores and the load keeps them busy, so CPU per call
        // is cores / rate. What a miss may cost beyond a Ping for the row to reach 0.7 ×
        // Ping is 1/0.7 − 1 of a Ping call; set against the store lookup's cost below.
        let cpu_per_call = |rate: f64| cores as f64 * 1e6 / rate.max(1e-9);
        table.note(
            "… CPU a distinct call costs beyond a Ping (client + server)",
            format!(
                "{:.1} µs",
                cpu_per_call(distinct.rate) - cpu_per_call(ping.rate)
            ),
            format!("{:.1} µs", cpu_per_call(ping.rate) * (1.0 / 0.7 - 1.0)),
            "what 0.7 × Ping allows",
        );
        // The same miss path without HTTP/2 (gRPC framing, HPACK, the load generator):
        // resolve in process, against resolving one cached session. Steadier than the RPC
        // row on a noisy host, so fixes to the miss path show here first. (Each resolve
        // leaves an activity stamp that the node writes behind once a second; those
        // writes run on the same cores during the rounds.)
        let rounds = env("BENCH_ROUNDS", 3).max(1);
        if in_process.len() >= rounds {
            let creds = alpha.node.services().credentials.clone();
            let per_round = in_process.len() / rounds;
            let (pool, next) = (Arc::new(in_process), Arc::new(AtomicUsize::new(0)));
            let hashes: Arc<Vec<[u8; 32]>> = Arc::new(
                (0..pool.len())
                    .map(|k| BearerSecret::parse(pool.get(k)).unwrap().hash())
                    .collect(),
            );
            let cached = {
                let (creds, token) = (creds.clone(), Arc::new(token.clone()));
                move |_, _| {
                    let (creds, token) = (creds.clone(), token.clone());
                    async move { creds.resolve(&token, None).await.is_ok() }
                }
            };
            let missed = move |_, _| {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let (creds, pool) = (creds.clone(), pool.clone());
                async move {
                    let token = pool.get(k % pool.len());
                    creds.resolve(token, None).await.is_ok()
                }
            };
            let (hit, miss) = pair(
                |w| samples(&chans, on(w), per_round, cached.clone()),
                |w| samples(&chans, on(w), per_round, missed.clone()),
            )
            .await;
            table.row(
                &format!(
                    "resolve in process, {} distinct sessions",
                    rounds * per_round
                ),
                &miss,
                Some(("resolve of a cached session", hit.rate)),
            );
            table.note(
                "… CPU per resolve of a distinct session",
                format!("{:.1} µs", cpu_per_call(miss.rate)),
                "–".into(),
                "–",
            );
            // The store's share of a miss: the credential lookup alone, against a lookup
            // that runs no query (the seam's own cost). The same sessions again: a store
            // lookup has no cache in front of it.
            let next = Arc::new(AtomicUsize::new(0));
            let empty = {
                let store = store.clone();
                move |_, _| {
                    let store = store.clone();
                    async move {
                        store
                            .lookup(|_| Ok::<_, hearth::domain::state::StoreError>(()))
                            .await
                            .is_ok()
                    }
                }
            };
            let probe = {
                let store = store.clone();
                move |_, _| {
                    let hash = hashes[next.fetch_add(1, Ordering::Relaxed) % hashes.len()];
                    let store = store.clone();
                    async move {
                        store
                            .lookup(move |tx| tx.session_credential(&hash))
                            .await
                            .is_ok_and(|row| row.is_some())
                    }
                }
            };
            let (none, looked_up) = pair(
                |w| samples(&chans, on(w), per_round, empty.clone()),
                |w| samples(&chans, on(w), per_round, probe.clone()),
            )
            .await;
            table.row(
                "store lookup in process, distinct sessions",
                &looked_up,
                Some(("store lookup that runs no query", none.rate)),
            );
            table.note(
                "… CPU per store lookup of a distinct session",
                format!(
                    "{:.1} µs",
                    cpu_per_call(looked_up.rate) - cpu_per_call(none.rate)
                ),
                "–".into(),
                "beyond the seam's own cost",
            );
        }
        table.note(
            "seeding sessions",
            format!(
                "{:.0} sessions/s",
                sessions_total as f64 / seeded.as_secs_f64()
            ),
            "–".into(),
            "–",
        );
    }

    // SignIn against raw argon2id on the same cores.
    if wanted("signin") {
        eprintln!("[bench] the sign-in rows start");
        let p = alpha.node.services().config().passwords.clone();
        let params = argon2::Params::new(
            p.argon2_memory_kib,
            p.argon2_iterations,
            p.argon2_parallelism,
            None,
        )
        .unwrap();
        let raw_round = |w| {
            let params = params.clone();
            async move {
                tokio::task::spawn_blocking(move || raw_argon2(params, cores, w))
                    .await
                    .unwrap()
            }
        };
        // Store writes per sign-in: the gate's and the outcome's, plus busy answers.
        let signed_in = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = signed_in.clone();
        let sign_in_call = move |ch, _| {
            let signed_in = counter.clone();
            async move {
                let ok = call_sign_in(ch).await;
                signed_in.fetch_add(ok as u64, Ordering::Relaxed);
                ok
            }
        };
        let store = alpha.node.services().store().clone();
        let writes = store.writes();
        let (raw, sign_in) = pair(raw_round, |w| {
            samples(&chans, on(w), usize::MAX, sign_in_call.clone())
        })
        .await;
        let writes =
            (store.writes() - writes) as f64 / signed_in.load(Ordering::Relaxed).max(1) as f64;
        table.note(
            &format!("raw argon2id verify ({cores} threads)"),
            format!("{:.1}", raw.rate),
            "1.00".into(),
            "itself",
        );
        table.row("SignIn", &sign_in, Some(("raw argon2id", raw.rate)));
        table.note(
            "store writes per sign-in (64 at once, one account)",
            format!("{writes:.1}"),
            "–".into(),
            "–",
        );

        // Pong's p99 while 64 sign-ins run, against Pong at the same concurrency on the
        // idle node just before.
        let quiet = Load {
            concurrency: 4,
            ..load
        };
        let t = token.clone();
        let idle = drive(&chans, quiet, usize::MAX, move |ch, _| {
            call_pong(ch, t.clone())
        })
        .await;
        let busy = {
            let chans2 = chans.clone();
            let storm = tokio::spawn(async move {
                let storm_load = Load {
                    concurrency: 64,
                    ..load
                };
                drive(&chans2, storm_load, usize::MAX, |ch, _| call_sign_in(ch)).await
            });
            let t = token.clone();
            let pong = drive(&chans, quiet, usize::MAX, move |ch, _| {
                call_pong(ch, t.clone())
            })
            .await;
            storm.await.unwrap();
            pong
        };
        table.row(
            "Pong (4 concurrent) while 64 sign-ins run",
            &busy,
            Some(("Pong, 4 concurrent, idle node", idle.rate)),
        );
        second_factor_rows(&mut table, &chans, load).await;
    }

    // LoginFederated between two nodes, against one ed25519 verification + one insert.
    let mut others = Vec::new();
    if wanted("federated") {
        let alpha_url = alpha.node.url();
        let beta = common::start(move |c| {
            c.server_id = "beta.bench.test".parse().unwrap();
            c.federation.allow_private_addresses = true;
            c.federation.allow_plaintext = true;
            c.federation.peers = vec![hearth::config::Peer {
                server_id: "alpha.bench.test".parse().unwrap(),
                url: Some(alpha_url),
            }];
            c.limits.peer_calls_per_ip_per_minute = u32::MAX;
            c.limits.max_requests_in_flight = 100_000;
        })
        .await;
        let logins = 4_000;
        let fed = AuthServiceClient::new(alpha.channel.clone());
        let tokens_for_beta = || {
            let (mut fed, token) = (fed.clone(), token.clone());
            async move {
                let mut fed_tokens = Vec::with_capacity(logins);
                for _ in 0..logins {
                    let req = FederateRequest {
                        server_id: "beta.bench.test".into(),
                    };
                    let t = fed.federate(authed(req, &token)).await.unwrap();
                    fed_tokens.push(t.into_inner().token.unwrap());
                }
                Arc::new(fed_tokens)
            }
        };
        let beta_chans = connect(&beta.node.url(), load.connections).await;
        let log_in = |t: Arc<Vec<hearth::pb::protocol::harmonytypes::v1::Token>>| {
            move |ch, i: usize| {
                let token = t[i].clone();
                async move {
                    AuthServiceClient::new(ch)
                        .login_federated(LoginFederatedRequest {
                            auth_token: Some(token),
                            server_id: "alpha.bench.test".into(),
                        })
                        .await
                        .is_ok()
                }
            }
        };
        let federated = drive(&beta_chans, load, logins, log_in(tokens_for_beta().await)).await;
        let verify_insert = verify_and_insert(&beta, load).await;
        table.note(
            "one ed25519 verify + one session insert",
            format!("{verify_insert:.0}"),
            "1.00".into(),
            "itself",
        );
        table.row(
            "LoginFederated (key cached)",
            &federated,
            Some(("verify + insert", verify_insert)),
        );
        // The same on a node that has 98 more peers pinned (a full mesh of 100).
        let now = hearth::clock::Clock::now_ms(&hearth::clock::SystemClock);
        beta.node
            .services()
            .store()
            .write(move |tx| {
                for n in 0..98 {
                    tx.put_peer(&hearth::domain::model::Peer {
                        server_id: format!("n{n:02}.bench.test"),
                        pinned_key: Some(hearth::identity::key::NodeKey::generate().public()),
                        linked: true,
                        state: "linked".into(),
                        updated_at: now,
                        ..Default::default()
                    })?;
                }
                Ok::<_, hearth::domain::state::StoreError>(())
            })
            .await
            .unwrap();
        let with_peers = drive(&beta_chans, load, logins, log_in(tokens_for_beta().await)).await;
        table.row(
            "LoginFederated, 99 peers pinned",
            &with_peers,
            Some(("LoginFederated (key cached)", federated.rate)),
        );
        others.push(beta);
    }

    // Memory and size.
    if wanted("memory") {
        let users_total = env("BENCH_USERS", 1_000_000);
        let before = rss_mib();
        let seeding = Instant::now();
        let mut id = 1u64 << 61;
        for chunk in 0..users_total.div_ceil(20_000) {
            let n = 20_000.min(users_total - chunk * 20_000);
            let start = id;
            id += n as u64;
            store
                .write(move |tx| {
                    for k in 0..n as u64 {
                        tx.insert_user(&seeded_user(start + k, "example.org", now))?;
                    }
                    Ok::<_, hearth::domain::state::StoreError>(())
                })
                .await
                .unwrap();
        }
        let user_seed = seeding.elapsed();
        let db = alpha.node.services().config().database_path();
        let bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(db.with_extension("sqlite3-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        let with_users = rss_mib();
        // Both nodes and the client share this process, and the rows above have filled its
        // caches: the idle and after-burst figures of one node are `cargo bench --bench memory`.
        table.note(
            "resident memory of this process after the rows above (MiB)",
            format!("{before:.0}"),
            "1.00".into(),
            "itself",
        );
        table.note(
            &format!("… and with {users_total} more users (MiB)"),
            format!("{with_users:.0}"),
            format!("{:.2}", with_users / before),
            "the row above",
        );
        table.note(
            "seeding users",
            format!(
                "{:.0} users/s",
                users_total as f64 / user_seed.as_secs_f64()
            ),
            "–".into(),
            "–",
        );
        table.note(
            "database bytes per row (users + sessions)",
            format!(
                "{:.0}",
                bytes as f64 / (users_total + sessions_total) as f64
            ),
            "–".into(),
            "–",
        );
        node_memory_rows(&mut table, load, users_total, sessions_total, sessions_used).await;
    }

    // Three nodes on one PostgreSQL against the one SQLite node above. The nodes of this
    // process share one set of argon2 threads (`hash_pool`), as three nodes on one host
    // should be configured to: six threads on two cores cost argon2 a tenth of its rate.
    match std::env::var("BENCH_PG_URL") {
        Ok(url) if wanted("pg") => {
            let url_for_sign_ups = url.clone();
            let edit = move |c: &mut hearth::Config| {
                c.store.url = Some(url.clone());
                c.limits.max_requests_in_flight = 100_000;
            };
            let first = common::start(edit.clone()).await;
            let mut cluster = vec![common::start_beside(&first, edit.clone()).await];
            cluster.push(common::start_beside(&first, edit).await);
            cluster.insert(0, first);
            let token = common::sign_up(&cluster[0].channel, "bench@example.org").await;
            common::sign_up(&cluster[0].channel, SIGN_IN_ACCOUNT).await;
            let sqlite_chans = &chans;
            let mut chans = Vec::new();
            for n in &cluster {
                chans.extend(connect(&n.node.url(), load.connections.div_ceil(3)).await);
            }
            let t = token.clone();
            let pg_pong_call = move |ch, _| call_pong(ch, t.clone());
            let (pong, pg_pong) = pair(
                |w| samples(sqlite_chans, on(w), usize::MAX, pong_call.clone()),
                |w| samples(&chans, on(w), usize::MAX, pg_pong_call.clone()),
            )
            .await;
            table.row(
                "Pong, three nodes on one PostgreSQL",
                &pg_pong,
                Some(("Pong", pong.rate)),
            );
            // Round trips to PostgreSQL per sign-in of each row (the SQLite node makes none).
            let trips = || -> u64 {
                cluster
                    .iter()
                    .map(|n| n.node.services().store().round_trips())
                    .sum()
            };
            let mut per_sign_in = Vec::new();
            let mut trips_of = |before: u64, after: u64, s: &Stats| {
                per_sign_in.push((after - before) as f64 / (s.calls - s.errors).max(1) as f64);
            };
            let sign_in_call = |ch, _| call_sign_in(ch);
            let before = trips();
            let (sign_in, pg_sign_in) = pair_at_least(
                4,
                GOAL_ROUNDS,
                |w| samples(sqlite_chans, on(w), usize::MAX, sign_in_call),
                |w| samples(&chans, on(w), usize::MAX, sign_in_call),
            )
            .await;
            trips_of(before, trips(), &pg_sign_in);
            table.row(
                "SignIn, three nodes on one PostgreSQL",
                &pg_sign_in,
                Some(("SignIn", sign_in.rate)),
            );
            // One node against one node: what the database costs a node, not what three
            // nodes sharing two cores get.
            let one_node = connect(&cluster[0].node.url(), load.connections).await;
            let before = trips();
            let (sign_in, pg_sign_in) = pair_at_least(
                4,
                GOAL_ROUNDS,
                |w| samples(sqlite_chans, on(w), usize::MAX, sign_in_call),
                |w| samples(&one_node, on(w), usize::MAX, sign_in_call),
            )
            .await;
            trips_of(before, trips(), &pg_sign_in);
            table.row(
                "SignIn, one node on PostgreSQL",
                &pg_sign_in,
                Some(("SignIn", sign_in.rate)),
            );
            // Many accounts, as a node's sign-ins are: what each sign-in costs the
            // database, without one account's gate queueing its five slots.
            let accounts: usize = env("BENCH_PG_ACCOUNTS", 400);
            eprintln!("[bench] {accounts} accounts are made on each node");
            seed_accounts(sqlite_chans, "each", accounts).await;
            seed_accounts(&one_node, "each", accounts).await;
            // What autovacuum does within a minute of a bulk load (pgbench analyzes after
            // its own): until then the planner still sizes `users` as the near-empty table
            // it last saw, and finds the account by reading every row.
            run_sql(&url_for_sign_ups, "ANALYZE");
            let each =
                move |ch, i: usize| call_sign_in_as(ch, format!("each{}@bench.test", i % accounts));
            let before = trips();
            let (sign_in, pg_sign_in) = pair_at_least(
                4,
                GOAL_ROUNDS,
                |w| samples(sqlite_chans, on(w), usize::MAX, each),
                |w| samples(&one_node, on(w), usize::MAX, each),
            )
            .await;
            trips_of(before, trips(), &pg_sign_in);
            table.row("SignIn, one account per call (SQLite)", &sign_in, None);
            table.row(
                "SignIn, one account per call, one node on PostgreSQL",
                &pg_sign_in,
                Some(("SignIn, one account per call (SQLite)", sign_in.rate)),
            );
            if let [three, one, each] = per_sign_in[..] {
                table.note(
                    "PostgreSQL round trips per sign-in: three nodes, one node, one account per call",
                    format!("{three:.1}, {one:.1}, {each:.1}"),
                    "–".into(),
                    "–",
                );
            }
            drop(cluster);
            sign_ups_on_one_database(&mut table, &url_for_sign_ups, load).await;
        }
        Ok(_) => {}
        Err(_) => table.note(
            "three nodes on one PostgreSQL",
            "needs BENCH_PG_URL (scripts/bench.sh starts a server)".into(),
            "–".into(),
            "–",
        ),
    }

    println!("| row | per second | p50 ms | p99 ms | ratio | baseline | errors | goal |");
    println!("|---|---:|---:|---:|---:|---|---:|---|");
    for line in &table.0 {
        println!("{line}");
    }
    for n in others {
        n.node.shutdown().await;
    }
    alpha.node.shutdown().await;
}

/// Argon2id verifications of the benchmark password on `threads` threads for `window`.
fn raw_argon2(params: argon2::Params, threads: usize, window: Duration) -> Samples {
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let phc = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(common::PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string();
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let phc = phc.clone();
            std::thread::spawn(move || {
                let parsed = PasswordHash::new(&phc).unwrap();
                let mut times = Vec::new();
                while started.elapsed() < window {
                    let t0 = Instant::now();
                    argon2::Argon2::default()
                        .verify_password(common::PASSWORD.as_bytes(), &parsed)
                        .unwrap();
                    times.push(t0.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times = Vec::new();
    for h in handles {
        times.extend(h.join().unwrap());
    }
    Samples {
        times,
        errors: 0,
        secs: started.elapsed().as_secs_f64(),
    }
}

/// One ed25519 verification plus one session insert through the store, at the load's
/// concurrency: the floor of a federated login.
async fn verify_and_insert(node: &common::BenchNode, load: Load) -> f64 {
    let key = hearth::identity::key::NodeKey::generate();
    let data = vec![7u8; 120];
    let sig = key.sign(&data).to_vec();
    let public = key.public();
    let store = node.node.services().store().clone();
    let user = store
        .read(|tx| tx.users())
        .await
        .unwrap()
        .first()
        .map(|u| u.id)
        .unwrap_or(0);
    let user = if user == 0 {
        common::sign_up(&node.channel, "floor@example.org").await;
        store
            .read(|tx| tx.user_by_email("floor@example.org"))
            .await
            .unwrap()
            .unwrap()
            .id
    } else {
        user
    };
    let done = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(1 << 20));
    let started = Instant::now();
    let tasks: Vec<_> = (0..load.concurrency)
        .map(|_| {
            let (store, done, next) = (store.clone(), done.clone(), next.clone());
            let (data, sig) = (data.clone(), sig.clone());
            tokio::spawn(async move {
                while started.elapsed() < load.window {
                    assert!(hearth::identity::key::verify(&public, &data, &sig));
                    let id = (3u64 << 60) + next.fetch_add(1, Ordering::Relaxed) as u64;
                    let secret = BearerSecret::generate(SecretKind::Session);
                    let s = Session {
                        id,
                        user_id: user,
                        token_hash: secret.hash(),
                        device: DeviceFacts::default(),
                        created_at: 0,
                        last_active: 0,
                        expires_at: u64::MAX >> 2,
                        scopes: ScopeSet::ALL,
                        access_token_id: None,
                        amr: "pwd".into(),
                    };
                    store.write(move |tx| tx.insert_session(&s)).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A `hearth serve` process logging at `level` into `log`; killed when dropped.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hearth serve` in `dir` at `level` with stderr into `dir/node.log`; its URL.
fn serve_logging(dir: &std::path::Path, level: &str) -> (Process, String) {
    use std::io::BufRead;
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("serve")
        .env("HEARTH_DATA_DIR", dir.join("data"))
        .env("HEARTH_LISTEN_ADDR", "127.0.0.1:0")
        .env("HEARTH_LOG", level)
        .env("HEARTH_LIMITS_MAX_REQUESTS_IN_FLIGHT", "100000")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(|a| a.trim().to_owned()))
        .expect("the node printed its address");
    // The node prints more; a closed pipe would end it.
    std::thread::spawn(move || lines.for_each(drop));
    (Process(child), format!("http://{addr}"))
}

/// Ping on a `hearth serve` process writing a log line per request to a file, against the
/// same at `warn` (no request lines): what the request log costs a trivial call.
async fn log_rows(table: &mut Table, load: Load) {
    let (quiet_dir, loud_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_quiet, quiet_url) = serve_logging(quiet_dir.path(), "warn");
    let (_loud, loud_url) = serve_logging(loud_dir.path(), "info");
    let (quiet, loud) = (
        connect(&quiet_url, load.connections).await,
        connect(&loud_url, load.connections).await,
    );
    let on = |w| for_window(load, w);
    let (base, row) = pair(
        |w| samples(&quiet, on(w), usize::MAX, |ch, _| call_ping(ch)),
        |w| samples(&loud, on(w), usize::MAX, |ch, _| call_ping(ch)),
    )
    .await;
    let lines =
        std::fs::read_to_string(loud_dir.path().join("node.log")).map_or(0, |t| t.lines().count());
    table.row(
        &format!("Ping, hearth serve logging each request to a file ({lines} lines)"),
        &row,
        Some(("the same at HEARTH_LOG=warn", base.rate)),
    );
}

/// Inserts `total` sessions of `user_id` straight into `store`, last used ten minutes ago
/// (each comes back with its activity stamp due, as returning users do); returns the tokens
/// of `keep` of them, a uniform sample (selection sampling), so the ones that come back are
/// spread over the table as returning users' are, not neighbours that share pages.
async fn seed_sessions(
    store: &hearth::domain::state::Store,
    user_id: u64,
    total: usize,
    keep: usize,
    now: u64,
) -> TokenPool {
    let mut tokens = TokenPool::with_capacity(keep);
    let mut next_id = 1u64 << 60;
    let mut rng = rand::thread_rng();
    for chunk in 0..total.div_ceil(20_000) {
        let mut batch = Vec::new();
        for _ in 0..20_000.min(total - chunk * 20_000) {
            let secret = BearerSecret::generate(SecretKind::Session);
            next_id += 1;
            batch.push(Session {
                id: next_id,
                user_id,
                token_hash: secret.hash(),
                device: DeviceFacts::default(),
                created_at: now - 600_000,
                last_active: now - 600_000,
                expires_at: now + 86_400_000,
                scopes: ScopeSet::ALL,
                access_token_id: None,
                amr: "pwd".into(),
            });
            let seen = chunk * 20_000 + batch.len() - 1;
            if rng.gen_range(0..total - seen) < keep - tokens.len() {
                tokens.push(secret.expose());
            }
        }
        store
            .write(move |tx| batch.iter().try_for_each(|s| tx.insert_session(s)))
            .await
            .unwrap();
    }
    tokens
}

/// A `hearth serve` process alone on a database of `users` users and `sessions` sessions:
/// its resident memory once started (the session index loaded), and after Pong over
/// `distinct` of the sessions. The in-process rows cannot separate a node's memory from the
/// load generator's and the other nodes'.
async fn node_memory_rows(
    table: &mut Table,
    load: Load,
    users: usize,
    sessions: usize,
    distinct: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let config = hearth::Config {
        data_dir: dir.path().join("data"),
        ..hearth::Config::default()
    };
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let store = hearth::Node::open_store(&config, 2).unwrap();
    let now = hearth::clock::Clock::now_ms(&hearth::clock::SystemClock);
    let user = move |id: u64| seeded_user(id, "bench.test", now);
    let owner = 1u64 << 62;
    store
        .write(move |tx| tx.insert_user(&user(owner)))
        .await
        .unwrap();
    for chunk in 0..users.div_ceil(20_000) {
        let start = (1u64 << 61) + (chunk * 20_000) as u64;
        let n = 20_000.min(users - chunk * 20_000) as u64;
        store
            .write(move |tx| (start..start + n).try_for_each(|id| tx.insert_user(&user(id))))
            .await
            .unwrap();
    }
    let tokens = seed_sessions(&store, owner, sessions, distinct, now).await;
    store.close();
    drop(store);
    let (node, url) = serve_logging(dir.path(), "warn");
    let pid = node.0.id().to_string();
    let chans = connect(&url, load.connections).await;
    // The index loads in the background at start (about half a second a million).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = common::rss_mib_of(&pid);
    let (t, next) = (Arc::new(tokens), Arc::new(AtomicUsize::new(0)));
    let pongs = samples(
        &chans,
        for_window(load, load.window * 3),
        usize::MAX,
        move |ch, _| {
            let k = next.fetch_add(1, Ordering::Relaxed);
            call_pong(ch, t.get(k % t.len()).to_owned())
        },
    )
    .await
    .stats();
    let after = common::rss_mib_of(&pid);
    table.note(
        &format!("hearth serve alone, {users} users and {sessions} sessions: resident memory started (MiB)"),
        format!("{started:.0}"),
        "–".into(),
        "–",
    );
    table.note(
        &format!(
            "… after Pong over {distinct} distinct sessions ({:.0}/s, {} errors) (MiB)",
            pongs.rate, pongs.errors
        ),
        format!("{after:.0}"),
        "–".into(),
        "goal ≤ 200",
    );
}

/// Signs up `{prefix}{i}@bench.test` for `i` below `n` over `chans`, 16 at a time.
async fn seed_accounts(chans: &[Channel], prefix: &str, n: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (ch, next, prefix) = (
                chans[t % chans.len()].clone(),
                next.clone(),
                prefix.to_owned(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    common::sign_up(&ch, &format!("{prefix}{i}@bench.test")).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// SignIn with a TOTP code against SignIn without one, each call to an account of its own
/// (a code signs in once per 30 s step, so one account cannot be signed in again at once),
/// alternating rounds as [`pair`] does.
async fn second_factor_rows(table: &mut Table, chans: &[Channel], load: Load) {
    use hearth::pb::tangle::client::auth::SetupTotp;
    let accounts: usize = env("BENCH_SECOND_FACTOR_ACCOUNTS", 800);
    eprintln!("[bench] {accounts} accounts with and without a second factor are made");
    let made = Arc::new(AtomicUsize::new(0));
    let make = |with_factor: bool| {
        let (chans, made) = (chans.to_vec(), made.clone());
        async move {
            let next = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..16)
                .map(|t| {
                    let (ch, next, made) =
                        (chans[t % chans.len()].clone(), next.clone(), made.clone());
                    tokio::spawn(async move {
                        let mut urls = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= accounts {
                                break urls;
                            }
                            let email = format!("mfa{with_factor}{i}@bench.test");
                            let token = common::sign_up(&ch, &email).await;
                            made.fetch_add(1, Ordering::Relaxed);
                            if !with_factor {
                                urls.push((i, String::new()));
                                continue;
                            }
                            let mut c = AuthClient::new(ch.clone());
                            let setup = |code: Option<String>| {
                                authed(
                                    SetupTotp {
                                        enabled: true,
                                        code,
                                    },
                                    &token,
                                )
                            };
                            let url = c
                                .setup_totp(setup(None))
                                .await
                                .unwrap()
                                .into_inner()
                                .url
                                .unwrap();
                            let t = totp_rs::TOTP::from_url_unchecked(&url).unwrap();
                            // The first code confirms; sign-ins use the next steps' codes.
                            c.setup_totp(setup(Some(t.generate_current().unwrap())))
                                .await
                                .unwrap();
                            urls.push((i, url));
                        }
                    })
                })
                .collect();
            let mut urls = vec![String::new(); accounts];
            for t in tasks {
                for (i, url) in t.await.unwrap() {
                    urls[i] = url;
                }
            }
            urls
        }
    };
    let _ = make(false).await;
    let urls = Arc::new(make(true).await);
    // Each side walks its accounts once over all rounds; a code of the step in which the
    // factor was confirmed is refused, so the rows start at the next step.
    let wait = 30
        - (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 30);
    tokio::time::sleep(Duration::from_secs(wait + 1)).await;
    let (plain_next, factor_next) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let call = move |with_factor: bool| {
        let (urls, plain_next, factor_next) =
            (urls.clone(), plain_next.clone(), factor_next.clone());
        move |ch: Channel, _| {
            let next = if with_factor {
                &factor_next
            } else {
                &plain_next
            };
            let i = next.fetch_add(1, Ordering::Relaxed) % accounts;
            let totp = with_factor.then(|| {
                totp_rs::TOTP::from_url_unchecked(&urls[i])
                    .unwrap()
                    .generate_current()
                    .unwrap()
            });
            async move {
                AuthClient::new(ch)
                    .sign_in(SignIn {
                        email: format!("mfa{with_factor}{i}@bench.test"),
                        password: common::PASSWORD.into(),
                        totp,
                    })
                    .await
                    .is_ok()
            }
        }
    };
    let (plain, with) = pair(
        |w| samples(chans, for_window(load, w), usize::MAX, call(false)),
        |w| samples(chans, for_window(load, w), usize::MAX, call(true)),
    )
    .await;
    table.row("SignIn, one account per call", &plain, None);
    table.row(
        "SignIn with a TOTP code, one account per call",
        &with,
        Some(("SignIn, one account per call", plain.rate)),
    );
}
