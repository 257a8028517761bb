//! Notices between nodes on one PostgreSQL database, over LISTEN/NOTIFY. Revocations
//! (`hearth_revocations`): a node calls its own handlers at once, then NOTIFYs and waits (a
//! few milliseconds) until the notice is sent, so when the revoking request returns every
//! other node is being told; each node LISTENs on its own connection and drops the named
//! sessions and tokens from its caches. Step-flow changes (`hearth_flows`) wake StreamSteps
//! subscribers on every node. Connections that fail are retried every second.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::PgTarget;

use crate::clock::SharedClock;
use crate::domain::state::feeds::{LocalFeeds, StepFeeds};
use crate::domain::state::revocations::{Handler, Revocations, Revoked};
use crate::domain::state::short_lived::{LocalMap, ShortLived};

/// Ids per NOTIFY (its payload is capped at 8000 bytes).
const IDS_PER_NOTICE: usize = 300;

type Handlers = Arc<RwLock<Vec<Handler>>>;
type Outgoing = (String, Option<mpsc::SyncSender<()>>);

/// One NOTIFY channel: a thread that sends, a thread that LISTENs and hands every payload
/// from another node to `on`.
struct PgChannel {
    outgoing: Mutex<mpsc::Sender<Outgoing>>,
    closed: Arc<AtomicBool>,
    origin: String,
}

/// A connection, retried every second until one works; logs the first failure only (the
/// pool's health logs the outage and its end).
fn connected(target: &PgTarget, closed: &AtomicBool) -> Option<Client> {
    let mut warned = false;
    while !closed.load(Ordering::Relaxed) {
        match target.connect() {
            Ok(c) => return Some(c),
            Err(e) => {
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(error = %e, "cluster notices: cannot reach PostgreSQL; retrying every second");
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    None
}

impl PgChannel {
    /// `on` gets each notice of another node, and `None` when listening resumes after a lost
    /// connection (notices sent meanwhile are lost).
    fn start(
        target: &PgTarget,
        channel: &'static str,
        on: impl Fn(Option<&str>) + Send + 'static,
    ) -> Self {
        let closed = Arc::new(AtomicBool::new(false));
        let origin = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = mpsc::channel::<Outgoing>();
        {
            let (target, closed) = (target.clone(), closed.clone());
            std::thread::Builder::new()
                .name(format!("hearth-pg-{channel}"))
                .spawn(move || Self::send_loop(&target, channel, &closed, rx))
                .ok();
        }
        {
            let (target, closed, origin) = (target.clone(), closed.clone(), origin.clone());
            std::thread::Builder::new()
                .name(format!("hearth-pg-listen-{channel}"))
                .spawn(move || Self::listen(&target, channel, &closed, &origin, on))
                .ok();
        }
        Self {
            outgoing: Mutex::new(tx),
            closed,
            origin,
        }
    }

    /// Sends `payload` to every other node; with `wait`, returns once it is sent (≤ 2 s).
    fn send(&self, payload: &str, wait: bool) {
        let (done, acked) = mpsc::sync_channel(1);
        let message = (format!("{} {payload}", self.origin), wait.then_some(done));
        let sent = self
            .outgoing
            .lock()
            .map(|o| o.send(message).is_ok())
            .unwrap_or(false);
        if sent && wait {
            let _ = acked.recv_timeout(Duration::from_secs(2));
        }
    }

    fn send_loop(
        target: &PgTarget,
        channel: &str,
        closed: &AtomicBool,
        rx: mpsc::Receiver<Outgoing>,
    ) {
        let mut client = None;
        while let Ok((payload, done)) = rx.recv() {
            for _ in 0..2 {
                if client.is_none() {
                    client = connected(target, closed);
                }
                let Some(c) = client.as_mut() else { return };
                match c.execute("SELECT pg_notify($1, $2)", &[&channel, &payload]) {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster notice not sent; reconnecting");
                        client = None;
                    }
                }
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
    }

    fn listen(
        target: &PgTarget,
        channel: &str,
        closed: &AtomicBool,
        origin: &str,
        on: impl Fn(Option<&str>),
    ) {
        let mut lost = false;
        while let Some(mut client) = connected(target, closed) {
            if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")) {
                tracing::warn!(error = %e, "cluster notices: LISTEN failed; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            if std::mem::take(&mut lost) {
                on(None);
            }
            while !closed.load(Ordering::Relaxed) {
                let next = {
                    let mut notices = client.notifications();
                    let mut it = notices.timeout_iter(Duration::from_secs(1));
                    it.next()
                };
                match next {
                    Ok(Some(n)) => match n.payload().split_once(' ') {
                        Some((from, body)) if from != origin => on(Some(body)),
                        _ => {}
                    },
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster notices: connection lost; reconnecting");
                        break;
                    }
                }
                if client.is_closed() {
                    break;
                }
            }
            if closed.load(Ordering::Relaxed) {
                return;
            }
            lost = true;
        }
    }
}

impl Drop for PgChannel {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// Revocation notices shared by every node on one database.
pub struct PgRevocations {
    handlers: Handlers,
    channel: PgChannel,
}

impl std::fmt::Debug for PgRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgRevocations")
    }
}

fn call(handlers: &Handlers, revoked: Revoked<'_>) {
    let hs = handlers.read().unwrap_or_else(|e| e.into_inner()).clone();
    for h in hs {
        h(revoked);
    }
}

impl PgRevocations {
    /// Starts the sending and listening connections to `target` (in threads of their own).
    pub fn start(target: &PgTarget) -> Arc<Self> {
        let handlers: Handlers = Arc::default();
        let theirs = handlers.clone();
        let channel = PgChannel::start(target, "hearth_revocations", move |notice| match notice {
            Some(body) => {
                let ids: Vec<u64> = body.split(',').filter_map(|v| v.parse().ok()).collect();
                call(&theirs, Revoked::Sessions(&ids));
            }
            // Listening again after a lost connection: notices of the gap are lost.
            None => {
                tracing::warn!("cluster notices: listening again after a lost connection; dropping every cached credential, so none revoked meanwhile is trusted");
                call(&theirs, Revoked::Anything);
            }
        });
        Arc::new(Self { handlers, channel })
    }
}

impl Revocations for PgRevocations {
    fn announce(&self, session_ids: &[u64]) {
        if session_ids.is_empty() {
            return;
        }
        call(&self.handlers, Revoked::Sessions(session_ids));
        // Bounded: when the revoking request returns, every node is being told.
        for chunk in session_ids.chunks(IDS_PER_NOTICE) {
            let ids: Vec<String> = chunk.iter().map(u64::to_string).collect();
            self.channel.send(&ids.join(","), true);
        }
    }

    fn subscribe(&self, handler: Handler) {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(handler);
    }
}

/// Step-flow change notices shared by every node: a change made on one node wakes the
/// StreamSteps subscribers of every node. Notices name a flow by a hash of its id (the id
/// is a bearer secret), which each node maps back for its own subscribers.
pub struct PgFeeds {
    local: Arc<LocalFeeds>,
    names: Arc<LocalMap<String, String>>,
    channel: PgChannel,
    /// Prefixes this node's notices: its own come back through LISTEN, and were already
    /// published here (a second wake-up would cost each waiter one more gate check).
    origin: String,
}

impl std::fmt::Debug for PgFeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgFeeds")
    }
}

