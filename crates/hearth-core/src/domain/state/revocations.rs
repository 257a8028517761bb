//! Revocation notices: when a session is revoked, every node that may have it cached must
//! drop it before its next request. Single-node implementation: in-process, synchronous.
use std::sync::{Arc, RwLock};

/// What a revocation notice says.
#[derive(Debug, Clone, Copy)]
pub enum Revoked<'a> {
    /// These sessions (or personal access tokens) ended.
    Sessions(&'a [u64]),
    /// Notices may have been missed (the connection that carries them was lost): anything
    /// cached may have been revoked meanwhile.
    Anything,
}

/// A handler that drops cached credentials of what was revoked.
pub type Handler = Arc<dyn Fn(Revoked<'_>) + Send + Sync>;

/// Announces revoked sessions to every node (this one included).
pub trait Revocations: Send + Sync + std::fmt::Debug {
    /// Tells every subscriber that these sessions are revoked.
    fn announce(&self, session_ids: &[u64]);
    /// Tells this node's subscribers only: the write that ended the sessions told the other
    /// nodes itself ([`crate::domain::state::store::Ended`]).
    fn announce_here(&self, session_ids: &[u64]) {
        self.announce(session_ids);
    }
    /// Registers a local handler.
    fn subscribe(&self, handler: Handler);
}

/// In-process notices: `announce` calls every handler before it returns.
#[derive(Default)]
pub struct LocalRevocations {
    handlers: RwLock<Vec<Handler>>,
}

impl std::fmt::Debug for LocalRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalRevocations")
    }
}

impl Revocations for LocalRevocations {
    fn announce(&self, session_ids: &[u64]) {
        if session_ids.is_empty() {
            return;
        }
        let handlers = self.handlers.read().unwrap_or_else(|e| e.into_inner());
        for h in handlers.iter() {
            h(Revoked::Sessions(session_ids));
        }
    }

    fn subscribe(&self, handler: Handler) {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(handler);
    }
}
