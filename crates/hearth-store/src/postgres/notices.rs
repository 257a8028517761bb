//! Notices between nodes on one PostgreSQL database, over LISTEN/NOTIFY. Revocations
//! (`hearth_revocations`): a node calls its own handlers at once, then NOTIFYs and waits (a
//! few milliseconds) until the notice is sent, so when the revoking request returns every
//! other node is being told; each node drops the named sessions and tokens from its caches.
//! Step-flow changes (`hearth_flows`) wake StreamSteps subscribers on every node. A node
//! sends on one connection and LISTENs on both channels on another ([`PgNotices`]);
//! connections that fail are retried every second.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::PgTarget;

use crate::clock::SharedClock;
use crate::domain::state::feeds::{LocalFeeds, StepFeeds};
use crate::domain::state::revocations::{Handler, Revocations, Revoked};
use crate::domain::state::short_lived::{LocalMap, ShortLived};

/// Ids per NOTIFY (its payload is capped at 8000 bytes).
pub(super) const IDS_PER_NOTICE: usize = 300;

/// The sender named by a notice a write sends in its own transaction (delivered when it
/// commits, never when it rolls back): no node in particular, so every node takes it, the
/// writer's too, whose handlers it calls a second time (dropping a cached credential twice
/// changes nothing).
pub(super) const FROM_A_COMMIT: &str = "commit";

/// Notices one NOTIFY statement sends at most (each payload is at most ~8 kB).
const NOTICES_PER_SEND: usize = 64;

type Handlers = Arc<RwLock<Vec<Handler>>>;

/// Every channel a node LISTENs on.
const CHANNELS: [&str; 2] = [REVOCATIONS, FLOWS];
pub(super) const REVOCATIONS: &str = "hearth_revocations";
const FLOWS: &str = "hearth_flows";

/// What a channel's notices are handed to: each notice of another node, and `None` when
/// listening resumes after a lost connection (notices sent meanwhile are lost).
type Route = Arc<dyn Fn(Option<&str>) + Send + Sync>;
type Routes = Arc<RwLock<HashMap<&'static str, Route>>>;
/// (channel, payload, told once it is sent).
type Outgoing = (&'static str, String, Option<mpsc::SyncSender<()>>);

/// A node's notices to and from the other nodes: one connection that sends and one that
/// LISTENs on every channel, each in a thread of its own. One listening connection per node,
/// not one per channel: PostgreSQL wakes every listening backend of the database for each
/// NOTIFY, whatever channel it listens on. Notices queued together go in one statement
/// (one commit, one wake-up of every listener).
pub struct PgNotices {
    outgoing: Mutex<mpsc::Sender<Outgoing>>,
    routes: Routes,
    closed: Arc<AtomicBool>,
    origin: String,
}

impl std::fmt::Debug for PgNotices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgNotices")
    }
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

impl PgNotices {
    /// Starts the sending and the listening connection to `target`. Notices of a channel
    /// no route was given for yet ([`PgNotices::route`]) are dropped.
    pub fn start(target: &PgTarget) -> Arc<Self> {
        let closed = Arc::new(AtomicBool::new(false));
        let origin = format!("{:016x}", rand::random::<u64>());
        let routes: Routes = Arc::default();
        let (tx, rx) = mpsc::channel::<Outgoing>();
        {
            let (target, closed) = (target.clone(), closed.clone());
            std::thread::Builder::new()
                .name("hearth-pg-notify".into())
                .spawn(move || Self::send_loop(&target, &closed, rx))
                .ok();
        }
        {
            let (target, closed, origin) = (target.clone(), closed.clone(), origin.clone());
            let routes = routes.clone();
            std::thread::Builder::new()
                .name("hearth-pg-listen".into())
                .spawn(move || Self::listen(&target, &closed, &origin, &routes))
                .ok();
        }
        Arc::new(Self {
            outgoing: Mutex::new(tx),
            routes,
            closed,
            origin,
        })
    }

