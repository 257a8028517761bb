//! Change notices for step flows: a flow's subscribers (StreamSteps) learn that it moved on
//! and read its new state from the flow map. Single-node implementation: one `watch`
//! channel per flow, bounded and expiring with it; a cluster fans notices out between nodes.
use std::sync::Arc;

use tokio::sync::watch;

use super::short_lived::LocalMap;
use crate::clock::SharedClock;

/// Notices that a flow changed.
pub trait StepFeeds: Send + Sync + std::fmt::Debug {
    /// Tells every subscriber of `flow` (on every node) that it changed.
    fn publish(&self, flow: &str);
    /// A receiver that changes whenever `flow` does; kept for `ttl_ms` at least.
    fn subscribe(&self, flow: &str, ttl_ms: u64) -> watch::Receiver<u64>;
    /// Flows this node holds a feed for (tests and gauges).
    fn feed_count(&self) -> usize;
}

/// In-process notices.
#[derive(Debug)]
pub struct LocalFeeds {
    channels: LocalMap<String, Arc<watch::Sender<u64>>>,
}

impl LocalFeeds {
    /// Feeds for at most `capacity` flows at once.
    pub fn new(clock: SharedClock, capacity: usize) -> Self {
        Self {
            channels: LocalMap::new(clock, capacity),
        }
    }
}

impl StepFeeds for LocalFeeds {
    fn publish(&self, flow: &str) {
        use super::short_lived::ShortLived;
        if let Some(tx) = self.channels.get(&flow.to_owned()) {
            tx.send_modify(|n| *n += 1);
        }
    }

    fn subscribe(&self, flow: &str, ttl_ms: u64) -> watch::Receiver<u64> {
        self.channels
            .get_or_insert_with(flow.to_owned(), ttl_ms, || Arc::new(watch::channel(0).0))
            .subscribe()
    }

    fn feed_count(&self) -> usize {
        use super::short_lived::ShortLived;
        ShortLived::len(&self.channels)
    }
}
