//! State the domain depends on, each behind a named interface with a single-node
//! implementation: the store seam (`store`), id allocation (`ids`), revocation notices
//! (`revocations`), short-lived state (`short_lived`, and `shared_map` for what every node
//! of a cluster must see), step-flow change notices (`feeds`)
//! and "one node runs this job" (`jobs`).
//! ARCHITECTURE.md lists which state is node-local and who owns it.
pub mod feeds;
pub mod ids;
pub mod jobs;
pub mod revocations;
pub mod shared_map;
pub mod short_lived;
pub mod store;
mod store_handle;

pub use store::{ReadTx, StoreError, WriteTx};
pub use store_handle::Store;