fn flow_name(flow: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest([b"feed\0", flow.as_bytes()].concat()))
}

impl PgFeeds {
    /// Feeds for at most `capacity` flows subscribed on this node.
    pub fn start(target: &PgTarget, clock: SharedClock, capacity: usize) -> Arc<Self> {
        let local = Arc::new(LocalFeeds::new(clock.clone(), capacity));
        let names: Arc<LocalMap<String, String>> = Arc::new(LocalMap::new(clock, capacity));
        let (l, n) = (local.clone(), names.clone());
        let origin = format!("{:016x}", rand::random::<u64>());
        let mine = format!("{origin}:");
        let channel = PgChannel::start(target, "hearth_flows", move |notice| {
            let Some(body) = notice.filter(|b| !b.starts_with(&mine)) else {
                return;
            };
            // A notice is `origin:name` (or a bare name, from a node of an older version).
            let name = body.rsplit(':').next().unwrap_or(body);
            if let Some(flow) = ShortLived::get(&*n, &name.to_owned()) {
                l.publish(&flow);
            }
        });
        Arc::new(Self {
            local,
            names,
            channel,
            origin,
        })
    }
}

impl StepFeeds for PgFeeds {
    fn publish(&self, flow: &str) {
        self.local.publish(flow);
        let notice = format!("{}:{}", self.origin, flow_name(flow));
        self.channel.send(&notice, false);
    }

    fn subscribe(&self, flow: &str, ttl_ms: u64) -> tokio::sync::watch::Receiver<u64> {
        ShortLived::put(&*self.names, flow_name(flow), flow.to_owned(), ttl_ms);
        self.local.subscribe(flow, ttl_ms)
    }

    fn feed_count(&self) -> usize {
        self.local.feed_count()
    }
}
