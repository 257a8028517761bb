//! The network side of federation, transport only: finding other nodes (`discovery`: static
//! routes, SRV, well-known, default port) and calling them (`client`, which implements the
//! domain's `PeerNetwork`). The rules live in `domain/federation/`.
pub mod client;
pub mod discovery;
