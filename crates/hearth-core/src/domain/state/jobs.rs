//! "One node runs this job": background jobs (the link keeper, the mail sender) ask for a
//! lease before each pass. Single-node implementation: this process is the only node, so it
//! always holds every lease. Cluster implementation ([`StoreJobs`]): a lease row in the
//! shared database, taken or renewed atomically, that expires when its node stops renewing
//! it, so another node takes over.
use std::collections::HashMap;
use std::sync::Mutex;

use super::Store;
use crate::clock::SharedClock;

/// A named background job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// Keeps federation links up.
    LinkKeeper,
    /// Delivers the mail outbox.
    MailSender,
    /// Delivers revocation notices to other nodes.
    NoticeSender,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::LinkKeeper => "link_keeper",
            Job::MailSender => "mail_sender",
            Job::NoticeSender => "notice_sender",
        }
    }
}

/// Decides which node runs each job.
#[async_trait::async_trait]
pub trait JobLeases: Send + Sync + std::fmt::Debug {
    /// Whether this node holds (or now takes) the lease for `job`.
    async fn hold(&self, job: Job) -> bool;
}

/// The single-node answer: always this node.
#[derive(Debug, Default)]
pub struct LocalJobs;

#[async_trait::async_trait]
impl JobLeases for LocalJobs {
    async fn hold(&self, _job: Job) -> bool {
        true
    }
}

/// How long a job lease lasts without renewal (the jobs renew it at every pass, at least
/// every few seconds).
pub const LEASE_MS: u64 = 30_000;

/// A lease this node holds is renewed once its last renewal is this old, not at every
/// pass: the revocation sender passes whenever a session ends, which on a busy account is
/// every sign-in, and a renewal is a durable write. The lease still has 25 s to run then.
pub const RENEW_AFTER_MS: u64 = 5_000;
/// A lease another node holds is asked for again once the last answer is this old.
pub const ASK_AGAIN_AFTER_MS: u64 = 1_000;

/// Leases in the store, shared by every node on one database.
#[derive(Debug)]
pub struct StoreJobs {
    store: Store,
    clock: SharedClock,
    holder: String,
    /// Per job: whether the last answer was "held", and when it came (unix ms).
    known: Mutex<HashMap<Job, (bool, u64)>>,
}

impl StoreJobs {
    /// Leases held as `holder` (unique per process).
    pub fn new(store: Store, clock: SharedClock, holder: String) -> Self {
        Self {
            store,
            clock,
            holder,
            known: Mutex::default(),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<Job, (bool, u64)>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl JobLeases for StoreJobs {
    async fn hold(&self, job: Job) -> bool {
        let (holder, now) = (self.holder.clone(), self.clock.now_ms());
        if let Some(&(held, at)) = self.known().get(&job) {
            let fresh = match held {
                true => RENEW_AFTER_MS,
                false => ASK_AGAIN_AFTER_MS,
            };
            // A clock that went back asks again rather than trusting an answer from its future.
            if at <= now && now - at < fresh {
                return held;
            }
        }
        let held = self
            .store
            .write(move |tx| tx.hold_job(job.name(), &holder, now, now + LEASE_MS))
            .await
            .unwrap_or(false);
        self.known().insert(job, (held, now));
        held
    }
}