    /// Hands `channel`'s notices from other nodes to `on`.
    fn route(&self, channel: &'static str, on: impl Fn(Option<&str>) + Send + Sync + 'static) {
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(channel, Arc::new(on));
    }

    /// Sends `payload` on `channel` to every other node; with `wait`, returns once it is
    /// sent (≤ 2 s).
    fn send(&self, channel: &'static str, payload: &str, wait: bool) {
        let (done, acked) = mpsc::sync_channel(1);
        let message = (
            channel,
            format!("{} {payload}", self.origin),
            wait.then_some(done),
        );
        let sent = self
            .outgoing
            .lock()
            .map(|o| o.send(message).is_ok())
            .unwrap_or(false);
        if sent && wait {
            // A notice is sent within a round trip as a rule, and that short wait stays here.
            // A longer one (up to 2 s while the database cannot be reached) would hold up
            // every task queued behind a runtime's worker: the worker hands them on first.
            let until = Instant::now() + Duration::from_secs(2);
            if let Err(mpsc::RecvTimeoutError::Timeout) =
                acked.recv_timeout(Duration::from_millis(5))
            {
                let rest = || {
                    let _ = acked.recv_timeout(until.saturating_duration_since(Instant::now()));
                };
                match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                    Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                        tokio::task::block_in_place(rest)
                    }
                    _ => rest(),
                }
            }
        }
    }

    fn send_loop(target: &PgTarget, closed: &AtomicBool, rx: mpsc::Receiver<Outgoing>) {
        const SEND: &str = "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS n(c, p)";
        // The statement is prepared once per connection and planned once: a plan made for
        // each batch's length looked cheaper to PostgreSQL than its cached one, so it
        // planned every send again (and an unprepared text costs a round trip more).
        let ready = |mut c: Client| -> Result<_, postgres::Error> {
            c.batch_execute("SET plan_cache_mode = force_generic_plan")?;
            let send = c.prepare(SEND)?;
            Ok((c, send))
        };
        let mut client = None;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < NOTICES_PER_SEND {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let channels: Vec<&str> = batch.iter().map(|(c, _, _)| *c).collect();
            let payloads: Vec<&str> = batch.iter().map(|(_, p, _)| p.as_str()).collect();
            for _ in 0..2 {
                if client.is_none() {
                    let Some(c) = connected(target, closed) else {
                        return;
                    };
                    match ready(c) {
                        Ok(ready) => client = Some(ready),
                        Err(e) => {
                            tracing::warn!(error = %e, "cluster notice not sent; reconnecting");
                            continue;
                        }
                    }
                }
                let Some((c, send)) = client.as_mut() else {
                    return;
                };
                match c.execute(&*send, &[&channels, &payloads]) {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster notice not sent; reconnecting");
                        client = None;
                    }
                }
            }
            for (_, _, done) in batch {
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        }
    }

    fn listen(target: &PgTarget, closed: &AtomicBool, origin: &str, routes: &Routes) {
        let route = |channel: &str| {
            let routes = routes.read().unwrap_or_else(|e| e.into_inner());
            routes.get(channel).cloned()
        };
        let listen: Vec<String> = CHANNELS.iter().map(|c| format!("LISTEN {c};")).collect();
        let mut lost = false;
        while let Some(mut client) = connected(target, closed) {
            if let Err(e) = client.batch_execute(&listen.concat()) {
                tracing::warn!(error = %e, "cluster notices: LISTEN failed; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            if std::mem::take(&mut lost) {
                for on in CHANNELS.iter().filter_map(|c| route(c)) {
                    on(None);
                }
            }
            while !closed.load(Ordering::Relaxed) {
                let next = {
                    let mut notices = client.notifications();
                    let mut it = notices.timeout_iter(Duration::from_secs(1));
                    it.next()
                };
                match next {
                    Ok(Some(n)) => match n.payload().split_once(' ') {
                        Some((from, body)) if from != origin => {
                            if let Some(on) = route(n.channel()) {
                                on(Some(body));
                            }
                        }
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

impl Drop for PgNotices {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// Revocation notices shared by every node on one database.
pub struct PgRevocations {
    handlers: Handlers,
    notices: Arc<PgNotices>,
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
    /// Revocations over `notices`.
    pub fn start(notices: &Arc<PgNotices>) -> Arc<Self> {
        let handlers: Handlers = Arc::default();
        let theirs = handlers.clone();
        notices.route(REVOCATIONS, move |notice| match notice {
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
        Arc::new(Self {
            handlers,
            notices: notices.clone(),
        })
    }
}

impl Revocations for PgRevocations {
    fn announce(&self, session_ids: &[u64]) {
        if session_ids.is_empty() {
            return;
        }
        self.announce_here(session_ids);
        // Bounded: when the revoking request returns, every node is being told.
        for chunk in session_ids.chunks(IDS_PER_NOTICE) {
            let ids: Vec<String> = chunk.iter().map(u64::to_string).collect();
            self.notices.send(REVOCATIONS, &ids.join(","), true);
        }
    }

    /// The other nodes were told by the commit that ended the sessions
    /// ([`FROM_A_COMMIT`]).
    fn announce_here(&self, session_ids: &[u64]) {
        if !session_ids.is_empty() {
            call(&self.handlers, Revoked::Sessions(session_ids));
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
    notices: Arc<PgNotices>,
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
    /// Feeds for at most `capacity` flows subscribed on this node, over `notices`.
    pub fn start(notices: &Arc<PgNotices>, clock: SharedClock, capacity: usize) -> Arc<Self> {
        let local = Arc::new(LocalFeeds::new(clock.clone(), capacity));
        let names: Arc<LocalMap<String, String>> = Arc::new(LocalMap::new(clock, capacity));
        let (l, n) = (local.clone(), names.clone());
        // This node's own notices never come back here ([`PgNotices`] drops them): they
        // were published here already.
        notices.route(FLOWS, move |notice| {
            let Some(body) = notice else { return };
            // A notice is a flow's name (or `origin:name`, from a node of an older version).
            let name = body.rsplit(':').next().unwrap_or(body);
            if let Some(flow) = ShortLived::get(&*n, &name.to_owned()) {
                l.publish(&flow);
            }
        });
        Arc::new(Self {
            local,
            names,
            notices: notices.clone(),
        })
    }
}

impl StepFeeds for PgFeeds {
    fn publish(&self, flow: &str) {
        self.local.publish(flow);
        self.notices.send(FLOWS, &flow_name(flow), false);
    }

    fn subscribe(&self, flow: &str, ttl_ms: u64) -> tokio::sync::watch::Receiver<u64> {
        ShortLived::put(&*self.names, flow_name(flow), flow.to_owned(), ttl_ms);
        self.local.subscribe(flow, ttl_ms)
    }

    fn feed_count(&self) -> usize {
        self.local.feed_count()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A revocation waits until its notice is sent (up to 2 s, while the database cannot be
    /// reached); the runtime's other tasks go on meanwhile, even with one worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn waiting_for_a_notice_leaves_the_worker_to_other_tasks() {
        // Nothing listens on port 1: the notice is never sent.
        let target = PgTarget::new("postgres://hearth@127.0.0.1:1/none", None).unwrap();
        let revocations = PgRevocations::start(&PgNotices::start(&target));
        let ticks = Arc::new(AtomicU64::new(0));
        let counted = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        let started = Instant::now();
        // On the worker, as a request's revocation runs.
        tokio::spawn(async move { revocations.announce(&[1]) })
            .await
            .unwrap();
        let (waited, ticked) = (started.elapsed(), ticks.load(Ordering::Relaxed));
        ticker.abort();
        assert!(waited >= Duration::from_millis(1900), "{waited:?}");
        // About 200 in 2 s; none while the only worker waits.
        assert!(ticked > 50, "{ticked} ticks in {waited:?}");
    }
}
