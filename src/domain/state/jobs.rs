//! "One node runs this job": background jobs (the link keeper, the mail sender) ask for a
//! lease before each pass. Single-node implementation: this process is the only node, so it
//! always holds every lease; a cluster backend grants each job to one live node at a time.
/// A named background job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// Keeps federation links up.
    LinkKeeper,
    /// Delivers the mail outbox.
    MailSender,
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
