//! Revocation notices between nodes on one PostgreSQL database: LISTEN/NOTIFY on the channel
//! `hearth_revocations`. A node calls its own handlers at once, then NOTIFYs and waits (a
//! few milliseconds) until the notice is sent, so when the revoking request returns every
//! other node is being told; each node LISTENs on its own connection and drops the named
//! sessions and tokens from its caches. Connections that fail are retried every second.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use crate::domain::state::revocations::{Handler, Revocations};

const CHANNEL: &str = "hearth_revocations";
/// Ids per NOTIFY (its payload is capped at 8000 bytes).
const IDS_PER_NOTICE: usize = 300;

type Handlers = Arc<RwLock<Vec<Handler>>>;
type Outgoing = (Vec<u64>, mpsc::SyncSender<()>);

/// Revocation notices shared by every node on one database.
pub struct PgRevocations {
    handlers: Handlers,
    outgoing: Mutex<mpsc::Sender<Outgoing>>,
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for PgRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgRevocations")
    }
}

fn call(handlers: &Handlers, ids: &[u64]) {
    let hs = handlers.read().unwrap_or_else(|e| e.into_inner()).clone();
    for h in hs {
        h(ids);
    }
}

fn connected(url: &str, closed: &AtomicBool) -> Option<Client> {
    while !closed.load(Ordering::Relaxed) {
        match Client::connect(url, NoTls) {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "revocation notices: cannot reach PostgreSQL; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    None
}

impl PgRevocations {
    /// Starts the sending and listening connections to `url` (in threads of their own).
    pub fn start(url: &str) -> Arc<Self> {
        let handlers: Handlers = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let origin = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = mpsc::channel::<Outgoing>();
        {
            let (url, closed, origin) = (url.to_owned(), closed.clone(), origin.clone());
            std::thread::Builder::new()
                .name("hearth-pg-notify".into())
                .spawn(move || Self::send(&url, &closed, &origin, rx))
                .ok();
        }
        {
            let (url, closed, handlers) = (url.to_owned(), closed.clone(), handlers.clone());
            std::thread::Builder::new()
                .name("hearth-pg-listen".into())
                .spawn(move || Self::listen(&url, &closed, &origin, &handlers))
                .ok();
        }
        Arc::new(Self {
            handlers,
            outgoing: Mutex::new(tx),
            closed,
        })
    }

    fn send(url: &str, closed: &AtomicBool, origin: &str, rx: mpsc::Receiver<Outgoing>) {
        let mut client = None;
        while let Ok((ids, done)) = rx.recv() {
            for chunk in ids.chunks(IDS_PER_NOTICE) {
                let payload = format!(
                    "{origin} {}",
                    chunk
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                );
                for _ in 0..2 {
                    if client.is_none() {
                        client = connected(url, closed);
                    }
                    let Some(c) = client.as_mut() else { return };
                    match c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]) {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "revocation notice not sent; reconnecting");
                            client = None;
                        }
                    }
                }
            }
            let _ = done.send(());
        }
    }

    fn listen(url: &str, closed: &AtomicBool, origin: &str, handlers: &Handlers) {
        while let Some(mut client) = connected(url, closed) {
            if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
                tracing::warn!(error = %e, "revocation notices: LISTEN failed; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            while !closed.load(Ordering::Relaxed) {
                let next = {
                    let mut notices = client.notifications();
                    let mut it = notices.timeout_iter(Duration::from_secs(1));
                    it.next()
                };
                match next {
                    Ok(Some(n)) => {
                        let Some((from, ids)) = n.payload().split_once(' ') else {
                            continue;
                        };
                        if from == origin {
                            continue;
                        }
                        let ids: Vec<u64> = ids.split(',').filter_map(|v| v.parse().ok()).collect();
                        call(handlers, &ids);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation notices: connection lost; reconnecting");
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
        }
    }
}

impl Drop for PgRevocations {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

impl Revocations for PgRevocations {
    fn announce(&self, session_ids: &[u64]) {
        if session_ids.is_empty() {
            return;
        }
        call(&self.handlers, session_ids);
        let (done, wait) = mpsc::sync_channel(1);
        let sent = self
            .outgoing
            .lock()
            .map(|o| o.send((session_ids.to_vec(), done)).is_ok())
            .unwrap_or(false);
        if sent {
            // Bounded: the notice is on its way (or the database is unreachable) in ≤ 2 s.
            let _ = wait.recv_timeout(Duration::from_secs(2));
        }
    }

    fn subscribe(&self, handler: Handler) {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(handler);
    }
}
